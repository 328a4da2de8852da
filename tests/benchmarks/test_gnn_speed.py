"""The GNN speed benchmark times every model size and tblite on every molecule, and writes them."""

from __future__ import annotations

import json

from adjoint_sampling.benchmarks.gnn_speed import MOLECULES, SIZES, main


def test_every_molecule_and_size_is_timed(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["--batch", "2", "--repeats", "1", "--xtb-conformers", "1", "--output", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [row["smiles"] for row in rows] == list(MOLECULES)
    assert [row["atoms"] for row in rows] == sorted(row["atoms"] for row in rows)
    for row in rows:
        assert row["tblite GFN2-xTB"] > 0 and all(row[name] > 0 for name in SIZES)
        sizes = [row[f"{name} parameters"] for name in SIZES]
        assert sizes == sorted(sizes)
    assert capsys.readouterr().out.count("tblite") == len(MOLECULES)


def test_trained_checkpoints_of_both_architectures_are_timed(tmp_path, capsys):
    from adjoint_sampling.energy.gnn import save_gnn_checkpoint
    from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential

    paths = []
    for arch, channels in (("nequip", 4), ("mace", 4)):
        path = tmp_path / arch / "gnn.pt"
        path.parent.mkdir()
        save_gnn_checkpoint(path, GNNPotential(GNNHParams(architecture=arch, num_scalars=channels,
                                                          num_vectors=channels, radial_hidden=4)))
        paths += ["--checkpoint", str(path)]
    out = tmp_path / "speed.json"
    assert main(["--batch", "2", "--repeats", "1", "--xtb-conformers", "1", *paths[:2], "--compiled",
                 "--output", str(out)]) == 0
    rows = json.loads(out.read_text())
    for row in rows:
        assert row["nequip: nequip"] > 0 and row["nequip: nequip, compiled"] > 0
    assert capsys.readouterr().out.count("nequip, compiled") == len(MOLECULES)
    assert main(["--batch", "2", "--repeats", "1", "--xtb-conformers", "1", *paths, "--output", str(out)]) == 0
    rows = json.loads(out.read_text())
    for row in rows:
        assert row["nequip: nequip"] > 0 and row["mace: mace"] > 0 and "nequip: nequip, compiled" not in row
    assert capsys.readouterr().out.count("mace") == len(MOLECULES)
