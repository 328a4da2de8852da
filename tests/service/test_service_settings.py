"""Service settings from environment variables, model selection, and `serve` refusing bad setups."""

from __future__ import annotations

from pathlib import Path

import pytest

from adjoint_sampling.cli.entry import main
from adjoint_sampling.core.errors import CheckpointError, ConfigError
from adjoint_sampling.generation import loading as model_loading
from adjoint_sampling.service.settings import ServiceSettings, env_name


def test_defaults_and_environment_parsing():
    defaults = ServiceSettings.from_env({})
    assert defaults == ServiceSettings()
    assert (defaults.max_conformers, defaults.max_concurrency, defaults.request_timeout_s) == (100, 2, 60.0)
    settings = ServiceSettings.from_env(
        {
            "AS_MAX_CONFORMERS": "7",
            "AS_REQUEST_TIMEOUT_S": "2.5",
            "AS_DB_PATH": "/tmp/x.db",
            "AS_MODEL": "etkdg",
            "AS_PORT": " 9000 ",
            "AS_MAX_ATOMS": "",
        },
        port=9100,
    )
    assert settings.max_conformers == 7 and settings.request_timeout_s == 2.5
    assert settings.db_path == Path("/tmp/x.db") and settings.model == "etkdg"
    assert settings.port == 9100  # an override (CLI flag) wins over the environment
    assert settings.max_atoms == ServiceSettings().max_atoms  # empty means default
    assert env_name("max_body_bytes") == "AS_MAX_BODY_BYTES"


@pytest.mark.parametrize(
    "env,message",
    [
        ({"AS_MAX_CONFORMERS": "ten"}, "AS_MAX_CONFORMERS='ten' is not a valid int"),
        ({"AS_MAX_CONFORMERS": "0"}, "AS_MAX_CONFORMERS must be a positive"),
        ({"AS_REQUEST_TIMEOUT_S": "nan"}, "AS_REQUEST_TIMEOUT_S must be a positive finite"),
        ({"AS_REQUEST_TIMEOUT_S": "-1"}, "AS_REQUEST_TIMEOUT_S must be a positive"),
        ({"AS_PORT": "70000"}, "AS_PORT must be in 0..65535"),
    ],
)
def test_bad_environment_is_a_config_error_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ServiceSettings.from_env(env)


def test_model_selection(tmp_path, monkeypatch):
    assert model_loading.resolve_model_spec("etkdg") == "etkdg"
    assert model_loading.resolve_model_spec("/some/ckpt.pt") == "/some/ckpt.pt"
    shipped = tmp_path / "default.pt"
    monkeypatch.setattr(model_loading, "SHIPPED_MODEL_PATH", shipped)
    assert model_loading.resolve_model_spec(None) == "etkdg"
    shipped.write_bytes(b"x")
    assert model_loading.resolve_model_spec(None) == str(shipped)
    generator = model_loading.load_generator("ETKDG")
    assert generator.name == "rdkit-etkdgv3"
    with pytest.raises(CheckpointError, match="does not exist"):
        model_loading.load_generator(str(tmp_path / "missing.pt"))


def test_serve_refuses_a_missing_checkpoint_with_a_one_line_error(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing.pt"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.pt" in err and "does not exist" in err


def test_serve_refuses_bad_settings(monkeypatch, capsys):
    monkeypatch.setenv("AS_MAX_CONCURRENCY", "-2")
    assert main(["serve", "--model", "etkdg"]) == 2
    assert "AS_MAX_CONCURRENCY must be a positive" in capsys.readouterr().err
