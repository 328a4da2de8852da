"""The n-in-n-out benchmark counts what it measures: returned, drawn and CPU per returned conformer."""

from __future__ import annotations

import json

from adjoint_sampling.benchmarks.n_in_n_out import main, measure
from adjoint_sampling.benchmarks.sampling_variant import write_sampling_variant
from adjoint_sampling.generation.loading import SHIPPED_MODEL_PATH

PEPTIDE = "C[C@H](N)C(=O)N[C@@H](Cc1ccccc1)C(=O)N[C@@H](CC(C)C)C(=O)N[C@@H](CCCCN)C(=O)NCC(=O)O"


def test_replacing_draws_returns_n_and_the_totals_add_up(tmp_path):
    # the shipped weights at 5 SDE steps without the polish, the repair and the selection: about 40 %
    # of the peptide's draws fail the check (at 2 steps about 75 %, more than 4 draws per conformer mend)
    unrepaired = tmp_path / "unrepaired.pt"
    write_sampling_variant(SHIPPED_MODEL_PATH, unrepaired, sde_steps=5, clash_repair_steps=0, polish_steps=0,
                           select_from=1.0)
    result = measure(str(unrepaired), [PEPTIDE, "CCO", "C[Se]C"], n=12, seed=0, relax="none")
    once, replaced = result["totals"]["x1"], result["totals"]["x4"]
    assert once["molecules"] == replaced["molecules"] == 2  # the selenium molecule is refused, not counted
    assert result["molecules"][2]["x1"] == {"error": "unsupported_element"}
    assert once["drawn"] == 24 and once["returned"] < 24 and once["short_molecules"] >= 1
    assert replaced["returned"] == 24 and replaced["short_molecules"] == 0 and replaced["drawn"] > 24
    for totals in (once, replaced):
        assert totals["cpu_s_per_returned"] == totals["cpu_s"] / totals["returned"] > 0


def test_cli_writes_the_json(tmp_path, capsys):
    smiles = tmp_path / "two.smi"
    smiles.write_text("CCO\nCCCC\n")
    out = tmp_path / "result.json"
    assert main(["--smiles-file", str(smiles), "--model", "etkdg", "-n", "3", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["totals"]["x4"]["returned"] == 6 and data["model"] == "rdkit-etkdgv3"
    assert "6/6 conformers returned" in capsys.readouterr().out
