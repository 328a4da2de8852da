"""The one-line Python API: ``adjoint_sampling.generate("CCO", n=10)`` returns an RDKit ``Mol`` with
its conformers, the way ``AllChem.EmbedMultipleConfs`` users expect.

Molecule properties: ``energy_model``, ``model_name``, ``model_version``, ``relax``, ``seed``,
``num_requested``, ``num_drawn``, ``dropped`` (JSON: counts by reason), ``removed_fragments``
(space-separated SMILES, when fragments were stripped), ``warnings`` (JSON list of ``"code: sentence"``,
e.g. ``gnn_extrapolation`` for a molecule larger than the GNN's training data; set only when there are
some). Conformer properties: ``energy_kcal_mol``
(when the energy is known), ``structure_check`` (``"passed"``: every returned conformer keeps the
input's connectivity and stereochemistry), ``draw_index`` (its position among the raw draws).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

from rdkit import Chem

from adjoint_sampling.chemistry.parsing import ParsedMolecule, parse_mol
from adjoint_sampling.core.errors import InvalidMoleculeError
from adjoint_sampling.generation.formats import rdkit_conformer
from adjoint_sampling.generation.loading import load_generator
from adjoint_sampling.generation.types import ConformerGenerator, ConformerSet, GenerationRequest, RelaxMethod

__all__ = ["generate", "conformer_set_to_mol"]


@functools.lru_cache(maxsize=4)
def _generator(model: str | None, energy_model: str | None) -> ConformerGenerator:
    """Generators are loaded once per process, model and energy model (a checkpoint load takes about
    a second; the energy model itself is loaded once per process and path)."""
    return load_generator(model, energy_model)


def generate(
    molecule: str | Chem.Mol,
    n: int = 10,
    *,
    seed: int = 0,
    relax: RelaxMethod = "none",
    energy_window: float | None = None,
    sort: bool = False,
    prune_rms: float | None = None,
    strip_fragments: bool = True,
    charge: int | None = None,
    multiplicity: int | None = None,
    model: str | None = None,
    energy_model: str | Path | None = None,
) -> Chem.Mol:
    """Conformers of ``molecule`` as an RDKit ``Mol`` with explicit hydrogens and ``n`` conformers.

    Args:
        molecule: a SMILES, or an RDKit ``Mol`` (its atom order is kept; missing hydrogens are
            added after its atoms).
        n: conformers to return. Draws that fail the structure check are replaced (up to 4 draws
            per conformer), so fewer come back only for molecules the model handles badly.
        seed: random seed; the same call gives the same conformers.
        relax: ``"none"``, ``"mmff"``, ``"xtb"`` (GFN2-xTB) or ``"gnn"`` (our GNN potential distilled
            from GFN2-xTB); the relaxation's backend gives the energies.
        energy_window: keep conformers within this many kcal/mol of the lowest one.
        sort: order the conformers by energy, lowest first.
        prune_rms: drop conformers within this heavy-atom RMSD (angstrom) of a kept one.
        strip_fragments: keep the largest organic fragment (salts, solvents are stripped and
            reported in the ``removed_fragments`` property); ``False``: several fragments are an error.
        charge / multiplicity: checked against the molecule (``None``: taken from it).
        model: a checkpoint path or ``"etkdg"`` (default: the shipped model).
        energy_model: the GNN energy checkpoint of ``relax="gnn"`` (default: ``AS_ENERGY_MODEL``,
            else the shipped ``models/shipped/energy.pt``).

    Raises:
        InvalidMoleculeError: the molecule cannot be handled (``.reason`` names why).
        InvalidOptionError: an invalid option (``.field`` names it).
        CheckpointError: ``model`` does not exist or is not a conformer model, or the energy model
            of ``relax="gnn"`` cannot be loaded.
    """
    request = GenerationRequest(
        smiles=molecule if isinstance(molecule, str) else "", num_conformers=n, seed=seed, relax=relax,
        charge=charge, multiplicity=multiplicity, prune_rms=prune_rms, energy_window=energy_window, sort=sort,
        strip_fragments=strip_fragments,
    )
    request.validate()
    parsed: ParsedMolecule | None = None
    if isinstance(molecule, Chem.Mol):
        parsed = parse_mol(molecule, charge=charge, multiplicity=multiplicity, strip_fragments=strip_fragments)
        request = dataclasses.replace(request, smiles=parsed.smiles)
    elif not isinstance(molecule, str):
        raise InvalidMoleculeError("invalid_input", f"expected a SMILES or an RDKit Mol, got {type(molecule).__name__}")
    generator = _generator(model, None if energy_model is None else str(energy_model))
    return conformer_set_to_mol(generator.generate(request, parsed))


def conformer_set_to_mol(cs: ConformerSet) -> Chem.Mol:
    """``cs.mol`` with the conformers of ``cs`` (ids 0, 1, ...) and the properties of the module docstring."""
    mol = Chem.Mol(cs.mol)
    mol.RemoveAllConformers()
    for conformer in cs.conformers:
        rd_conf = rdkit_conformer(conformer.positions)
        if conformer.energy is not None and math.isfinite(conformer.energy):
            rd_conf.SetDoubleProp("energy_kcal_mol", float(conformer.energy))
        rd_conf.SetProp("structure_check", "passed")
        rd_conf.SetIntProp("draw_index", int(conformer.index))
        mol.AddConformer(rd_conf, assignId=True)
    mol.SetProp("energy_model", cs.energy_model or "")
    mol.SetProp("model_name", cs.model_name)
    mol.SetProp("model_version", cs.model_version)
    mol.SetProp("relax", cs.relax)
    mol.SetIntProp("seed", int(cs.seed))
    mol.SetIntProp("num_requested", int(cs.num_requested))
    mol.SetIntProp("num_drawn", int(cs.num_generated))
    mol.SetProp("dropped", json.dumps(cs.dropped, sort_keys=True))
    if cs.removed_fragments:
        mol.SetProp("removed_fragments", " ".join(cs.removed_fragments))
    if cs.warnings:
        mol.SetProp("warnings", json.dumps(list(cs.warnings)))
    return mol
