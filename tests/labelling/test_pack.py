"""The label pack: the same frames as the extxyz files up to its rounding, smaller, and trainable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.labelling.extxyz import LabelledFrame, write_frames_gz
from adjoint_sampling.labelling.fit import fit_config_from_dict, fit_potential, load_molecule_frames
from adjoint_sampling.labelling.pack import FORCE_STEP, POSITION_STEP, main, read_pack, write_pack


def _water_file(path, split: str, mol_id: str):
    """Four frames of a water molecule with random (unphysical) positions, energies and forces."""
    rng = np.random.default_rng(int.from_bytes(mol_id.encode()[-4:], "little"))
    frames = [
        LabelledFrame(atomic_numbers=np.array([8, 1, 1]), positions=rng.normal(size=(3, 3)).round(6),
                      energy_kcal_mol=float(rng.normal(-3000.0, 5.0)), forces_kcal_mol_a=rng.normal(0, 30, (3, 3)),
                      smiles="O", charge=0, multiplicity=1, source="thermal", split=split, mol_id=mol_id, conf_id=k)
        for k in range(4)
    ]
    path.write_bytes(write_frames_gz(frames))
    return path


@pytest.fixture()
def files(data_file, tmp_path):
    return [data_file, _water_file(tmp_path / "chunk-w1.extxyz.gz", "train", "mol-aaa-water"),
            _water_file(tmp_path / "chunk-w2.extxyz.gz", "test", "mol-zzz-water")]


def test_a_pack_reads_back_the_frames_of_its_splits_within_its_rounding(files, tmp_path):
    pack = tmp_path / "labels.pack.npz"
    counts = write_pack(files, pack, splits=("train", "validation"))
    assert counts["molecules"] == 2 and counts["frames"] == 12 + 4
    for splits in (["train"], ["validation"], ["train", "validation"]):
        expected = load_molecule_frames(files, splits)
        got = load_molecule_frames([pack], splits)
        assert [m.mol_id for m in got] == [m.mol_id for m in expected]
        for a, b in zip(expected, got):
            assert torch.equal(a.atomic_numbers, b.atomic_numbers) and a.charge == b.charge
            assert torch.equal(a.energy, b.energy)  # energies are kept exactly
            assert (a.positions - b.positions).abs().max() <= POSITION_STEP / 2 * 1.001
            assert (a.forces - b.forces).abs().max() <= FORCE_STEP / 2 * 1.001
    assert load_molecule_frames([pack], ["test"]) == []  # the test split was not packed
    # a pack and extxyz files together: the union, in mol_id order
    mixed = load_molecule_frames([pack, files[2]], ["train", "test"])
    assert [m.mol_id for m in mixed] == ["mol-aaa-water", "mol-ethanol", "mol-zzz-water"]


def test_a_fit_on_the_pack_follows_the_fit_on_the_extxyz_files(files, tmp_path):
    pack = tmp_path / "labels.pack.npz"
    write_pack(files, pack)
    config = fit_config_from_dict({
        "hparams": {"num_scalars": 8, "num_vectors": 4, "radial_hidden": 8, "cutoff": 4.0},
        "steps": 3, "molecules_per_step": 1, "conformers_per_molecule": 4, "log_every": 1,
    })
    runs = {}
    for name, data in (("extxyz", files), ("pack", [pack])):
        fit_potential(data, config, tmp_path / name)
        runs[name] = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert len(runs["pack"]) == 3
    for a, b in zip(runs["extxyz"], runs["pack"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)


def test_unreadable_packs_and_bad_arguments_get_clear_errors(files, tmp_path, capsys):
    bogus = tmp_path / "bogus.pack.npz"
    bogus.write_bytes(b"not a pack")
    with pytest.raises(ConfigError, match="not a readable label pack"):
        read_pack(bogus, ["train"])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "labels.npz"), str(files[0])])
    assert "must end in .pack.npz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x.pack.npz"), str(tmp_path / "nothing-*.extxyz.gz")])
    assert "no file matches" in capsys.readouterr().err
    assert main([str(tmp_path / "x.pack.npz"), str(files[1])]) == 0
    assert "1 molecules, 4 frames" in capsys.readouterr().out
