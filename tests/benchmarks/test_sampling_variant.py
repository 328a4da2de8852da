"""Sampling variants of a checkpoint: same weights, other settings, refused settings named."""

from __future__ import annotations

import torch
from adjoint_sampling.benchmarks.sampling_variant import main
from adjoint_sampling.models.checkpoint import load_model_checkpoint

from adjoint_sampling.core.paths import REPO_ROOT

SHIPPED = REPO_ROOT / "models" / "shipped" / "default.pt"


def test_variant_keeps_the_weights_and_changes_only_the_settings(tmp_path):
    target = tmp_path / "d3.pt"
    assert main([str(SHIPPED), str(target), "--descent-steps", "3", "--descent-step", "0.02", "--quiet-steps", "1",
                 "--output-energy", "xtb", "--clash-repair-steps", "20", "--polish-steps", "7", "--polish-step", "0.02",
                 "--polish-energy", "gnn"]) == 0
    source, variant = load_model_checkpoint(SHIPPED), load_model_checkpoint(target)
    assert (variant.descent_steps, variant.descent_step, variant.quiet_steps) == (3, 0.02, 1)
    assert variant.clash_repair_steps == 20
    assert (variant.polish_steps, variant.polish_step, variant.polish_energy) == (7, 0.02, "gnn")
    assert source.output_energy == "mmff" and variant.output_energy == "xtb"
    assert variant.sde_steps == source.sde_steps and variant.grid_kind == source.grid_kind
    assert all(torch.equal(variant.state_dict[k], v) for k, v in source.state_dict.items())


def test_refused_settings_give_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "bad.pt"
    assert main([str(SHIPPED), str(target), "--quiet-steps", "99"]) == 2
    assert "quiet_steps" in capsys.readouterr().err and not target.exists()
    assert main([str(SHIPPED), str(target), "--descent-steps", "2", "--descent-step", "0"]) == 2  # no step size
    assert "descent" in capsys.readouterr().err
    assert main([str(SHIPPED), str(target), "--clash-repair-steps", "-1"]) == 2
    assert "clash_repair_steps" in capsys.readouterr().err and not target.exists()
    assert main([str(SHIPPED), str(target), "--polish-steps", "3", "--polish-step", "0"]) == 2
    assert "polish" in capsys.readouterr().err and not target.exists()
    assert main([str(tmp_path / "missing.pt"), str(target)]) == 2
    assert "not found" in capsys.readouterr().err
