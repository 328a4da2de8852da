"""Synthetic benchmark: aligned distances, W2, MCMC references and the bench command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import torch
from trainer_helpers import REPO, _tiny_trainer, kill_process_tree

from adjoint_sampling.benchmarks.synthetic.mcmc import (
    MCMCSettings,
    load_mcmc_state,
    run_reference_mcmc,
    run_resumable_mcmc,
)
from adjoint_sampling.benchmarks.synthetic.metrics import aligned_sq_distances, energy_w2, wasserstein2_from_cost
from adjoint_sampling.benchmarks.synthetic.sampling import sample_checkpoint
from adjoint_sampling.cli.entry import main
from adjoint_sampling.energy.synthetic import DoubleWellEnergy, LennardJonesEnergy
from adjoint_sampling.models.checkpoint import load_model_checkpoint


def _rot2(theta):
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def test_aligned_distance_invariances_dw4_exact():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, 2, generator=gen, dtype=torch.float64)
    reflect = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    b = (a @ _rot2(0.7) @ reflect)[:, [3, 1, 0, 2]] + torch.tensor([2.0, -1.0], dtype=torch.float64)
    assert float(aligned_sq_distances(a, b).diag().max()) < 1e-20
    # against brute force over a fine rotation grid (both chiralities) and all permutations
    x, y = a[:1], torch.randn(1, 4, 2, generator=gen, dtype=torch.float64)
    exact = float(aligned_sq_distances(x, y))
    xc, yc = x[0] - x[0].mean(0), y[0] - y[0].mean(0)
    import itertools
    brute = min(
        float((xc - yc[list(p)] @ _rot2(th) @ m).pow(2).sum())
        for p in itertools.permutations(range(4))
        for th in torch.linspace(0, 2 * math.pi, 721).tolist()
        for m in (torch.eye(2, dtype=torch.float64), reflect)
    )
    assert exact <= brute + 1e-12 and brute - exact < 1e-3 * max(exact, 1.0)


def test_aligned_distance_lj_heuristic_recovers_symmetric_copies():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(4, 13, 3, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    b = (a @ q)[:, torch.randperm(13, generator=gen)] + 0.5
    d = aligned_sq_distances(a, b)
    assert float(d.diag().max()) < 1e-16
    assert float(d.fill_diagonal_(float("inf")).min()) > 1.0  # distinct random clusters stay apart


def test_w2_numbers():
    cost = torch.tensor([[4.0, 0.0, 9.0], [0.0, 4.0, 9.0], [9.0, 9.0, 1.0]])
    assert wasserstein2_from_cost(cost) == pytest.approx(math.sqrt(1.0 / 3.0))
    e = torch.randn(100, dtype=torch.float64)
    assert energy_w2(e, e[torch.randperm(100)] + 2.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="equally sized"):
        wasserstein2_from_cost(torch.zeros(2, 3))


def test_mcmc_samples_a_known_gaussian():
    """Two particles with E = d^2 / 2 in 2D: the relative vector is N(0, I), so each centred
    coordinate has variance 1/4 and E[E] = 1 (2 degrees of freedom, tau = 1). 10% tolerance."""
    spring = DoubleWellEnergy(n_particles=2, dim=2, a=0.0, b=0.5, c=0.0, d0=0.0)
    res = run_reference_mcmc(spring, MCMCSettings(num_chains=1000, num_steps=1500, burn_in=500, num_temperatures=2,
                                                  max_temperature=2.0, init_scale=2.0, seed=0))
    assert res.samples.shape == (1000, 2, 2)
    assert torch.allclose(res.samples.sum(1), torch.zeros(1000, 2, dtype=torch.float64), atol=1e-10)
    assert float(res.samples.var(0).mean()) == pytest.approx(0.25, rel=0.1)
    assert float(res.energies.mean()) == pytest.approx(1.0, rel=0.1)
    assert 0.4 < res.acceptance[0] < 0.75 and len(res.swap_acceptance) == 1
    assert res.warnings == [] and abs(res.energy_drift_z) < 4.0


def test_mcmc_warns_when_chains_are_not_at_equilibrium(tmp_path, capsys):
    """A start far out in the tail with too few steps is still relaxing after burn-in, and two
    temperatures 50x apart never swap: both are reported, in the result and by the bench."""
    spring = DoubleWellEnergy(n_particles=2, dim=2, a=0.0, b=0.5, c=0.0, d0=0.0)
    res = run_reference_mcmc(spring, MCMCSettings(num_chains=500, num_steps=80, burn_in=40, num_temperatures=2,
                                                  max_temperature=50.0, init_scale=300.0, seed=0))
    assert res.energy_drift < 0 and res.energy_drift_z < -4.0
    assert len(res.warnings) == 2 and "not at equilibrium" in res.warnings[0] and "swap" in res.warnings[1]
    assert res.summary()["warnings"] == res.warnings
    ref = tmp_path / "ref.pt"
    torch.save({"samples": res.samples.float(), "energies": res.energies, "summary": res.summary(),
                "energy": DoubleWellEnergy().params()}, ref)
    assert main(["bench", "synthetic", "--system", "dw4", "--reference", str(ref), "--reference-only"]) == 0
    assert capsys.readouterr().out.count("WARNING: reference") == 2


def test_reference_ladder_options_and_their_errors(tmp_path, capsys):
    """--mcmc-chains / --mcmc-temperatures / --mcmc-max-temperature set a new reference's ladder
    (the settings travel in the file); impossible values get a one-line error and write nothing."""
    ref = tmp_path / "ref.pt"
    base = ["bench", "synthetic", "--system", "dw4", "--reference", str(ref), "--make-reference", "--reference-only",
            "--mcmc-steps", "20"]
    assert main(base + ["--mcmc-chains", "16", "--mcmc-temperatures", "3", "--mcmc-max-temperature", "1.6"]) == 0
    settings = torch.load(ref, weights_only=False)["summary"]["settings"]
    assert (settings["num_chains"], settings["num_temperatures"], settings["max_temperature"]) == (16, 3, 1.6)
    assert torch.load(ref, weights_only=False)["samples"].shape == (16, 4, 2)
    ref.unlink()
    for bad in (["--mcmc-chains", "0"], ["--mcmc-max-temperature", "0.5"], ["--device", "tpu"]):
        capsys.readouterr()
        assert main(base + bad) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not ref.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on a lent GPU machine)")
def test_mcmc_on_cuda_follows_the_cpu_random_stream():
    spring = DoubleWellEnergy(n_particles=2, dim=2, a=0.0, b=0.5, c=0.0, d0=0.0)
    settings = MCMCSettings(num_chains=200, num_steps=100, burn_in=50, num_temperatures=2, max_temperature=2.0,
                            init_scale=2.0, seed=0)
    cpu, gpu = run_reference_mcmc(spring, settings), run_reference_mcmc(spring, settings, device="cuda")
    assert gpu.samples.device.type == "cpu" and torch.allclose(cpu.samples, gpu.samples, atol=1e-6)
    assert cpu.acceptance == pytest.approx(gpu.acceptance, abs=1e-3)


def test_bench_command_end_to_end(tmp_path, capsys):
    trainer = _tiny_trainer(tmp_path / "run", iterations=2)
    trainer.run()
    ref = tmp_path / "ref.pt"
    out = tmp_path / "result.json"
    argv = ["bench", "synthetic", "--system", "dw4", "--model", str(tmp_path / "run" / "model.pt"), "--reference",
            str(ref), "--make-reference", "--mcmc-steps", "200", "--num-samples", "300", "--output", str(out)]
    assert main(argv + ["--shapes"]) == 0
    result = json.loads(out.read_text())
    assert result["num_samples"] == 300 and result["paper_w2"] == 0.62
    assert sum(row["generated"] for row in result["shapes"]["table"]) == 300
    assert result["shapes"]["energy_w2_at_reference_shape_shares"] >= 0
    reference = torch.load(ref, weights_only=False)
    assert reference["summary"]["settings"]["num_steps"] == 200 and reference["samples"].shape == (2000, 4, 2)
    # the reported numbers are the metrics of the seeded samples
    gen_x, gen_e = sample_checkpoint(load_model_checkpoint(tmp_path / "run" / "model.pt"), 300, 0)
    ref_x, ref_e = reference["samples"][:300].double(), reference["energies"][:300]
    assert result["w2"] == pytest.approx(wasserstein2_from_cost(aligned_sq_distances(gen_x, ref_x)), rel=1e-9)
    assert result["energy_w2"] == pytest.approx(energy_w2(gen_e, ref_e), rel=1e-9)
    assert "W2" in capsys.readouterr().out
    # a model of another system is refused with a clear message
    assert main(["bench", "synthetic", "--system", "lj13", "--model", str(tmp_path / "run" / "model.pt"),
                 "--reference", str(ref)]) == 2


def test_restart_diagnostic(tmp_path, capsys):
    """Restarting near t = 1 from the reference's bridges gives the reference back, whatever the
    control; restarting at 0 is the model's own sampling. The CLI reports both."""
    from adjoint_sampling.benchmarks.synthetic.restart import restarted_samples

    trainer = _tiny_trainer(tmp_path / "run", iterations=1)
    trainer.run()
    ckpt = load_model_checkpoint(tmp_path / "run" / "model.pt")
    gen = torch.Generator().manual_seed(0)
    reference = torch.randn(200, 4, 2, generator=gen, dtype=torch.float64) * 2.0
    reference = reference - reference.mean(dim=1, keepdim=True)
    ref_e = DoubleWellEnergy().energy(reference)
    late_x, late_e = restarted_samples(ckpt, reference, 0.995, seed=1)
    assert (late_x - reference).abs().max() < 0.2
    assert energy_w2(late_e, ref_e) < 0.1 * energy_w2(restarted_samples(ckpt, reference, 0.0, seed=1)[1], ref_e)
    with pytest.raises(ValueError, match="t0"):
        restarted_samples(ckpt, reference, 1.0, seed=1)
    ref = tmp_path / "ref.pt"
    torch.save({"samples": reference.float(), "energies": ref_e, "summary": {"acceptance": [0.5]}}, ref)
    argv = ["bench", "synthetic", "--system", "dw4", "--model", str(tmp_path / "run" / "model.pt"), "--reference",
            str(ref), "--num-samples", "200", "--restart-times", "0,0.5"]
    assert main(argv) == 0
    assert capsys.readouterr().out.count("restart at t0") == 2
    assert main(argv[:-1] + ["0.5,1.5"]) == 2
    assert "--restart-times" in capsys.readouterr().err


