#!/usr/bin/env bash
# One run of the influence benchmark's --large GPU configuration (162M Llama, 2048 x 512 tokens, 16 queries, MLP
# layers): alignlab first, then kronfluence 1.0.1, within BUDGET seconds (default 420 s, so the whole script stays
# under 8 minutes). alignlab gets 45% of the budget and kronfluence the rest; a library that runs out is reported as
# failed and the other's table is still printed, with the issue's H200 kronfluence numbers for reference.
#
#   KRONFLUENCE_PATH=/folder/with/kronfluence bash benchmarks/influence_gpu.sh [OUT_DIR]
#
# KRONFLUENCE_PATH must hold kronfluence and its pure-Python dependencies (accelerate, einops, opt_einsum); the
# machine needs torch (CUDA), transformers, safetensors and numpy. SEQUENCES=N scales the training set down (the
# table then says SCALED DOWN). Results: OUT_DIR/influence_gpu.txt and OUT_DIR/influence_gpu.json.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${KRONFLUENCE_PATH:+:$KRONFLUENCE_PATH}${PYTHONPATH:+:$PYTHONPATH}"
OUT_DIR="${1:-${OUT:-/tmp}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python}"
"$PY" - <<'PYEOF'
import importlib

import torch

print("torch", torch.__version__, "| cuda:", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
for name in ("transformers", "safetensors", "numpy", "kronfluence", "accelerate", "einops", "opt_einsum"):
    try:
        module = importlib.import_module(name)
        print("ok", name, getattr(module, "__version__", ""))
    except Exception as err:  # report every missing piece before the run starts
        print("MISSING", name, err)
PYEOF
"$PY" benchmarks/influence_vs_kronfluence.py --large --device cuda --sequences "${SEQUENCES:-2048}" \
    --budget "${BUDGET:-420}" --out "$OUT_DIR/influence_gpu.json" 2>&1 | tee "$OUT_DIR/influence_gpu.txt"
