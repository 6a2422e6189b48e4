"""The ``vllm`` backend for real: vLLM's engine in ``benchmarks/.venv-vllm`` (a subprocess) against the hf backend
on the same tiny random Llama. Skipped when that venv is absent (``python benchmarks/vllm_venv.py`` builds it in
~16 min; CI does not). ``benchmarks/vllm_agreement.py`` runs the same comparison on the embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alignlab.models import GenerateParams, GenerateRequest, Model, NextTokenRequest, ScoreRequest
from alignlab.models.hf import HFBackend

REPO = Path(__file__).resolve().parents[1]
VENV_PYTHON = REPO / "benchmarks" / ".venv-vllm" / "bin" / "python"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not VENV_PYTHON.exists(),
    reason="benchmarks/.venv-vllm is absent (build it with `python benchmarks/vllm_venv.py`, ~16 min)")]

CONTEXT = "Q: Which animal barks?\nA:"
SCORE = [ScoreRequest(CONTEXT, (" dog", " cat", " a dog")), ScoreRequest("Hello", ("!", " world"), "separate")]
NEXT = [NextTokenRequest(CONTEXT, (" dog", " cat"))]
GREEDY = [GenerateRequest(CONTEXT, GenerateParams(max_new_tokens=12)),
          GenerateRequest("Once upon", GenerateParams(max_new_tokens=12, logprobs=True))]
SAMPLED = GenerateRequest(CONTEXT, GenerateParams(max_new_tokens=8, temperature=1.0, n=3, seed=7))

WORKER = """
import json, sys
from alignlab.models import *
from alignlab.models.spec import load_model
from alignlab.models.types import canonical_json, from_jsonable
job = json.loads(sys.stdin.read())
model = load_model(job["spec"], cache=False)
out = {kind: [canonical_json(r) for r in getattr(model, kind)([from_jsonable(json.loads(x)) for x in reqs])]
       for kind, reqs in job["requests"].items()}
out["sampled_again"] = canonical_json(model.generate([from_jsonable(json.loads(job["requests"]["generate"][-1]))]))
out["fingerprint"] = model.fingerprint
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def wide_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny Llama with head_dim 32 (vLLM's CPU attention has no kernel for smaller heads)."""
    from tests.conftest import make_tiny_llama

    path = tmp_path_factory.mktemp("tiny-llama-128")
    make_tiny_llama(tokenizer, hidden=128).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vllm_results(wide_dir) -> dict:
    from alignlab.models.types import canonical_json

    job = {"spec": f"vllm:{wide_dir}", "requests": {
        "score": [canonical_json(r) for r in SCORE], "next_token": [canonical_json(r) for r in NEXT],
        "generate": [canonical_json(r) for r in [*GREEDY, SAMPLED]]}}
    env = {**os.environ, "VLLM_CPU_OMP_THREADS_BIND": f"0-{(os.cpu_count() or 1) - 1}"}
    done = subprocess.run([str(VENV_PYTHON), "-c", WORKER], input=json.dumps(job), capture_output=True, text=True,
                          env=env, cwd="/", timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def parsed(raw: list[str]) -> list:
    from alignlab.models.types import from_jsonable

    return [from_jsonable(json.loads(x)) for x in raw]


@pytest.fixture(scope="module")
def hf(wide_dir) -> Model:
    torch.set_num_threads(1)
    return Model(HFBackend.from_pretrained(wide_dir, device="cpu"), None)


def test_score_matches_the_hf_backend_including_separate_tokenization(vllm_results, hf):
    ours, theirs = parsed(vllm_results["score"]), hf.score(SCORE)
    for a, b in zip(ours, theirs, strict=True):
        for x, y in zip(a.scores, b.scores, strict=True):
            assert x.tokens == y.tokens and x.is_greedy == y.is_greedy and x.boundary_merge == y.boundary_merge
            assert x.logprob == pytest.approx(y.logprob, abs=1e-4)
            assert x.token_logprobs == pytest.approx(y.token_logprobs, abs=1e-4)


def test_next_token_matches_the_hf_backend(vllm_results, hf):
    (ours,), (theirs,) = parsed(vllm_results["next_token"]), hf.next_token(NEXT)
    assert ours.probs == pytest.approx(theirs.probs, abs=1e-4)
    assert ours.logprobs == pytest.approx(theirs.logprobs, abs=1e-4)


def test_greedy_generation_matches_and_seeded_samples_repeat(vllm_results, hf):
    ours = parsed(vllm_results["generate"])
    theirs = hf.generate(GREEDY)
    assert [r.text for r in ours[:2]] == [r.text for r in theirs]
    assert ours[1].samples[0].token_logprobs == pytest.approx(theirs[1].samples[0].token_logprobs, abs=1e-4)
    sampled = ours[2]
    assert len(sampled.samples) == 3 and len({s.text for s in sampled.samples}) > 1  # n distinct samples
    assert parsed([vllm_results["sampled_again"]])[0][0] == sampled  # same seed, same samples


def test_fingerprint_names_the_engine_and_its_version(vllm_results):
    fingerprint = vllm_results["fingerprint"]
    assert fingerprint["backend"] == "vllm" and fingerprint["engine"].startswith("vllm 0.")
    assert fingerprint["dtype"] == "float32" and fingerprint["tensor_parallel_size"] == 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