def test_shapes_count_short_pairs_and_separate_within_shape_error(tmp_path, capsys):
    from adjoint_sampling.benchmarks.synthetic.shapes import (
        energy_w2_at_reference_shape_shares,
        shape_table,
        short_pair_counts,
    )

    energy = DoubleWellEnergy()
    square = torch.tensor([[0.0, 0.0], [3.0, 0.0], [3.0, 3.0], [0.0, 3.0]])  # sides 3, diagonals 4.24
    line = torch.tensor([[0.0, 0.0], [3.0, 0.0], [6.0, 0.0], [9.0, 0.0]])  # 3 neighbours short
    dimers = torch.tensor([[0.0, 0.0], [2.5, 0.0], [0.0, 6.0], [2.5, 6.0]])
    assert short_pair_counts(torch.stack([square, line, dimers]).double(), energy).tolist() == [4, 3, 2]
    # samples of the reference itself, with the in-between shapes 8 times over-represented: the
    # energy W2 is large, but it all comes from the shape weights
    ref = torch.load(REPO / "benchmarks" / "synthetic" / "references" / "dw4.pt", weights_only=False)
    ref_x, ref_e = ref["samples"].double(), ref["energies"].double()
    k = short_pair_counts(ref_x, energy)
    rare = torch.nonzero((k == 3) | (k == 5)).flatten()
    idx = torch.cat([torch.arange(1000), rare.repeat(8)])[:2000]
    gen_x, gen_e = ref_x[idx], ref_e[idx]
    table = {row["short_pairs"]: row for row in shape_table(gen_x, gen_e, ref_x, ref_e, energy)}
    assert table[3]["reference"] == int((k == 3).sum()) and table[3]["generated"] > 4 * table[3]["reference"]
    assert table[2]["reference_energy_mean"] == pytest.approx(float(ref_e[k == 2].mean()))
    whole = energy_w2(gen_e, ref_e)
    within = energy_w2_at_reference_shape_shares(gen_x, gen_e, ref_x, ref_e, energy)
    assert whole > 1.0 and within < 0.25 * whole
    # the CLI refuses the option for Lennard-Jones clusters
    assert main(["bench", "synthetic", "--system", "lj13", "--shapes"]) == 2
    assert "double-well" in capsys.readouterr().err


