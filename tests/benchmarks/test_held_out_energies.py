"""The held-out check compares sampler variants on SPICE training molecules no job trained on, without
reference conformers: valid shares in [0, 1], energies above each molecule's lowest (never negative),
the solver override taking effect, and one-line errors for malformed variants."""

from __future__ import annotations

import pytest
from molecular_helpers import TINY_SMILES

from adjoint_sampling.benchmarks.held_out_energies import compare_held_out, main, parse_variant
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.training.config import job_config_from_dict
from adjoint_sampling.training.jobs import run_training_job


@pytest.mark.slow
def test_variants_of_one_flow_are_compared_on_held_out_molecules(tmp_path, capsys):
    job = {"problem": {"kind": "molecules", "mode": "torsional", "smiles": list(TINY_SMILES), "warm_start_pool": 4},
           "controller": {"name": "torsional", "hparams": {"scalars": 8, "vectors": 2, "num_layers": 1}},
           "schedule": {"kind": "memoryless", "t_start": 0.001},
           "method": {"kind": "flow_matching", "steps": 20, "batch_size": 8, "lr": 3e-3}}
    run_training_job(job_config_from_dict(job), tmp_path / "flow", progress=False)
    path = tmp_path / "flow" / "model.pt"
    variants = [parse_variant(f"ode={path}"), parse_variant(f"sde={path}:sde:12:start_refined")]
    assert (variants[1].solver, variants[1].steps, variants[1].grid) == ("sde", 12, "start_refined")
    summary = compare_held_out(variants, molecules=2, conformers=6)
    assert set(summary) == {"ode", "sde"}
    for row in summary.values():
        assert row["molecules"] == 2 and 0.0 <= row["valid_share"] <= 1.0
        assert row["median_mmff_above_lowest"] >= 0.0 and row["mean_mmff_above_lowest"] >= 0.0
        assert 1.0 <= row["distinct_at_1A"] <= row["valid_share"] * 6  # pruning keeps at least one per molecule
    assert summary["ode"]["mean_mmff_above_lowest"] != summary["sde"]["mean_mmff_above_lowest"]  # other draws
    windowed = parse_variant(f"w={path}:ode:10:uniform:0.6")
    assert (windowed.solver, windowed.control_from) == ("ode", 0.6) and variants[0].control_from is None
    for bad, message in [("nameonly", "NAME=PATH"), (f"x={path}:sde:many:uniform", "NAME=PATH"),
                         (f"x={path}:ode:10:uniform:late", "CONTROL_FROM"), ("x=/nonexistent.pt", "does not exist")]:
        with pytest.raises(ConfigError, match=message):
            parse_variant(bad)
    assert main(["--variant", "x=/nonexistent.pt"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--variant", f"x={path}:ode:10:uniform:0.5", "--molecules", "1"]) == 2  # a flow has no control
    assert "adjoint_matching" in capsys.readouterr().err
