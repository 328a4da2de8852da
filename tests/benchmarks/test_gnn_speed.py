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
