"""End to end: `adjoint-sampling bench conformers run/merge` on a tiny synthetic reference set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adjoint_sampling.benchmarks.conformers.merge import merge_records
from adjoint_sampling.benchmarks.conformers.methods import parse_methods, parse_models
from adjoint_sampling.benchmarks.conformers.metrics import THRESHOLDS, threshold_index
from adjoint_sampling.benchmarks.conformers.records import append_records, read_records
from adjoint_sampling.chemistry.embedding import embed_etkdg
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.cli.entry import main
from adjoint_sampling.core.errors import ConfigError

MOLECULES = {"m_a": "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "m_b": "CCOC(=O)c1ccc(Cl)cc1", "m_missing": "CCCCO"}
NUM_REFERENCES = 3
SEED = 0


def _write_xyz(path: Path, symbols: list[str], blocks: np.ndarray) -> None:
    lines = []
    for i, block in enumerate(blocks):
        lines += [str(len(symbols)), f"  {-20.0 + i:.6f}"]
        lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(symbols, block)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """References = every other conformer ETKDG draws with the benchmark's seed, atoms shuffled.

    The file has one reference more than the run uses (``--max-references 3``).
    """
    root = tmp_path_factory.mktemp("data")
    lines = ["Rotatable_Bonds\tSMILES\tHash_Name"] + [f"3\t{s}\t{m}" for m, s in MOLECULES.items()]
    (root / "spice_test.txt").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    for mol_id in ("m_a", "m_b"):
        mol = parse_smiles(MOLECULES[mol_id]).mol
        drawn = embed_etkdg(mol, 2 * NUM_REFERENCES, SEED)
        references = np.concatenate([drawn[::2], embed_etkdg(mol, 1, seed=99)])
        order = rng.permutation(mol.GetNumAtoms())
        symbols = [mol.GetAtomWithIdx(int(i)).GetSymbol() for i in order]
        _write_xyz(root / "spice_test_conformers" / mol_id / "crest_conformers.xyz", symbols, references[:, order])
    return root


def _run(data_dir: Path, out: Path, *extra: str) -> int:
    return main(
        ["bench", "conformers", "run", "--data-dir", str(data_dir), "--out", str(out), "--no-progress",
         "--max-references", str(NUM_REFERENCES), "--seed", str(SEED), *extra]
    )


def _by_key(records: list[dict]) -> dict:
    return {(r["mol_id"], r["method"]): r for r in records}


@pytest.fixture(scope="module")
def full_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    assert _run(data_dir, out, "--methods", "etkdg,etkdg+mmff") == 0
    return out


def test_run_records_metrics_and_report(full_run: Path) -> None:
    records = _by_key(read_records(full_run / "per_molecule.jsonl"))
    assert set(records) == {("m_a", "etkdg"), ("m_a", "etkdg+mmff"), ("m_b", "etkdg"), ("m_b", "etkdg+mmff"), ("m_missing", None)}
    assert records[("m_missing", None)]["status"] == "skipped"
    assert records[("m_missing", None)]["reason"] == "missing_reference"
    small = threshold_index(THRESHOLDS, 0.125)
    for mol_id in ("m_a", "m_b"):
        plain = records[(mol_id, "etkdg")]
        assert plain["status"] == "ok" and plain["num_references"] == NUM_REFERENCES
        assert plain["num_reference_blocks"] == NUM_REFERENCES + 1 and plain["reference_unmatched"] == {}
        assert plain["num_requested"] == plain["num_generated"] == plain["num_valid"] == 2 * NUM_REFERENCES
        # every reference is one of the generated conformers (after undoing the atom shuffle)
        assert plain["cov_r"][small] == 1.0 and plain["amr_r"] < 1e-4
        assert plain["cov_p"][small] >= 0.5  # half the generated conformers are the references
        assert plain["wall_s"] > 0 and plain["cpu_s"] > 0 and plain["wall_s_per_conformer"] > 0
        relaxed = records[(mol_id, "etkdg+mmff")]
        assert relaxed["amr_r"] > 1e-3  # relaxed conformers moved away from the unrelaxed references
        assert relaxed["timings"]["reused_cpu"] > 0  # the embedding was shared and charged
        assert relaxed["cpu_s"] >= relaxed["timings"]["reused_cpu"]
    # the flexible molecule's other generated conformers are distinct (not copies of the references)
    assert records[("m_a", "etkdg")]["cov_p"][small] < 1.0
    summary = (full_run / "summary.md").read_text()
    assert "| etkdg | 2 (0) | 100.0 / 100.0 | 100.0 / 100.0 | 100.0 / 100.0 |" in summary
    assert "m_missing | missing_reference" in summary
    methods = json.loads((full_run / "summary.json").read_text())
    assert [m["method"] for m in methods] == ["etkdg", "etkdg+mmff"]
    assert methods[0]["cov_r_mean"][small] == 1.0
    assert (full_run / "coverage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_resumes(data_dir: Path, full_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = full_run / "per_molecule.jsonl"
    before = path.read_text()
    with path.open("a") as handle:
        handle.write('{"mol_id": "m_a", "meth')  # a run killed mid-write
    assert _run(data_dir, full_run, "--methods", "etkdg,etkdg+mmff") == 0
    assert "0 new records (4 pairs already done)" in capsys.readouterr().out
    assert path.read_text() == before


def test_shards_merge_to_the_unsharded_result(data_dir: Path, full_run: Path, tmp_path: Path) -> None:
    for shard in ("0/2", "1/2"):
        assert _run(data_dir, tmp_path, "--methods", "etkdg", "--shard", shard) == 0
    shard_files = sorted((tmp_path / "shards").glob("*.jsonl"))
    assert len(shard_files) == 2
    assert {r["mol_id"] for r in read_records(shard_files[0])} == {"m_a", "m_missing"}
    assert main(["bench", "conformers", "merge", str(tmp_path / "shards"), "--out", str(tmp_path)]) == 0
    merged = _by_key(read_records(tmp_path / "per_molecule.jsonl"))
    unsharded = _by_key(read_records(full_run / "per_molecule.jsonl"))
    assert set(merged) == {("m_a", "etkdg"), ("m_b", "etkdg"), ("m_missing", None)}
    for key in (("m_a", "etkdg"), ("m_b", "etkdg")):
        assert merged[key]["cov_r"] == unsharded[key]["cov_r"] and merged[key]["amr_p"] == unsharded[key]["amr_p"]
    assert (tmp_path / "summary.md").exists() and (tmp_path / "coverage.png").exists()


def test_worker_processes_give_the_same_metrics(data_dir: Path, full_run: Path, tmp_path: Path) -> None:
    assert _run(data_dir, tmp_path, "--methods", "etkdg", "--workers", "2") == 0
    parallel = _by_key(read_records(tmp_path / "per_molecule.jsonl"))
    serial = _by_key(read_records(full_run / "per_molecule.jsonl"))
    for key in (("m_a", "etkdg"), ("m_b", "etkdg")):
        assert parallel[key]["cov_r"] == serial[key]["cov_r"] and parallel[key]["amr_r"] == serial[key]["amr_r"]


def test_limit_takes_the_first_molecules(data_dir: Path, tmp_path: Path) -> None:
    assert _run(data_dir, tmp_path, "--methods", "etkdg", "--limit", "1") == 0
    assert {(r["mol_id"], r["method"]) for r in read_records(tmp_path / "per_molecule.jsonl")} == {("m_a", "etkdg")}


def test_merge_prefers_results_over_skips_and_later_inputs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append_records(first, [{"mol_id": "x", "method": None, "status": "skipped"}, {"mol_id": "y", "method": "etkdg", "status": "ok", "amr_r": 1.0}])
    append_records(second, [{"mol_id": "x", "method": "etkdg", "status": "ok"}, {"mol_id": "y", "method": "etkdg", "status": "ok", "amr_r": 2.0}])
    merged = _by_key(merge_records([first, second], tmp_path / "out.jsonl"))
    assert set(merged) == {("x", "etkdg"), ("y", "etkdg")}
    assert merged[("y", "etkdg")]["amr_r"] == 2.0


def test_method_parsing() -> None:
    assert [m.name for m in parse_methods(None, None)] == ["etkdg", "etkdg+mmff"]
    assert [m.name for m in parse_methods(None, Path("model.pt"))] == ["etkdg", "etkdg+mmff", "sampler", "sampler+mmff"]
    spec = parse_methods("etkdg+xtb", None)[0]
    assert (spec.generator, spec.relax, spec.relax_steps) == ("etkdg", "xtb", None)
    capped = parse_methods("etkdg+mmff,etkdg+mmff@50", None)
    assert [(m.name, m.relax, m.relax_steps) for m in capped] == [("etkdg+mmff", "mmff", None), ("etkdg+mmff@50", "mmff", 50)]
    gnn = parse_methods("etkdg+gnn, etkdg+gnn@20,sampler+gnn,sampler+gnn@5", Path("model.pt"))
    assert [(m.name, m.generator, m.relax, m.relax_steps) for m in gnn] == [
        ("etkdg+gnn", "etkdg", "gnn", None), ("etkdg+gnn@20", "etkdg", "gnn", 20),
        ("sampler+gnn", "sampler", "gnn", None), ("sampler+gnn@5", "sampler", "gnn", 5),
    ]
    with pytest.raises(ConfigError, match="needs --checkpoint"):
        parse_methods("sampler+gnn", None)
    for bad, message in [("rdkit", "generator 'rdkit'"), ("etkdg+uff", "relaxation 'uff'"), ("etkdg,etkdg", "twice"),
                         ("sampler", "needs --checkpoint"), ("etkdg+none", "relaxation 'none'"),
                         ("etkdg+mmff@0", "positive integer"), ("etkdg+mmff@ten", "positive integer"),
                         ("etkdg+@5", "relaxation 'none'"), ("etkdg+mmff@5,etkdg+mmff@5", "twice")]:
        with pytest.raises(ConfigError, match=message):
            parse_methods(bad, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "2/2"], "--shard 2/2"),
        (["--shard", "x"], "--shard must look like i/n"),
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--checkpoint", "/nonexistent/model.pt"], "checkpoint /nonexistent/model.pt does not exist"),
        (["--workers", "0"], "workers must be >= 1"),
        (["--methods", "etkdg+gnn", "--energy-model", "/nonexistent/energy.pt"], "energy model '/nonexistent/energy.pt' does not exist"),
    ],
)
def test_cli_errors_are_one_line(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    assert _run(data_dir, tmp_path, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_gnn_relaxation_is_a_method_with_its_energy_model(data_dir: Path, tmp_path: Path) -> None:
    from molecular_helpers import write_tiny_gnn_checkpoint

    checkpoint = write_tiny_gnn_checkpoint(tmp_path / "tiny.pt", elements=(1, 6, 8), max_atoms=10)  # H C O, small
    out = tmp_path / "out"
    assert _run(data_dir, out, "--methods", "etkdg,etkdg+gnn@2", "--energy-model", str(checkpoint), "--limit", "1") == 0
    records = _by_key(read_records(out / "per_molecule.jsonl"))
    assert set(records) == {("m_a", "etkdg"), ("m_a", "etkdg+gnn@2")}
    relaxed = records[("m_a", "etkdg+gnn@2")]
    assert relaxed["status"] == "ok" and relaxed["num_generated"] == 2 * NUM_REFERENCES and "relax" in relaxed["timings"]
    assert records[("m_a", "etkdg")]["warnings"] == []
    assert [w.split(":")[0] for w in relaxed["warnings"]] == ["gnn_extrapolation"]  # 33 atoms > 10


def test_missing_data_dir_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "conformers", "run", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "test list" in capsys.readouterr().err


@pytest.mark.slow
def test_trained_sampler_plugs_in_from_a_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    from molecular_helpers import tiny_job

    from adjoint_sampling.training.config import job_config_from_dict
    from adjoint_sampling.training.jobs import run_training_job

    run_training_job(job_config_from_dict(tiny_job("torsional")), tmp_path / "run", progress=False)
    checkpoint = tmp_path / "run" / "model.pt"
    assert _run(data_dir, tmp_path / "out", "--checkpoint", str(checkpoint), "--methods", "sampler,sampler+mmff", "--limit", "1") == 0
    records = _by_key(read_records(tmp_path / "out" / "per_molecule.jsonl"))
    assert set(records) == {("m_a", "sampler"), ("m_a", "sampler+mmff")}
    for record in records.values():
        assert record["status"] == "ok" and record["num_requested"] == 2 * NUM_REFERENCES
        assert record["num_compared"] == record["num_valid"] <= record["num_generated"]
        assert 0.0 <= record["cov_r"][-1] <= 1.0 and record["amr_r"] > 0
    assert records[("m_a", "sampler+mmff")]["num_compared"] >= 1
    # --sampler-energy swaps the backend of the reported energies, not the samples
    from adjoint_sampling.benchmarks.conformers.methods import MethodOptions, build_generator
    from adjoint_sampling.generation.types import GenerationRequest

    request = GenerationRequest("CCCO", num_conformers=3, seed=1)
    own = build_generator("sampler", MethodOptions(checkpoint=checkpoint)).generate(request)
    xtb = build_generator("sampler", MethodOptions(checkpoint=checkpoint, sampler_energy="xtb")).generate(request)
    assert (own.energy_model, xtb.energy_model) == ("mmff", "xtb")
    np.testing.assert_array_equal(np.stack([c.positions for c in own.conformers]), np.stack([c.positions for c in xtb.conformers]))
    assert [c.energy for c in own.conformers] != [c.energy for c in xtb.conformers]


@pytest.mark.slow
def test_named_models_are_compared_with_the_sampler_in_one_run(data_dir: Path, tmp_path: Path) -> None:
    """``--model NAME=PATH`` adds a checkpoint under its own method names; a flow and an Adjoint Sampling
    model run side by side, each on its own checkpoint."""
    from molecular_helpers import tiny_job

    from adjoint_sampling.training.config import job_config_from_dict
    from adjoint_sampling.training.jobs import run_training_job

    run_training_job(job_config_from_dict(tiny_job("torsional")), tmp_path / "as", progress=False)
    flow_job = {**tiny_job("torsional"), "schedule": {"kind": "memoryless", "t_start": 0.001},
                "method": {"kind": "flow_matching", "steps": 3, "batch_size": 4, "sample_sde_steps": 8}}
    del flow_job["trainer"]
    run_training_job(job_config_from_dict(flow_job), tmp_path / "flow", progress=False)
    out = tmp_path / "out"
    assert _run(data_dir, out, "--checkpoint", str(tmp_path / "as" / "model.pt"), "--model",
                f"flow={tmp_path / 'flow' / 'model.pt'}", "--methods", "sampler,flow,flow+mmff", "--limit", "1") == 0
    records = _by_key(read_records(out / "per_molecule.jsonl"))
    assert set(records) == {("m_a", "sampler"), ("m_a", "flow"), ("m_a", "flow+mmff")}
    assert all(r["status"] == "ok" and r["num_generated"] == 2 * NUM_REFERENCES for r in records.values())
    assert records[("m_a", "flow")]["cov_r"] != records[("m_a", "sampler")]["cov_r"] or \
        records[("m_a", "flow")]["amr_r"] != records[("m_a", "sampler")]["amr_r"]  # two different models
    flow = f"flow={tmp_path / 'flow' / 'model.pt'}"
    for items, message in [([flow, flow], "already taken"), (["etkdg=x"], "already taken"), (["1x=a"], "NAME=PATH"),
                           (["new=/nonexistent.pt"], "does not exist")]:
        with pytest.raises(ConfigError, match=message):
            parse_models(items)
