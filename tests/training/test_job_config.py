"""Reading a training job config is plain Python: no torch, no tqdm (the CLI validates configs fast)."""

from __future__ import annotations

import subprocess
import sys

from adjoint_sampling.core.paths import REPO_ROOT


def test_reading_a_config_imports_neither_torch_nor_tqdm() -> None:
    code = (
        "import sys; from adjoint_sampling.training.config import load_job_config; "
        f"cfg = load_job_config({str(REPO_ROOT / 'configs' / 'dw4.yaml')!r}); "
        "print(type(cfg.trainer).__name__, 'torch' in sys.modules, 'tqdm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["TrainerConfig", "False", "False"]
