"""Packaging: optional extras with a clear error when missing, a core CLI that never imports them, and a wheel and
sdist that carry py.typed, the Apache-2.0 licence (SPDX expression + LICENSE file) and docs/."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from alignlab.extras import MissingExtra, require

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("umap", "numba", "pynndescent", "trl", "peft", "datasets")  # pandas/pyarrow: scikit-learn imports them
# opportunistically when installed, so their presence says nothing about alignlab
# SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def block(monkeypatch, *modules: str) -> None:
    """Make ``modules`` unimportable, as when their extra is not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_names_the_pip_command(monkeypatch):
    assert require("json", extra="map") is sys.modules["json"]
    block(monkeypatch, "umap")
    with pytest.raises(MissingExtra) as err:
        require("umap", extra="map")
    assert isinstance(err.value, ModuleNotFoundError) and err.value.name == "umap" and err.value.extra == "map"
    assert str(err.value) == ('umap-learn is needed for the red-team attack map (UMAP) but is not installed: '
                              'pip install "alignlab[map]"')
    with pytest.raises(ValueError, match="unknown extra 'maps'"):
        require("umap", extra="maps")


def test_a_broken_dependency_of_an_extra_is_named_too(monkeypatch, tmp_path):
    block(monkeypatch, "datasets")
    monkeypatch.delitem(sys.modules, "trl", raising=False)
    (tmp_path / "trl").mkdir()  # a trl whose own import needs the missing datasets
    (tmp_path / "trl" / "__init__.py").write_text("import datasets\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtra) as err:
        require("trl", extra="train")
    assert "trl is needed for training" in str(err.value)
    assert "(import of datasets halted; None in sys.modules)" in str(err.value)
    assert str(err.value).endswith('pip install "alignlab[train]"')


def test_every_feature_behind_an_extra_says_which(monkeypatch, tmp_path):
    from alignlab.constitution import train_pm, train_rl, train_sft, training
    from alignlab.data.errors import DownloadError
    from alignlab.honesty import heads, questions
    from alignlab.redteam.landscape import project

    block(monkeypatch, "umap", "trl", "peft", "datasets")
    with pytest.raises(MissingExtra, match=r'pip install "alignlab\[map\]"'):
        project(np.random.default_rng(0).normal(size=(12, 8)), seed=0)
    assert project(np.eye(12, 8), seed=0, method="pca").shape == (12, 2)  # the PCA map needs no extra
    trainers = [lambda: train_sft.train_sft(None, tmp_path), lambda: train_pm.train_pm(None, tmp_path),
                train_pm._trl_classes, lambda: train_rl.train_rl(None, tmp_path),
                lambda: training.lora_config(type("C", (), {"lora": True, "lora_r": 8})(), "CAUSAL_LM"),
                lambda: heads.train_lora(None, [], [])]
    for call in trainers:
        with pytest.raises(MissingExtra, match=r'pip install "alignlab\[train\]"'):
            call()
    with pytest.raises(DownloadError, match=r'TriviaQA .*datasets is needed .*pip install "alignlab\[train\]"'):
        questions.triviaqa_download(tmp_path / "triviaqa")


CORE_COMMANDS = f"""
import sys
import alignlab
from typer.testing import CliRunner
from alignlab.cli import app
for args in (["--help"], ["list"], ["audit", "--help"]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
print(sorted(m for m in {HEAVY!r} if m in sys.modules))
"""


@pytest.mark.slow  # ~15 s: a fresh interpreter imports the CLI
def test_the_core_cli_never_imports_an_extra():
    done = subprocess.run([sys.executable, "-c", CORE_COMMANDS], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_extras_and_pins_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {Requirement(r).name for r in project["dependencies"]}
    assert not core & {"umap-learn", "trl", "peft", "datasets", "numba", "llvmlite", "pyarrow", "pandas"}
    extras = {name: {Requirement(r).name: Requirement(r) for r in reqs}
              for name, reqs in project["optional-dependencies"].items()}
    assert set(extras["map"]) == {"umap-learn"} and set(extras["train"]) == {"trl", "peft", "datasets"}
    trl = extras["train"]["trl"].specifier
    assert "1.16.0" in trl and "2.0.0" not in trl and "1.15.0" not in trl  # the tested version is the floor
    assert metadata.version("trl") in trl  # install.sh installs the extras the tests use
    assert "map,train" in (ROOT / "install.sh").read_text()


@pytest.mark.slow
def test_wheel_and_sdist_carry_types_licence_and_docs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "alignlab", src / "alignlab", ignore=ignore)
    shutil.copytree(ROOT / "docs", src / "docs", ignore=ignore)
    out = tmp_path / "dist"
    # offline: the venv's setuptools (>=77) builds, as `pip wheel` / `python -m build` would in isolation
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, cwd=src, timeout=300)
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
                   check=True, cwd=src, timeout=300, capture_output=True)
    licence = (ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(licence).hexdigest() == APACHE_2_SHA256  # the standard text, unmodified

    (wheel,) = out.glob("alignlab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = archive.read(f"{info}/METADATA").decode()
        assert archive.read(f"{info}/licenses/LICENSE") == licence
    assert "alignlab/py.typed" in names and "alignlab/report/templates/report.html.j2" in names
    assert "License-Expression: Apache-2.0" in meta.splitlines() and "License-File: LICENSE" in meta.splitlines()
    assert not any(line.startswith("License: ") for line in meta.splitlines())
    requires = [line.removeprefix("Requires-Dist: ") for line in meta.splitlines() if line.startswith("Requires-Dist")]
    assert 'umap-learn>=0.5; extra == "map"' in requires and 'trl<2,>=1.16; extra == "train"' in requires
    core = {Requirement(r).name for r in requires if "extra ==" not in r}
    assert "torch" in core and not core & {"trl", "peft", "datasets", "umap-learn"}

    (sdist,) = out.glob("alignlab-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
        pkg_info = archive.extractfile(next(m for m in archive.getmembers() if m.name.endswith("/PKG-INFO")
                                            and m.name.count("/") == 1)).read().decode()
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= names and len(list(ROOT.glob("docs/*.md")))
    assert {"LICENSE", "alignlab/py.typed", "pyproject.toml", "README.md"} <= names
    assert "License-Expression: Apache-2.0" in pkg_info.splitlines()