def test_random_walk_samples_relax_to_the_double_well_basins():
    from adjoint_sampling.benchmarks.synthetic.oracle_fit import random_walk_samples

    energy = DoubleWellEnergy()
    x, e, acceptance = random_walk_samples(energy, num_chains=300, num_steps=2000, step_size=0.3, seed=0)
    assert x.shape == (300, 4, 2) and torch.allclose(x.mean(1), torch.zeros(300, 2, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(e, energy.energy(x))
    assert 0.05 < acceptance < 0.9
    start = energy.energy(2.0 * torch.randn(300, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    # equilibrium mean energy is -22.6; N(0, 2^2) starts are far above it
    assert float(start.mean()) > 0 and float(e.mean()) < -19.0


@pytest.mark.parametrize("ram_target", ["sample", "batch_posterior"])
def test_oracle_fit_lowers_the_ram_loss_of_a_fresh_controller(ram_target):
    """Either target (same minimiser) fits; the held-out loss is the paper's RAM loss in both cases."""
    from adjoint_sampling.benchmarks.synthetic.oracle_fit import FitSettings, fit_on_samples, random_walk_samples
    from adjoint_sampling.method.adjoint import terminal_adjoint
    from adjoint_sampling.method.losses import ram_loss
    from adjoint_sampling.problems.synthetic import SyntheticProblem

    template = load_model_checkpoint(REPO / "benchmarks" / "synthetic" / "models" / "dw4.pt")
    samples, _, _ = random_walk_samples(DoubleWellEnergy(), 200, 1000, 0.3, seed=1)
    fitted, losses = fit_on_samples(template, samples, FitSettings(steps=600, batch_size=64, lr=3e-3, seed=0,
                                                                            ram_target=ram_target, posterior_group_size=16),
                                    controller_hparams={"hidden": 32, "num_layers": 2})
    assert len(losses) == 6 and fitted.counters == {"oracle_fit_steps": 600}
    # held-out RAM loss on fixed bridges: the fitted control beats the untrained one (zero output)
    problem = SyntheticProblem.from_name("dw4")
    gen = torch.Generator().manual_seed(3)
    held_out, _, _ = random_walk_samples(DoubleWellEnergy(), 256, 1000, 0.3, seed=2)
    rows = held_out.reshape(-1, 2).float()
    batch = problem.make_batch([0] * 256)
    _, grad = problem.energy_model.energy_and_grad(held_out)
    schedule = template.build_schedule()
    adj = terminal_adjoint(grad.float().reshape(-1, 2), rows, batch.space, schedule, 1.0, 30.0)
    t = torch.rand(256, generator=gen)
    xt = batch.space.sample_bridge(rows, t, schedule, gen)
    with torch.no_grad():
        loss_fitted = float(ram_loss(fitted.build_controller()(t, xt, batch), adj, batch.space))
    loss_zero = float(ram_loss(torch.zeros_like(rows), adj, batch.space))
    assert loss_fitted < 0.95 * loss_zero  # the irreducible part is about 2/3 of loss_zero


def test_oracle_fit_draws_its_loss_times_as_the_trainer_does(recorded_loss_times):
    """A loss-time window (the trainer's option) puts that share of the fit's RAM times inside it."""
    from adjoint_sampling.benchmarks.synthetic.oracle_fit import FitSettings, fit_on_samples, random_walk_samples

    template = load_model_checkpoint(REPO / "benchmarks" / "synthetic" / "models" / "dw4.pt")
    samples, _, _ = random_walk_samples(DoubleWellEnergy(), 32, 50, 0.3, seed=1)
    settings = FitSettings(steps=40, batch_size=64, loss_time_window=(0.85, 1.0), loss_time_window_fraction=0.5)
    fit_on_samples(template, samples, settings, controller_hparams={"hidden": 8, "num_layers": 1})
    times = torch.cat(recorded_loss_times)
    assert len(times) == 40 * 64 and times.dtype == torch.float32
    inside = float((times >= 0.85).double().mean())
    assert inside == pytest.approx(0.5 + 0.5 * 0.15, abs=0.04)


def test_oracle_fit_rejects_an_unknown_target():
    from adjoint_sampling.benchmarks.synthetic.oracle_fit import FitSettings
    from adjoint_sampling.core.errors import ConfigError

    with pytest.raises(ConfigError, match="ram_target must be one of"):
        FitSettings(ram_target="mean")
    with pytest.raises(ConfigError, match="loss_time_window must be"):
        FitSettings(loss_time_window=(0.9, 0.5), loss_time_window_fraction=0.5)


def test_path_weights_correct_a_too_hot_dw4_models_energies(tmp_path, capsys):
    """The archived plain-RAM DW-4 controller is about 1 energy unit too hot; weighting its samples
    by their path importance weights brings the mean energy within 0.5 of the reference's (1,000
    samples, seed 0), and the CLI reports the resampled set beside the raw one."""
    from adjoint_sampling.benchmarks.synthetic.sampling import sample_checkpoint_with_log_weights

    model = REPO / "benchmarks" / "synthetic" / "models" / "archive" / "dw4_plain.pt"
    reference = torch.load(REPO / "benchmarks" / "synthetic" / "references" / "dw4.pt", weights_only=False)
    ref_mean = float(reference["energies"].mean())
    ckpt = load_model_checkpoint(model)
    x, e, log_w = sample_checkpoint_with_log_weights(ckpt, 1000, 0)
    x_plain, e_plain = sample_checkpoint(ckpt, 1000, 0)
    assert torch.equal(x, x_plain) and torch.equal(e, e_plain) and log_w.shape == (1000,)
    weighted_mean = float((torch.softmax(log_w, 0) * e).sum())
    assert float(e.mean()) - ref_mean > 0.6
    assert abs(weighted_mean - ref_mean) < 0.5
    out = tmp_path / "result.json"
    argv = ["bench", "synthetic", "--system", "dw4", "--model", str(model), "--num-samples", "300",
            "--importance-resample", "--output", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    resampled = result["importance_resampled"]
    assert 0 < result["importance_effective_fraction"] <= 1 and 1 <= resampled["distinct"] <= 300
    assert resampled["energy_w2"] < result["energy_w2"]
    assert "resampled by importance weight" in capsys.readouterr().out


def test_lj_pair_convention_travels_from_config_to_checkpoint_to_bench(tmp_path, capsys):
    """A job config chooses the Lennard-Jones convention, the checkpoint's problem records it, and the
    bench compares a model only with a reference of the same energy."""
    from adjoint_sampling.core.errors import ConfigError
    from adjoint_sampling.energy.synthetic import build_synthetic_energy
    from adjoint_sampling.problems.synthetic import SyntheticProblem
    from adjoint_sampling.training.synthetic_job import build_synthetic_problem

    assert build_synthetic_problem({"kind": "synthetic", "system": "lj13"}).energy_model.pair_sum == "ordered"
    unordered = build_synthetic_problem({"kind": "synthetic", "system": "lj13", "pair_sum": "unordered"})
    assert SyntheticProblem.from_description(unordered.describe()).energy_model.params() == \
        unordered.energy_model.params()
    with pytest.raises(ConfigError, match="pair_sum"):
        build_synthetic_problem({"kind": "synthetic", "system": "lj13", "pair_sum": "half"})

    legacy_model = REPO / "benchmarks" / "synthetic" / "models" / "archive" / "lj13_unordered.pt"
    legacy_ref = REPO / "benchmarks" / "synthetic" / "references" / "archive" / "lj13_unordered.pt"
    # written before the option existed: both read as the i < j sum
    assert SyntheticProblem.from_description(load_model_checkpoint(legacy_model).problem).energy_model.pair_sum == \
        "unordered"
    out = tmp_path / "legacy.json"
    argv = ["bench", "synthetic", "--system", "lj13", "--model", str(legacy_model), "--num-samples", "40",
            "--output", str(out)]
    assert main(argv + ["--reference", str(legacy_ref)]) == 0
    result = json.loads(out.read_text())
    assert result["energy"]["pair_sum"] == "unordered" and result["num_samples"] == 40
    # the same model against a reference of the papers' convention is refused in one line
    ordered = build_synthetic_energy("lj13")
    x = torch.load(legacy_ref, weights_only=False)["samples"][:40].double()
    ref = tmp_path / "ordered_ref.pt"
    torch.save({"samples": x.float(), "energies": ordered.energy(x), "summary": {"acceptance": [0.5]},
                "energy": ordered.params()}, ref)
    capsys.readouterr()
    assert main(argv + ["--reference", str(ref)]) == 2
    assert "same energy" in capsys.readouterr().err


def test_energy_tail_summary_separates_rare_overlaps_from_a_shifted_distribution():
    from adjoint_sampling.benchmarks.synthetic.metrics import energy_tail_summary
    from adjoint_sampling.energy.synthetic import build_synthetic_energy

    lj = build_synthetic_energy("lj13")
    ref = torch.load(REPO / "benchmarks" / "synthetic" / "references" / "lj13.pt", weights_only=False)
    x, e = ref["samples"][:1000].double(), ref["energies"][:1000].double()
    # 1 % of the samples get two particles pushed onto each other: the whole energy W2 explodes,
    # the lowest 99 % still match, and exactly those samples count as overlaps
    bad = x.clone()
    bad[:10, 1] = bad[:10, 0] + 0.3 * (bad[:10, 1] - bad[:10, 0]) / (bad[:10, 1] - bad[:10, 0]).norm(dim=-1, keepdim=True)
    bad_e = lj.energy(bad)
    tail = energy_tail_summary(bad, bad_e, x, e)
    assert energy_w2(bad_e, e) > 100.0 and tail["energy_w2_lowest_99pct"] < 1.0
    assert tail["overlap_share"] == pytest.approx(0.01) and 0.3 < tail["ref_closest_pair"] < 1.0
    assert tail["ref_energy_median"] == pytest.approx(float(e.median()))
    # a distribution shifted as a whole keeps its energy W2 after the tail is dropped
    shifted = energy_tail_summary(x, e + 5.0, x, e)
    assert shifted["energy_w2_lowest_99pct"] == pytest.approx(5.0) and shifted["overlap_share"] == 0.0


def test_hmc_samples_known_distributions():
    """HMC: the 2D spring's relative vector is N(0, I) (E[E] = 1); a Lennard-Jones cluster with the
    pair term switched off is a Gaussian on the zero-CoM subspace, 12 x 3 = 36 degrees of freedom,
    so E[E] = 18 at T = 1 (tau = 1). Centres of mass stay at 0."""
    spring = DoubleWellEnergy(n_particles=2, dim=2, a=0.0, b=0.5, c=0.0, d0=0.0)
    res = run_reference_mcmc(spring, MCMCSettings(num_chains=1000, num_steps=400, burn_in=200, num_temperatures=2,
                                                  max_temperature=2.0, init_scale=2.0, kernel="hmc",
                                                  leapfrog_steps=5, initial_step_size=0.2, seed=0))
    assert float(res.samples.var(0).mean()) == pytest.approx(0.25, rel=0.1)
    assert float(res.energies.mean()) == pytest.approx(1.0, rel=0.1)
    assert 0.5 < res.acceptance[0] < 0.8 and res.warnings == []
    harmonic = LennardJonesEnergy(n_particles=13, epsilon=0.0)
    res = run_reference_mcmc(harmonic, MCMCSettings(num_chains=500, num_steps=300, burn_in=150, num_temperatures=3,
                                                    max_temperature=1.5, kernel="hmc", leapfrog_steps=5,
                                                    initial_step_size=0.3, seed=1))
    assert float(res.energies.mean()) == pytest.approx(18.0, rel=0.05)
    assert torch.allclose(res.samples.sum(1), torch.zeros(500, 3, dtype=torch.float64), atol=1e-9)
    assert all(a > 0.2 for a in res.swap_acceptance)


def test_reference_run_in_pieces_equals_one_run(tmp_path):
    """A run cut into pieces (across the end of burn-in, with swaps) gives exactly the samples,
    rates and energy trace of one uninterrupted run; the state on disk records how far it got."""
    lj = LennardJonesEnergy(n_particles=13)
    settings = MCMCSettings(num_chains=16, num_steps=40, burn_in=15, num_temperatures=3, max_temperature=1.5,
                            kernel="hmc", leapfrog_steps=3, init="grid", init_scale=1.1, swap_interval=2, seed=3)
    whole = run_reference_mcmc(lj, settings)
    state_path = tmp_path / "state.pt"
    for expected_step in (13, 26):
        result, state = run_resumable_mcmc(lj, settings, state_path, max_steps=13, save_every=4)
        assert result is None and state.step == expected_step == load_mcmc_state(state_path).step
    result, state = run_resumable_mcmc(lj, settings, state_path, save_every=4)
    assert state.step == 40 and torch.equal(result.samples, whole.samples)
    assert result.acceptance == whole.acceptance and result.swap_acceptance == whole.swap_acceptance
    assert result.trace == whole.trace and len(result.trace) == 40


def _reference_cmd(ref, state, steps, chains="50", extra=()):
    return ["bench", "synthetic", "--system", "dw4", "--reference", str(ref), "--make-reference", "--reference-only",
            "--mcmc-state", str(state), "--mcmc-steps", str(steps), "--mcmc-chains", chains, *extra]


def test_reference_run_survives_sigkill(tmp_path):
    """SIGKILL in the middle of a resumable reference run loses at most the steps since its last save:
    the same command run again finishes it, with the samples of one uninterrupted run."""
    ref, state = tmp_path / "ref.pt", tmp_path / "state.pt"
    argv = _reference_cmd(ref, state, 6000, extra=("--mcmc-save-every", "200"))
    proc = subprocess.Popen([sys.executable, "-m", "adjoint_sampling.cli", *argv], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_process_tree(proc)
    saved = load_mcmc_state(state)
    assert 200 <= saved.step < 6000 and not ref.exists()
    assert main(argv + ["--mcmc-save-every", "200"]) == 0
    settings = MCMCSettings(**saved.settings)
    whole = run_reference_mcmc(DoubleWellEnergy(), settings)
    done = torch.load(ref, weights_only=False)
    assert torch.equal(done["samples"], whole.samples.float()) and done["summary"]["trace"] == whole.trace


def test_reference_run_in_chunks_and_its_errors(tmp_path, capsys):
    """--mcmc-chunk-steps stops a run with its state saved and says so; no reference is written until
    the run ends, and a model cannot be compared with it before. Resuming under other settings, or
    chunks without a state file, get a one-line error and leave the state as it was."""
    ref, state = tmp_path / "ref.pt", tmp_path / "state.pt"
    argv = _reference_cmd(ref, state, 60, chains="8", extra=("--mcmc-chunk-steps", "25"))
    assert main(argv) == 0
    assert "step 25 of 60" in capsys.readouterr().out and not ref.exists()
    for bad in (_reference_cmd(ref, state, 60, chains="9"), argv[:-2] + ["--mcmc-kernel", "hmc"],
                [a for a in argv if a not in ("--mcmc-state", str(state))]):
        capsys.readouterr()
        assert main(bad) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert load_mcmc_state(state).step == 25
    with_model = [a for a in argv if a != "--reference-only"] + ["--model", str(tmp_path / "model.pt")]
    assert main(with_model) == 2  # runs its chunk, then says the reference is not there yet
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not finished" in err[0] and load_mcmc_state(state).step == 50
    assert main(argv) == 0
    assert "step 60 of 60" in capsys.readouterr().out
    assert torch.load(ref, weights_only=False)["samples"].shape == (8, 4, 2)


def test_committed_lj55_reference_is_an_equilibrium_sample_of_the_papers_energy():
    """The committed LJ-55 reference: 1,000 independent chains of the ordered-pair energy, its stored
    energies those of its samples, centred, inside the papers' histogram range (-380 to -180), and
    its run passed the equilibrium checks (no drift after burn-in, the temperatures swap)."""
    from adjoint_sampling.energy.synthetic import build_synthetic_energy

    ref = torch.load(REPO / "benchmarks" / "synthetic" / "references" / "lj55.pt", weights_only=False)
    lj = build_synthetic_energy("lj55")
    assert ref["energy"] == lj.params() and ref["samples"].shape == (1000, 55, 3)
    x, e = ref["samples"].double(), ref["energies"].double()
    assert torch.allclose(lj.energy(x), e, atol=1e-2)  # samples are stored in float32
    assert float(x.mean(1).abs().max()) < 1e-5
    assert -380.0 < float(e.min()) and float(e.max()) < -180.0
    summary = ref["summary"]
    assert summary["warnings"] == [] and abs(summary["energy_drift_z"]) < 4.0
    assert summary["settings"]["kernel"] == "hmc" and min(summary["swap_acceptance"]) > 0.1
