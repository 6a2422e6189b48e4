#!/usr/bin/env bash
# The GPU check of issue 18, one script, no registry access needed, within about 8 minutes on one H100/H200:
#   1. MC scoring, random ~1B Llama in bf16: alignlab (MFU, tokens/s)       mc_scoring.py --gpu-llama-1b
#   2. the same questions through lm-eval's hf model, predictions compared    gpu_lmeval.py   (needs LMEVAL_PATH)
#   3. generation: alignlab hf backend vs one transformers generate call      gpu_generate.py
#   4. EK-FAC --large against kronfluence                                     influence_gpu.sh (needs KRONFLUENCE_PATH)
#
#   WHEELS=/folder/of/wheels bash benchmarks/gpu_suite.sh [OUT_DIR]
#
# WHEELS (optional) holds pure-Python wheels made elsewhere with `pip download --no-deps` (lm-eval and its
# dependencies, kronfluence, einops, opt-einsum, ...; each under the 64 MiB a device call carries): they are
# installed with `pip install --no-index --no-deps --target` into OUT_DIR/site, never touching the machine's torch.
# A part whose packages are missing is reported as skipped. PEAK_TFLOPS (default 989, H100/H200 dense bf16) sets
# the MFU denominator; QUESTIONS (default 2000) and BUDGET (influence seconds, default 240) scale the run.
# CPU smoke test of the plumbing: TINY=1 DEVICE=cpu bash benchmarks/gpu_suite.sh /tmp/suite
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-/tmp/gpu_suite}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"
TINY_FLAG=""; [ -n "${TINY:-}" ] && TINY_FLAG="--tiny-llama"
SITE="$OUT_DIR/site"
if [ -n "${WHEELS:-}" ]; then
    "$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl || echo "some wheels failed"
fi
export PYTHONPATH="$PWD:$PWD/benchmarks:$SITE${LMEVAL_PATH:+:$LMEVAL_PATH}${PYTHONPATH:+:$PYTHONPATH}"
export KRONFLUENCE_PATH="${KRONFLUENCE_PATH:-$SITE}"
log() { echo "== $* ($(date +%T))"; }

log "1. MC scoring, alignlab"
"$PY" benchmarks/mc_scoring.py --gpu-llama-1b $TINY_FLAG --device "$DEVICE" --gpu-questions "${QUESTIONS:-2000}" \
    --peak-tflops "${PEAK_TFLOPS:-989}" --out "$OUT_DIR/mc_gpu.json" 2>&1 | tee "$OUT_DIR/mc_gpu.txt"
log "2. MC scoring, lm-eval hf"
if "$PY" -c "import lm_eval" 2>/dev/null; then
    "$PY" benchmarks/gpu_lmeval.py "$OUT_DIR/mc_gpu.json" "$OUT_DIR/lmeval_gpu.json" 2>&1 | tee "$OUT_DIR/lmeval.txt"
else
    echo "skipped: lm_eval is not importable (give WHEELS or LMEVAL_PATH)"
fi
log "3. generation"
"$PY" benchmarks/gpu_generate.py $TINY_FLAG --device "$DEVICE" --out "$OUT_DIR/generate_gpu.json" 2>&1 \
    | tee "$OUT_DIR/generate.txt"
log "4. EK-FAC --large"
if [ "$DEVICE" = cuda ]; then
    BUDGET="${BUDGET:-240}" bash benchmarks/influence_gpu.sh "$OUT_DIR" >/dev/null 2>&1
    tail -n 25 "$OUT_DIR/influence_gpu.txt" 2>/dev/null || echo "influence: no output"
else
    echo "skipped on $DEVICE (the --large configuration needs a GPU)"
fi
log "table"
"$PY" - "$OUT_DIR" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else {}
mc, le, gen = load("mc_gpu.json"), load("lmeval_gpu.json"), load("generate_gpu.json")
rows = [("device", mc.get("gpu") or mc.get("device", "-")),
        ("MC: questions", mc.get("questions", "-")),
        ("MC: alignlab MFU", f"{mc['mfu']:.1%}" if mc else "-"),
        ("MC: alignlab lm-eval-equivalent tokens/s", f"{mc['lmeval_equivalent_tokens_per_s']:,.0f}" if mc else "-"),
        ("MC: share of wall time outside forward", f"{mc['host_share']:.0%}" if mc else "-"),
        ("MC: alignlab vs lm-eval hf questions/s", f"{le['alignlab_questions_per_s']:.1f} vs "
         f"{le['lmeval_questions_per_s']:.1f} ({le['speedup']:.1f}x)" if le else "skipped"),
        ("MC: same predictions as lm-eval", f"{le['same_prediction']:.1%}" if le else "skipped"),
        ("generate: alignlab vs transformers tokens/s", f"{gen['alignlab_tokens_per_s']:,.0f} vs "
         f"{gen['plain_tokens_per_s']:,.0f}" if gen else "-")]
width = max(len(k) for k, _ in rows) + 2
for key, value in rows:
    print(key.ljust(width) + str(value))
PYEOF
