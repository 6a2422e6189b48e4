"""The benchmark's own virtual environment for lm-evaluation-harness: ``benchmarks/.venv-lmeval``.

Created on first use with ``python -m venv`` and ``pip install -c benchmarks/constraints.txt torch==2.13.0
lm-eval[hf] transformers==<ours>``. lm-eval's ``hf`` extra brings transformers, accelerate and peft (plain
``lm-eval`` has no transformers since 0.4.x); transformers is pinned to the version alignlab runs with so
that both sides run the same model code. The constraints file keeps torch at 2.13.0 so that pip takes the
CPU wheel and never pulls a multi-GB CUDA build; after installing we check that the torch it got is that
one and that it has no CUDA.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-lmeval"
CONSTRAINTS = HERE / "constraints.txt"
PROBE = ("import json, torch, lm_eval, transformers, importlib.metadata as m; "
         "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, "
         "'lm_eval': m.version('lm_eval'), 'transformers': transformers.__version__}))")
TORCH = "2.13.0"


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def probe(venv: Path = VENV, code: str = PROBE) -> dict | None:
    """Versions in a working venv (``code`` prints them as JSON on its last line; by default torch, cuda, lm_eval,
    transformers), or None when it is missing or broken. Runs outside the repository, so the venv's own packages
    are imported, not the checkout's."""
    python = venv_python(venv)
    if not python.exists():
        return None
    res = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd="/")
    return json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None


def ensure_venv(venv: Path = VENV, log=print) -> Path:
    """Return the venv's python, creating the venv and installing lm-eval first when needed."""
    if probe(venv) is None:
        log(f"creating {venv} (one-time: python -m venv + pip install lm-eval, a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        import transformers

        packages = [f"torch=={TORCH}", "lm-eval[hf]", f"transformers=={transformers.__version__}"]
        pip = [str(venv_python(venv)), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS)]
        subprocess.run([*pip, *packages], check=True)
        versions = probe(venv)
        if versions is None:
            raise RuntimeError(f"{venv}: lm-eval installed but does not import; delete the folder and retry")
        log(f"{venv}: {versions}")
    versions = probe(venv) or {}
    if versions.get("cuda") is not None or not versions.get("torch", "").startswith(TORCH):
        raise RuntimeError(f"{venv} has {versions}: expected torch {TORCH} without CUDA; delete the folder")
    return venv_python(venv)


if __name__ == "__main__":
    print(ensure_venv())
