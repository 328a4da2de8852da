"""Writers of a :class:`~adjoint_sampling.conformers.ConformerSet`: SDF, multi-frame XYZ, JSON.

One implementation shared by the ``sample`` command and the REST service. Positions are in
angstrom, energies in kcal/mol.

SDF records carry these data tags: ``energy_kcal_mol`` (absent when not computed),
``energy_model``, ``conformer_index``, ``seed``, ``model_name``, ``model_version``, ``relax``,
``smiles``, ``removed_fragments`` (space-separated SMILES) when fragments were stripped, and
``warnings`` (one ``"code: sentence"`` per line, e.g. ``gnn_extrapolation``) when there are some.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.Geometry import Point3D

from adjoint_sampling.generation.types import Conformer, ConformerSet

__all__ = ["conformers_to_sdf", "conformers_to_xyz", "conformers_to_json", "conformer_to_mol", "rdkit_conformer"]

POSITION_DECIMALS = 6


def rdkit_conformer(positions: np.ndarray) -> Chem.Conformer:
    """A 3D RDKit conformer of ``positions`` ``(N, 3)`` in angstrom."""
    rd_conf = Chem.Conformer(len(positions))
    for i, (x, y, z) in enumerate(np.asarray(positions, dtype=float)):
        rd_conf.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
    rd_conf.Set3D(True)
    return rd_conf


def conformer_to_mol(cs: ConformerSet, conformer: Conformer) -> Chem.Mol:
    """A copy of ``cs.mol`` with ``conformer``'s positions as its only conformer and the SDF tags set.

    Raises:
        ValueError: the positions are not ``(N, 3)`` for the ``N`` atoms of ``cs.mol``.
    """
    mol = Chem.Mol(cs.mol)
    mol.RemoveAllConformers()
    positions = np.asarray(conformer.positions, dtype=float)
    if positions.shape != (mol.GetNumAtoms(), 3):
        raise ValueError(f"conformer {conformer.index}: positions {positions.shape}, expected ({mol.GetNumAtoms()}, 3)")
    mol.AddConformer(rdkit_conformer(positions), assignId=True)
    mol.SetProp("_Name", f"{cs.smiles} conformer {conformer.index}")
    if conformer.energy is not None and math.isfinite(conformer.energy):
        mol.SetProp("energy_kcal_mol", f"{conformer.energy:.6f}")
    mol.SetProp("energy_model", cs.energy_model or "")
    mol.SetIntProp("conformer_index", int(conformer.index))
    mol.SetIntProp("seed", int(cs.seed))
    mol.SetProp("model_name", cs.model_name)
    mol.SetProp("model_version", cs.model_version)
    mol.SetProp("relax", cs.relax)
    mol.SetProp("smiles", cs.smiles)
    if cs.removed_fragments:
        mol.SetProp("removed_fragments", " ".join(cs.removed_fragments))
    if cs.warnings:
        mol.SetProp("warnings", "\n".join(cs.warnings))
    return mol


def conformers_to_sdf(cs: ConformerSet, extra_tags: dict[str, int] | None = None) -> str:
    """One SDF record per conformer (explicit hydrogens, bonds of ``cs.mol``, tags as above, plus
    ``extra_tags`` on every record)."""
    buffer = io.StringIO()
    writer = Chem.SDWriter(buffer)
    try:
        for conformer in cs.conformers:
            mol = conformer_to_mol(cs, conformer)
            for name, value in (extra_tags or {}).items():
                mol.SetIntProp(name, int(value))
            writer.write(mol)
    finally:
        writer.close()
    return buffer.getvalue()


def conformers_to_xyz(cs: ConformerSet) -> str:
    """Multi-frame XYZ: per conformer the atom count, a comment line of ``key=value`` pairs
    (``index``, ``energy_kcal_mol``, ``energy_model``, ``model``, ``relax``, ``smiles``), then ``symbol x y z``."""
    symbols = [atom.GetSymbol() for atom in cs.mol.GetAtoms()]
    model = f"{cs.model_name}/{cs.model_version}"
    lines: list[str] = []
    for conformer in cs.conformers:
        positions = np.asarray(conformer.positions, dtype=float)
        energy = _finite_or_none(conformer.energy)
        energy_text = "nan" if energy is None else f"{energy:.6f}"
        lines.append(str(len(symbols)))
        lines.append(
            f"index={conformer.index} energy_kcal_mol={energy_text} energy_model={cs.energy_model or 'none'} "
            f"model={model} relax={cs.relax} smiles={cs.smiles}"
        )
        for symbol, (x, y, z) in zip(symbols, positions, strict=True):
            lines.append(f"{symbol:<2s} {x:14.6f} {y:14.6f} {z:14.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def conformers_to_json(cs: ConformerSet) -> dict[str, Any]:
    """A JSON-ready dict: the molecule (elements, bonds, charge), the conformers (index, energy in
    kcal/mol, positions ``(N, 3)`` in angstrom) and the provenance (model, relax, seed, drop counts,
    timings in seconds, ``warnings``)."""
    mol = cs.mol
    return {
        "smiles": cs.smiles,
        "canonical_smiles": Chem.MolToSmiles(Chem.RemoveHs(mol)),
        "charge": int(Chem.GetFormalCharge(mol)),
        "multiplicity": int(sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())) + 1,
        "elements": [atom.GetSymbol() for atom in mol.GetAtoms()],
        "bonds": [
            [bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), float(bond.GetBondTypeAsDouble())] for bond in mol.GetBonds()
        ],
        "model": {"name": cs.model_name, "version": cs.model_version},
        "energy_model": cs.energy_model,
        "relax": cs.relax,
        "seed": int(cs.seed),
        "num_requested": int(cs.num_requested),
        "num_generated": int(cs.num_generated),
        "num_returned": len(cs.conformers),
        "num_dropped": cs.num_dropped,
        "dropped": {str(k): int(v) for k, v in cs.dropped.items()},
        "num_reflected": int(cs.num_reflected),
        "removed_fragments": list(cs.removed_fragments),
        "sorted_by_energy": bool(cs.sorted_by_energy),
        "warnings": list(cs.warnings),
        "timings": {str(k): float(v) for k, v in cs.timings.items()},
        "conformers": [
            {
                "index": int(c.index),
                "energy_kcal_mol": _finite_or_none(c.energy),
                "positions": np.round(np.asarray(c.positions, dtype=float), POSITION_DECIMALS).tolist(),
            }
            for c in cs.conformers
        ],
    }


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)
