"""What a chemist gets from the shipped model: n conformers when n are asked, an energy window and an
order on the returned energies, salts reduced to their parent, and ``adjoint_sampling.generate``
returning an RDKit ``Mol`` (the README's Python API examples run here too)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from rdkit import Chem

import adjoint_sampling
from adjoint_sampling.chemistry.checks import check_conformers
from adjoint_sampling.core.errors import InvalidMoleculeError, InvalidOptionError
from adjoint_sampling.core.paths import REPO_ROOT, SHARED_DATA_DIR
from adjoint_sampling.generation.etkdg import EtkdgGenerator
from adjoint_sampling.generation.loading import SHIPPED_MODEL_PATH
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import GenerationRequest
from adjoint_sampling.problems.molecular.dataset import read_smiles_file

PEPTIDE = "C[C@H](N)C(=O)N[C@@H](Cc1ccccc1)C(=O)N[C@@H](CC(C)C)C(=O)N[C@@H](CCCCN)C(=O)NCC(=O)O"
"""Ala-Phe-Leu-Lys-Gly, five residues."""


@pytest.fixture(scope="module")
def shipped() -> Sampler:
    return Sampler.from_checkpoint(SHIPPED_MODEL_PATH)


@pytest.fixture(scope="module")
def unrepaired(shipped) -> Sampler:
    """The shipped weights without the torsional polish and the clash repair: about 8 % of its raw
    draws fail the check."""
    assert shipped.checkpoint.clash_repair_steps > 0 and shipped.checkpoint.polish_steps > 0
    checkpoint = dataclasses.replace(shipped.checkpoint, clash_repair_steps=0, polish_steps=0)
    return Sampler(checkpoint, shipped.controller, shipped.version + "-unrepaired")


def _spice_test_smiles(count: int) -> list[str]:
    return read_smiles_file(SHARED_DATA_DIR / "spice_test.txt")[:count]


@pytest.mark.parametrize("model", ["shipped", "unrepaired"])
def test_n_in_n_out_on_spice_test_molecules_and_a_peptide(model, request):
    sampler = request.getfixturevalue(model)
    molecules = [*_spice_test_smiles(20), PEPTIDE]
    assert len(molecules) == 21
    replaced = 0
    for smiles in molecules:
        n = 20 if smiles == PEPTIDE else 10
        cs = sampler.generate(GenerationRequest(smiles, num_conformers=n, seed=0))
        assert len(cs.conformers) == n, (smiles, cs.dropped)
        positions = np.stack([c.positions for c in cs.conformers])
        assert all(check.ok for check in check_conformers(cs.mol, positions))
        # every draw is accounted for: returned + dropped (check failures, surplus) = drawn
        assert len(cs.conformers) + cs.num_dropped == cs.num_generated <= 4 * n
        assert len({c.index for c in cs.conformers}) == n
        replaced += cs.num_generated > n
    if model == "unrepaired":
        assert replaced > 0  # some molecules needed replacement draws


def test_one_draw_only_returns_what_passed_and_the_repair_keeps_the_draws(shipped, unrepaired):
    request = GenerationRequest(PEPTIDE, num_conformers=20, seed=0, max_draw_multiple=1)
    cs = unrepaired.generate(request)
    assert cs.num_generated == 20 and len(cs.conformers) + cs.num_dropped == 20
    assert len(cs.conformers) < 20  # without the repair the peptide loses draws to the structure check
    repaired = shipped.generate(request)
    assert repaired.num_generated == 20 and len(repaired.conformers) > len(cs.conformers)


def test_energy_window_and_order_on_the_returned_energies(shipped):
    request = GenerationRequest(PEPTIDE, num_conformers=12, seed=1, relax="mmff")
    everything = shipped.generate(request)
    energies = [c.energy for c in everything.conformers]
    assert not everything.sorted_by_energy and energies != sorted(energies)
    ordered = shipped.generate(GenerationRequest(PEPTIDE, num_conformers=12, seed=1, relax="mmff", sort=True))
    assert ordered.sorted_by_energy and [c.energy for c in ordered.conformers] == sorted(energies)
    window = 5.0
    windowed = shipped.generate(
        GenerationRequest(PEPTIDE, num_conformers=12, seed=1, relax="mmff", energy_window=window, sort=True)
    )
    kept = [c.energy for c in windowed.conformers]
    assert kept == sorted(e for e in energies if e - min(energies) <= window)
    assert windowed.dropped["energy_window"] == len(energies) - len(kept) > 0
    assert windowed.energy_model == "mmff"
    # the sampler reports its own energies without relaxing, so a window works there too
    unrelaxed = shipped.generate(GenerationRequest("CCCCOC(=O)CC", num_conformers=6, energy_window=2.0, sort=True))
    values = [c.energy for c in unrelaxed.conformers]
    assert unrelaxed.energy_model and values == sorted(values) and values[-1] - values[0] <= 2.0


def test_etkdg_cannot_window_without_energies():
    with pytest.raises(InvalidOptionError) as err:
        EtkdgGenerator().generate(GenerationRequest("CCO", num_conformers=2, energy_window=1.0))
    assert (err.value.field, err.value.reason) == ("energy_window", "needs_energies")


def test_salts_are_reduced_to_their_parent_and_reported(shipped):
    cs = shipped.generate(GenerationRequest("CC(=O)[O-].[Na+]", num_conformers=3, strip_fragments=True))
    assert cs.removed_fragments == ("[Na+]",) and len(cs.conformers) == 3
    assert Chem.MolToSmiles(Chem.RemoveHs(cs.mol)) == "CC(=O)[O-]"
    hydrochloride = shipped.generate(GenerationRequest("CCN(CC)CC.Cl.O", num_conformers=2, strip_fragments=True))
    assert sorted(hydrochloride.removed_fragments) == ["Cl", "O"]
    with pytest.raises(InvalidMoleculeError) as err:
        shipped.generate(GenerationRequest("CC(=O)[O-].[Na+]", num_conformers=3))
    assert err.value.reason == "multiple_fragments"


def test_a_wrong_multiplicity_says_so(shipped):
    with pytest.raises(InvalidMoleculeError) as err:
        shipped.generate(GenerationRequest("CCO", num_conformers=1, multiplicity=3))
    assert err.value.reason == "multiplicity_mismatch"


def test_generate_returns_a_mol_with_n_conformers_and_the_input_stereo():
    smiles = "C[C@H](N)C(=O)N[C@@H](Cc1ccccc1)C(=O)O"
    mol = adjoint_sampling.generate(smiles, n=8, seed=2, relax="mmff", sort=True)
    assert mol.GetNumConformers() == 8
    assert Chem.SanitizeMol(Chem.Mol(mol)) == Chem.SanitizeFlags.SANITIZE_NONE
    expected = Chem.FindMolChiralCenters(Chem.MolFromSmiles(smiles), includeUnassigned=True, useLegacyImplementation=False)
    energies = []
    for conformer in mol.GetConformers():
        copy = Chem.Mol(mol, confId=conformer.GetId())
        Chem.AssignStereochemistryFrom3D(copy, confId=conformer.GetId())
        heavy = Chem.RemoveHs(copy)
        assert Chem.FindMolChiralCenters(heavy, includeUnassigned=True, useLegacyImplementation=False) == expected
        assert conformer.GetProp("structure_check") == "passed"
        energies.append(conformer.GetDoubleProp("energy_kcal_mol"))
    assert energies == sorted(energies) and mol.GetProp("energy_model") == "mmff"
    assert mol.GetIntProp("num_requested") == 8 and mol.GetIntProp("num_drawn") >= 8
    assert isinstance(json.loads(mol.GetProp("dropped")), dict)


def test_generate_keeps_the_atom_order_of_an_input_mol():
    mol = Chem.AddHs(Chem.MolFromSmiles("OCC(=O)N"))
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    out = adjoint_sampling.generate(mol, n=3, seed=0)
    assert [a.GetSymbol() for a in out.GetAtoms()] == symbols and out.GetNumConformers() == 3


def _readme_python_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_api_examples_run():
    blocks = _readme_python_blocks()
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own examples
