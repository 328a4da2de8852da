"""Molecular graph featurization: a parsed molecule -> tensors a controller reads.

Atom features (``ATOM_FEATURE_DIM`` columns, float32), in this order:
    one-hot element over ``ELEMENTS`` | one-hot formal charge (-2..+2, clamped) | aromatic |
    one-hot hybridisation (S, SP, SP2, SP3, SP3D, SP3D2, other) | in ring | one-hot smallest
    ring size (3..8, none/larger) | one-hot chirality tag (none, CW, CCW, other) | one-hot CIP
    label (none, R, S) | one-hot total H count (0..4, clamped) | one-hot heavy degree (0..5,
    clamped) | radical electrons.
Bond features (``BOND_FEATURE_DIM`` columns, float32):
    one-hot bond type (single, double, triple, aromatic) | conjugated | in ring |
    one-hot double-bond stereo (none, Z/cis, E/trans, other).

Charge and multiplicity travel with the graph (and into :class:`energy.base.AtomicSystem`),
they are never defaulted to zero.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from rdkit import Chem

from adjoint_sampling.chemistry.parsing import SUPPORTED_ELEMENTS, ParsedMolecule
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import InvalidMoleculeError

ELEMENTS: tuple[str, ...] = SUPPORTED_ELEMENTS
"""Supported elements; ``element_index`` indexes into this tuple."""

_FORMAL_CHARGES = (-2, -1, 0, 1, 2)
_HYBRIDISATIONS = (
    Chem.HybridizationType.S,
    Chem.HybridizationType.SP,
    Chem.HybridizationType.SP2,
    Chem.HybridizationType.SP3,
    Chem.HybridizationType.SP3D,
    Chem.HybridizationType.SP3D2,
)
_RING_SIZES = (3, 4, 5, 6, 7, 8)
_CHIRAL_TAGS = (
    Chem.ChiralType.CHI_UNSPECIFIED,
    Chem.ChiralType.CHI_TETRAHEDRAL_CW,
    Chem.ChiralType.CHI_TETRAHEDRAL_CCW,
)
_CIP_LABELS = ("R", "S")
_MAX_HS = 4
_MAX_HEAVY_DEGREE = 5

ATOM_FEATURE_DIM: int = (
    len(ELEMENTS)
    + len(_FORMAL_CHARGES)
    + 1
    + len(_HYBRIDISATIONS) + 1
    + 1
    + len(_RING_SIZES) + 1
    + len(_CHIRAL_TAGS) + 1
    + len(_CIP_LABELS) + 1
    + _MAX_HS + 1
    + _MAX_HEAVY_DEGREE + 1
    + 1
)

_BOND_TYPES = (
    Chem.BondType.SINGLE,
    Chem.BondType.DOUBLE,
    Chem.BondType.TRIPLE,
    Chem.BondType.AROMATIC,
)
_CIS_STEREO = (Chem.BondStereo.STEREOZ, Chem.BondStereo.STEREOCIS)
_TRANS_STEREO = (Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOTRANS)

BOND_FEATURE_DIM: int = len(_BOND_TYPES) + 1 + 1 + 4


@dataclass
class MolecularGraph:
    """Graph of one molecule with explicit hydrogens (atom order of ``ParsedMolecule.mol``).

    Attributes:
        atomic_numbers: ``(N,)`` long.
        element_index: ``(N,)`` long, index into :data:`ELEMENTS`.
        atom_features: ``(N, ATOM_FEATURE_DIM)`` float32.
        edge_index: ``(2, E)`` long, every bond in both directions (E = 2 x bonds).
        bond_features: ``(E, BOND_FEATURE_DIM)`` float32, row ``e`` describes ``edge_index[:, e]``.
        formal_charges: ``(N,)`` long.
        charge: total charge (elementary charges).
        multiplicity: spin multiplicity 2S+1.
    """

    atomic_numbers: torch.Tensor
    element_index: torch.Tensor
    atom_features: torch.Tensor
    edge_index: torch.Tensor
    bond_features: torch.Tensor
    formal_charges: torch.Tensor
    charge: int
    multiplicity: int

    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])


def _one_hot(value: object, choices: tuple, *, other: bool) -> list[float]:
    row = [1.0 if value == c else 0.0 for c in choices]
    if other:
        row.append(0.0 if any(row) else 1.0)
    return row


def _smallest_ring_size(ring_info: Chem.RingInfo, atom_idx: int) -> int | None:
    sizes = [len(r) for r in ring_info.AtomRings() if atom_idx in r]
    return min(sizes) if sizes else None


def _atom_row(atom: Chem.Atom, ring_info: Chem.RingInfo) -> list[float]:
    charge = max(min(atom.GetFormalCharge(), _FORMAL_CHARGES[-1]), _FORMAL_CHARGES[0])
    heavy_degree = sum(1 for n in atom.GetNeighbors() if n.GetAtomicNum() > 1)
    cip = atom.GetProp("_CIPCode") if atom.HasProp("_CIPCode") else None
    return (
        _one_hot(atom.GetSymbol(), ELEMENTS, other=False)
        + _one_hot(charge, _FORMAL_CHARGES, other=False)
        + [float(atom.GetIsAromatic())]
        + _one_hot(atom.GetHybridization(), _HYBRIDISATIONS, other=True)
        + [float(atom.IsInRing())]
        + _one_hot(_smallest_ring_size(ring_info, atom.GetIdx()), _RING_SIZES, other=True)
        + _one_hot(atom.GetChiralTag(), _CHIRAL_TAGS, other=True)
        + _one_hot(cip, _CIP_LABELS, other=True)
        + _one_hot(min(atom.GetTotalNumHs(), _MAX_HS), tuple(range(_MAX_HS + 1)), other=False)
        + _one_hot(min(heavy_degree, _MAX_HEAVY_DEGREE), tuple(range(_MAX_HEAVY_DEGREE + 1)), other=False)
        + [float(atom.GetNumRadicalElectrons())]
    )


def _bond_row(bond: Chem.Bond) -> list[float]:
    stereo = bond.GetStereo()
    stereo_row = [
        1.0 if stereo == Chem.BondStereo.STEREONONE else 0.0,
        1.0 if stereo in _CIS_STEREO else 0.0,
        1.0 if stereo in _TRANS_STEREO else 0.0,
    ]
    stereo_row.append(0.0 if any(stereo_row) else 1.0)
    return (
        _one_hot(bond.GetBondType(), _BOND_TYPES, other=False)
        + [float(bond.GetIsConjugated()), float(bond.IsInRing())]
        + stereo_row
    )


def featurize(parsed: ParsedMolecule) -> MolecularGraph:
    """Build the :class:`MolecularGraph` of ``parsed`` (atom order of ``parsed.mol``).

    Raises:
        InvalidMoleculeError: ``unsupported_element`` for an element outside :data:`ELEMENTS`.
    """
    mol = parsed.mol
    ring_info = mol.GetRingInfo()
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    unsupported = sorted(set(symbols) - set(ELEMENTS))
    if unsupported:
        raise InvalidMoleculeError("unsupported_element", f"unsupported element(s) {', '.join(unsupported)}")
    atom_rows = [_atom_row(a, ring_info) for a in mol.GetAtoms()]
    src, dst, bond_rows = [], [], []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        row = _bond_row(bond)
        src += [i, j]
        dst += [j, i]
        bond_rows += [row, row]
    return MolecularGraph(
        atomic_numbers=torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=torch.long),
        element_index=torch.tensor([ELEMENTS.index(s) for s in symbols], dtype=torch.long),
        atom_features=torch.tensor(atom_rows, dtype=torch.float32).reshape(len(atom_rows), ATOM_FEATURE_DIM),
        edge_index=torch.tensor([src, dst], dtype=torch.long).reshape(2, len(src)),
        bond_features=torch.tensor(bond_rows, dtype=torch.float32).reshape(len(bond_rows), BOND_FEATURE_DIM),
        formal_charges=torch.tensor([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=torch.long),
        charge=int(parsed.charge),
        multiplicity=int(parsed.multiplicity),
    )


def molecule_key(mol: Chem.Mol) -> str:
    """A cache key unique to the molecule AND its atom order.

    The canonical SMILES (with hydrogens) alone is not enough: two inputs of the same molecule
    can number their atoms differently, and per-atom caches (force-field parameters) depend on it.
    """
    smiles = Chem.MolToSmiles(mol)
    order = mol.GetProp("_smilesAtomOutputOrder")
    digest = hashlib.sha1(order.encode()).hexdigest()[:12]
    return f"{smiles}#{digest}"


def atomic_system(parsed: ParsedMolecule) -> AtomicSystem:
    """The :class:`AtomicSystem` an energy backend needs (charge and multiplicity carried through)."""
    mol = parsed.mol
    return AtomicSystem(
        atomic_numbers=torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=torch.long),
        charge=int(parsed.charge),
        multiplicity=int(parsed.multiplicity),
        key=molecule_key(mol),
        rdkit_mol=mol,
    )
