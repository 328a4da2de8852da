"""The layers hold: import-linter's contracts pass, no module-level import cycle, every package is
installed under the one import name ``adjoint_sampling`` and exports a curated ``__all__``.

import-linter (through grimp) finds a package's modules by walking its directory, and the folders
``models/``, ``energy/``, ``service/`` and ``benchmarks/`` are mapped into ``adjoint_sampling`` by
``[tool.setuptools.package-dir]``. So the checks run on the installed layout: the sources copied
into one ``adjoint_sampling/`` tree exactly as the wheel lays them out.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from adjoint_sampling.core.paths import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _source_dir(package: str) -> Path:
    """The folder of ``package`` under ``[tool.setuptools.package-dir]`` (longest mapped prefix wins)."""
    mapping = SETUPTOOLS["package-dir"]
    prefix = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
    rest = package[len(prefix):].lstrip(".")
    return REPO_ROOT / mapping[prefix] / Path(*rest.split(".")) if rest else REPO_ROOT / mapping[prefix]


@pytest.fixture(scope="module")
def installed_tree(tmp_path_factory) -> Path:
    """The Python sources of every listed package, copied to where the wheel puts them."""
    site = tmp_path_factory.mktemp("site")
    for package in SETUPTOOLS["packages"]:
        target = site / Path(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for source in _source_dir(package).glob("*.py"):
            shutil.copy2(source, target / source.name)
    return site


def _lint_imports(site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=site, env=env, capture_output=True, text=True, timeout=300,
    )


def test_package_list_names_every_source_package():
    listed = set(SETUPTOOLS["packages"])
    found = set()
    for prefix, folder in SETUPTOOLS["package-dir"].items():
        root = REPO_ROOT / folder
        for init in root.rglob("__init__.py"):
            if "node_modules" in init.parts:
                continue
            rel = init.parent.relative_to(root)
            found.add(".".join([prefix, *rel.parts]))
    assert found == listed


def test_import_linter_contracts_hold(installed_tree):
    result = _lint_imports(installed_tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def test_an_upward_import_breaks_the_layers(installed_tree, tmp_path):
    """The contracts have teeth: a bottom-layer module that imports the service is reported."""
    site = tmp_path / "site"
    shutil.copytree(installed_tree, site)
    errors = site / "adjoint_sampling" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport adjoint_sampling.service.settings  # noqa\n")
    result = _lint_imports(site)
    assert result.returncode != 0
    assert "adjoint_sampling.core.errors -> adjoint_sampling.service.settings" in result.stdout


def test_no_module_level_import_cycle(installed_tree):
    """No two modules import each other, directly or through others (lazy imports included)."""
    code = (
        "import grimp, json\n"
        "g = grimp.build_graph('adjoint_sampling', cache_dir=None)\n"
        "print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=installed_tree, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(installed_tree)}, timeout=300, check=True).stdout
    imports = json.loads(out)
    # Tarjan's strongly connected components of the module graph.
    graph = {m: [t for t in ts if t in imports] for m, ts in imports.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("package", SETUPTOOLS["packages"])
def test_every_package_exports_a_curated_all(package):
    module = importlib.import_module(package)
    assert isinstance(getattr(module, "__all__", None), list), f"{package} has no __all__ list"
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.__all__ names {name!r}, which it does not have"


def test_the_wheel_installs_one_name_with_the_shipped_weights_and_without_the_archive(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True, capture_output=True, timeout=300,
    )
    shutil.rmtree(REPO_ROOT / "build", ignore_errors=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"adjoint_sampling"}
    assert "adjoint_sampling/models/shipped/default.pt" in names
    assert "adjoint_sampling/models/shipped/energy.pt" in names  # the GNN energy model of relax gnn
    assert "adjoint_sampling/models/shipped/MODEL_CARD.md" in names
    assert not [name for name in names if "/archive/" in name]
    for package in SETUPTOOLS["packages"]:
        assert "/".join(package.split(".")) + "/__init__.py" in names
