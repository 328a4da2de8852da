"""The energy-only validation ensembles: held-out training molecules, GFN2-xTB minima within the
window, distinct, by increasing energy, and readable by the conformer benchmark as references."""

from __future__ import annotations

import numpy as np
from adjoint_sampling.benchmarks.conformers.references import (
    BenchmarkMolecule,
    load_reference_ensemble,
    read_test_list,
)
from adjoint_sampling.benchmarks.validation_ensembles import (
    build_ensemble,
    main,
    select_validation_molecules,
)

from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix
from adjoint_sampling.core.paths import SHARED_DATA_DIR
from adjoint_sampling.core.units import HARTREE_TO_KCAL

SMILES = "CCOC(=O)CCO"


def test_selection_is_stratified_held_out_and_disjoint_from_the_test_list():
    picked = select_validation_molecules(per_count=2)
    counts = [m.rotatable_bonds for m in picked]
    assert sorted(counts) == sorted(list(range(3, 11)) * 2)
    test = {m.smiles for m in read_test_list(SHARED_DATA_DIR / "spice_test.txt")}
    assert not test & {m.smiles for m in picked}
    assert len({m.mol_id for m in picked}) == len(picked)
    assert select_validation_molecules(per_count=2) == picked  # deterministic
    later = select_validation_molecules(per_count=2, offset=5000)
    assert {m.mol_id for m in later} != {m.mol_id for m in picked}


def test_ensemble_holds_distinct_xtb_minima_within_the_window():
    symbols, minima, energy, stats = build_ensemble(SMILES, pool=30, relax_count=4, mmff_window=10.0, window=6.0)
    parsed = parse_smiles(SMILES)
    assert len(symbols) == parsed.num_atoms and minima.shape[1:] == (parsed.num_atoms, 3)
    assert 1 <= len(minima) <= 4 and stats["references"] == len(minima)
    assert np.all(np.diff(energy) >= 0) and energy[-1] - energy[0] <= 6.0
    distances = rmsd_matrix(heavy_atom_symmetry(parsed.mol), minima, minima)
    assert np.all(distances[~np.eye(len(minima), dtype=bool)] >= 0.25)


def test_main_writes_a_reference_set_the_benchmark_reads_and_resumes(tmp_path, monkeypatch):
    from adjoint_sampling.benchmarks import validation_ensembles as module

    molecule = BenchmarkMolecule("rot3_example", SMILES, 3)
    monkeypatch.setattr(module, "select_validation_molecules", lambda *args: [molecule])
    out = tmp_path / "validation"
    assert main(["--out", str(out), "--pool", "20", "--relax", "3"]) == 0
    listed = read_test_list(out / "validation.txt")
    assert listed == [BenchmarkMolecule("rot3_example", SMILES, 3)]
    ensemble = load_reference_ensemble(listed[0], out)
    assert len(ensemble.positions) >= 1 and not ensemble.unmatched
    assert np.all(np.diff(ensemble.energies) >= 0)
    assert abs(ensemble.energies[0]) * HARTREE_TO_KCAL > 1000  # hartree on the comment lines, as CREST's
    path = out / "rot3_example" / "crest_conformers.xyz"
    before = path.stat().st_mtime_ns
    assert main(["--out", str(out), "--pool", "20", "--relax", "3"]) == 0  # nothing redone
    assert path.stat().st_mtime_ns == before
    assert main(["--out", str(out), "--relax", "0"]) == 2
