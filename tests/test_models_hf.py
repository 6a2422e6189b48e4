"""The hf backend's three request types against a naive one-sequence-at-a-time reference (fp32, 1e-4)."""

from __future__ import annotations

import pytest
import torch

from alignlab.models import (
    Conversation,
    GenerateParams,
    GenerateRequest,
    Model,
    ModelError,
    NextTokenRequest,
    ScoreRequest,
)
from alignlab.models.hf import HFBackend

FEW_SHOT = "".join(f"Q: What is the colour of item {i}?\nA: It is colour number {i * 7 % 11}.\n" for i in range(6))
QUESTIONS = ["Q: Which animal barks?\nA:", "Q: Which metal is liquid at room temperature?\nA:",
             "Q: Where do penguins live?\nA:", "Q: What do bees make?\nA:"]
ANSWERS = [" a dog", " mercury, a heavy metal", " Antarctica", " honey", " the", " cats and dogs"]


def naive_token_logprobs(model, ids: list[int]) -> list[float]:
    """log p(ids[i] | ids[:i]) for i >= 1, one plain forward pass over one sequence."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()


def naive_score(backend: HFBackend, context: str, continuation: str) -> float:
    """log p(context + continuation) - log p(context), summing only the tokens after their common prefix."""
    full, ctx = backend.encode(context + continuation), backend.encode(context)
    shared = next((i for i, (a, b) in enumerate(zip(full, ctx, strict=False)) if a != b), min(len(full), len(ctx)))
    start = max(shared - 1, 0)
    return sum(naive_token_logprobs(backend.model, full)[start:]) - sum(
        naive_token_logprobs(backend.model, ctx)[start:])


@pytest.fixture
def backend(tiny_model, tokenizer) -> HFBackend:
    return HFBackend(tiny_model, tokenizer, spec="hf:tiny", max_batch_tokens=96, min_shared_prefix=8)


def test_score_matches_naive_reference_with_shared_prefix_and_small_batches(backend):
    contexts = [FEW_SHOT + q for q in QUESTIONS]
    results = backend.score([ScoreRequest(c, tuple(ANSWERS)) for c in contexts])
    for context, result in zip(contexts, results, strict=False):
        expected = [naive_score(backend, context, a) for a in ANSWERS]
        assert result.logprobs == pytest.approx(expected, abs=1e-4)
        for answer, score in zip(ANSWERS, result.scores, strict=False):
            assert sum(score.token_logprobs) == pytest.approx(score.logprob, abs=1e-4)
            assert "".join(score.tokens).replace("Ġ", " ").replace("Ċ", "\n") == answer


def test_score_detects_token_merge_at_the_boundary_and_scores_it_exactly(backend):
    # "\nA: Yes": the context's trailing space merges into the continuation's first token.
    context, options = "Is water wet?\nA: ", ["Yes", "No", "Maybe so"]
    result = backend.score([ScoreRequest(context, tuple(options))])[0]
    assert any(s.boundary_merge for s in result.scores)
    assert result.logprobs == pytest.approx([naive_score(backend, context, o) for o in options], abs=1e-4)


def test_score_of_a_conversation_renders_the_chat_template(backend, tokenizer):
    conv = Conversation.of(("user", "Name a fruit."), prefill="Sure:")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Name a fruit."}], tokenize=False,
                                         add_generation_prompt=True) + "Sure:"
    result = backend.score([ScoreRequest(conv, (" apple", " pear"))])[0]
    assert result.logprobs == pytest.approx([naive_score(backend, text, c) for c in (" apple", " pear")], abs=1e-4)


def test_raw_hh_format_is_the_papers_human_assistant_text(backend):
    conv = Conversation.of(("user", "Hi"), ("assistant", "Hello"), ("user", "Bye"), prefill="See", format="raw_hh")
    assert backend.render(conv) == "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant: See"


def test_next_token_matches_one_forward_pass(backend):
    prompts = [FEW_SHOT + "Q: Is fire hot?\nA:", "Answer:", FEW_SHOT + "Q: Is ice cold?\nA:"]
    options = (" Yes", " No", " Maybe")
    results = backend.next_token([NextTokenRequest(p, options) for p in prompts])
    for prompt, result in zip(prompts, results, strict=False):
        ids = backend.encode(prompt)
        with torch.no_grad():
            last = torch.log_softmax(backend.model(torch.tensor([ids])).logits[0, -1].float(), -1)
        opt_ids = [backend.encode(prompt + o)[-1] for o in options]
        expected = last[opt_ids]
        assert list(result.logprobs) == pytest.approx(expected.tolist(), abs=1e-4)
        assert list(result.probs) == pytest.approx(torch.softmax(expected, 0).tolist(), abs=1e-5)
        assert not result.approximate


def test_next_token_refuses_a_multi_token_option(backend):
    with pytest.raises(ModelError, match="not exactly one token"):
        backend.next_token([NextTokenRequest("Answer:", (" Yes", " absolutely certainly"))])


def test_greedy_generate_equals_transformers_generate(backend, tokenizer):
    prompts = [FEW_SHOT + q for q in QUESTIONS] + ["Hello"]
    params = GenerateParams(max_new_tokens=12, logprobs=True)
    results = backend.generate([GenerateRequest(p, params) for p in prompts])
    for prompt, result in zip(prompts, results, strict=False):
        ids = torch.tensor([backend.encode(prompt)])
        with torch.no_grad():
            out = backend.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                                         do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        if tokenizer.eos_token_id in new:
            new = new[:new.index(tokenizer.eos_token_id)]
        assert result.text == tokenizer.decode(new)
        assert len(result.samples[0].token_logprobs) >= len(new)


def test_sampling_is_seeded_and_independent_of_batch_company(backend):
    params = GenerateParams(max_new_tokens=8, temperature=1.0, n=3, seed=7)
    alone = backend.generate([GenerateRequest("Tell me", params)])[0]
    together = backend.generate([GenerateRequest("Once upon a time", params), GenerateRequest("Tell me", params)])[1]
    assert [s.text for s in alone.samples] == [s.text for s in together.samples]
    other_seed = backend.generate([GenerateRequest("Tell me", GenerateParams(max_new_tokens=8, temperature=1.0,
                                                                             n=3, seed=8))])[0]
    assert [s.text for s in other_seed.samples] != [s.text for s in alone.samples]


def test_stop_strings_cut_the_text(backend):
    free = backend.generate([GenerateRequest("Hello", GenerateParams(max_new_tokens=16))])[0].text
    stop = free[3:5]
    assert stop and stop in free
    cut = backend.generate([GenerateRequest("Hello", GenerateParams(max_new_tokens=16, stop=(stop,)))])[0]
    assert cut.text == free[:free.index(stop)]
    assert cut.samples[0].finish_reason == "stop"


def test_model_wrapper_reports_progress_and_keeps_order(backend):
    model = Model(backend, cache=None, chunk_size=2)
    seen: list[int] = []
    reqs = [ScoreRequest(q, (" yes", " no")) for q in QUESTIONS]
    out = model.score(reqs, progress=seen.append)
    assert seen == [2, 2]
    for got, want in zip(out, backend.score(reqs), strict=False):
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)


def test_prefix_cache_is_reused_across_calls_and_stays_exact(backend):
    first, second = QUESTIONS[:2], QUESTIONS[2:]
    backend.score([ScoreRequest(FEW_SHOT + q, tuple(ANSWERS[:3])) for q in first])
    kept = backend.prefix_store.cache
    assert kept is not None
    results = backend.score([ScoreRequest(FEW_SHOT + q, tuple(ANSWERS[:3])) for q in second])
    assert backend.prefix_store.cache is kept  # the few-shot block was not recomputed
    for q, result in zip(second, results, strict=True):
        expected = [naive_score(backend, FEW_SHOT + q, a) for a in ANSWERS[:3]]
        assert result.logprobs == pytest.approx(expected, abs=1e-4)


def test_kept_prefix_cache_is_dropped_when_the_model_changes_dtype(tokenizer):
    from tests.conftest import make_tiny_llama

    model = make_tiny_llama(tokenizer, seed=3).to(torch.bfloat16)
    backend = HFBackend(model, tokenizer, spec="hf:tiny", max_batch_tokens=96, min_shared_prefix=8)
    requests = [ScoreRequest(FEW_SHOT + q, tuple(ANSWERS[:3])) for q in QUESTIONS[:2]]
    backend.score(requests)  # keeps a bf16 prefix cache
    model.float()
    results = backend.score(requests)
    for request, result in zip(requests, results, strict=True):
        expected = [naive_score(backend, request.context, a) for a in request.continuations]
        assert result.logprobs == pytest.approx(expected, abs=1e-4)  # a stale bf16 cache misses by ~1e-2
    assert backend.prefix_store.cache is not None  # a new fp32 prefix cache is kept for the next call


def bigbench_concatenation(model, tokenizer, context: str, continuation: str) -> float:
    """BIG-bench's HF model: input and target tokenised separately, ids concatenated, one plain forward."""
    ctx = tokenizer(context).input_ids
    target = tokenizer(continuation, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ctx + target])).logits[0].float()
    logprobs = torch.log_softmax(logits[len(ctx) - 1:-1], -1)
    return logprobs.gather(1, torch.tensor(target)[:, None]).sum().item()


def test_separate_tokenization_is_bigbenchs_concatenation_and_joint_differs(backend, tokenizer):
    # "\nA: " then "Yes": jointly, the space merges into " Yes"; BIG-bench keeps "A: " and "Yes" apart.
    context, choices = FEW_SHOT + "Q: Is water wet?\nA: ", ("Yes", "No", "It depends")
    assert tokenizer(context + "Yes").input_ids != tokenizer(context).input_ids + tokenizer("Yes").input_ids
    separate, joint = backend.score([ScoreRequest(context, choices, "separate"), ScoreRequest(context, choices)])
    expected = [bigbench_concatenation(backend.model, tokenizer, context, c) for c in choices]
    assert separate.logprobs == pytest.approx(expected, abs=1e-4)
    assert not any(s.boundary_merge for s in separate.scores)
    assert [s.tokens for s in separate.scores] == [tuple(tokenizer.tokenize(c)) for c in choices]
    assert joint.logprobs == pytest.approx([naive_score(backend, context, c) for c in choices], abs=1e-4)
    assert all(abs(a - b) > 1e-2 for a, b in zip(joint.logprobs, separate.logprobs, strict=True))


def test_a_default_tokenization_keeps_the_request_cache_key_of_earlier_versions():
    import hashlib

    from alignlab.models.cache import request_key
    from alignlab.models.types import canonical_json, from_jsonable, to_jsonable

    request = ScoreRequest("Q: hi\nA:", (" yes", " no"))
    before = '{"__type__":"ScoreRequest","context":"Q: hi\\nA:","continuations":[" yes"," no"]}'  # 6efbcf6's key text
    assert canonical_json(request) == before
    assert request_key("fp", request) == hashlib.sha256(f"fp\n{before}".encode()).hexdigest()
    separate = ScoreRequest("Q: hi\nA:", (" yes", " no"), "separate")
    assert request_key("fp", separate) != request_key("fp", request)
    assert from_jsonable(to_jsonable(separate)) == separate and from_jsonable(to_jsonable(request)) == request
    with pytest.raises(ValueError, match="tokenization"):
        ScoreRequest("Q", ("a",), "bigbench")  # type: ignore[arg-type]


def test_a_failing_flexattention_falls_back_to_dense_masks_with_a_warning(tiny_model, tokenizer, monkeypatch):
    from alignlab.models import packing

    def broken(*_args, **_kwargs):
        raise RuntimeError("no kernel for this device")

    monkeypatch.setattr(packing, "flex_block_mask", broken)
    backend = HFBackend(tiny_model, tokenizer, spec="hf:tiny", attention="flex", max_batch_tokens=8192)
    requests = [ScoreRequest(FEW_SHOT + q, tuple(ANSWERS[:2])) for q in QUESTIONS[:2]]
    with pytest.warns(UserWarning, match="FlexAttention failed"):
        results = backend.score(requests)
    assert backend.attention == "dense" and backend.max_batch_tokens == 4096
    for request, result in zip(requests, results, strict=True):
        expected = [naive_score(backend, request.context, a) for a in request.continuations]
        assert result.logprobs == pytest.approx(expected, abs=1e-4)


def test_many_requests_in_flight_are_packed_together_and_handed_on_sub_batch_by_sub_batch(backend):
    requests = [ScoreRequest(FEW_SHOT + q, tuple(ANSWERS[:3])) for q in QUESTIONS * 4]  # 4 rows of 96 tokens
    expected = backend.score(requests)
    calls = []
    hook = backend.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        seen = [(positions, len(calls)) for positions, _ in backend.stream("score", requests, 2)]
        streamed = dict(item for positions, results in backend.stream("score", requests, 2)
                        for item in zip(positions, results, strict=True))
    finally:
        hook.remove()
    assert sorted(p for positions, _ in seen for p in positions) == list(range(len(requests)))
    assert all(len(positions) == 2 for positions, _ in seen)
    assert seen[0][1] < seen[-1][1]  # the first sub-batch was handed on before the last row ran
    for i, want in enumerate(expected):
        assert streamed[i].logprobs == pytest.approx(want.logprobs, abs=1e-5)
    backend.max_in_flight = 6  # what a GPU sets; Model then writes each sub-batch as it completes
    model = Model(backend, cache=None, chunk_size=2)
    progress: list[int] = []
    got = model.score(requests, progress=progress.append)
    assert [x for r in got for x in r.logprobs] == pytest.approx([x for r in expected for x in r.logprobs], abs=1e-5)
    assert progress == [2] * 8


def test_generation_in_flight_hands_on_each_sub_batch_when_its_requests_are_done(backend, monkeypatch):
    from alignlab.models import hf_generate

    greedy = GenerateParams(max_new_tokens=6, logprobs=True)
    sampled = GenerateParams(max_new_tokens=6, temperature=1.0, n=2, seed=3)
    requests = [GenerateRequest(FEW_SHOT + q, greedy if i % 2 else sampled) for i, q in enumerate(QUESTIONS * 2)]
    expected = backend.generate(requests)
    batches: list[int] = []
    decode = hf_generate._decode
    monkeypatch.setattr(hf_generate, "_decode", lambda b, rows, samples: batches.append(len(rows))
                        or decode(b, rows, samples))
    backend.max_generate_rows = 4  # 12 sample rows in flight -> 3 generation batches of 4 (not 4 calls of 3 rows)
    seen = [(positions, len(batches), results) for positions, results in backend.stream("generate", requests, 2)]
    assert batches == [4, 4, 4]
    assert sorted(p for positions, _, _ in seen for p in positions) == list(range(len(requests)))
    assert all(len(positions) == 2 for positions, _, _ in seen)
    assert seen[0][1] < len(batches)  # a sub-batch was handed on before the last generation batch ran
    got = {p: r for positions, _, results in seen for p, r in zip(positions, results, strict=True)}
    for i, want in enumerate(expected):  # other batches than one call's: log-probs equal up to batch rounding
        assert [(g.text, g.finish_reason) for g in got[i].samples] == [(g.text, g.finish_reason) for g in want.samples]
        for g, w in zip(got[i].samples, want.samples, strict=True):
            assert g.token_logprobs == (None if w.token_logprobs is None else pytest.approx(w.token_logprobs, abs=1e-5))


def test_the_gpu_generation_budget_follows_free_memory_and_the_kv_cache_size():
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignlab.models.hf import GPU_GENERATE_TOKENS, GPU_GENERATE_TOKENS_MAX, generate_token_budget

    config = LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                         intermediate_size=64, vocab_size=64)
    model = LlamaForCausalLM(config).to(torch.float16)
    per_token = 2 * 2 * 2 * (32 // 4) * 2  # layers x (key, value) x kv heads x head size x 2 bytes = 128 bytes
    assert generate_token_budget(model, free_bytes=per_token * 100_000) == 30_000  # 0.3 of free memory
    assert generate_token_budget(model, free_bytes=per_token * 1000) == GPU_GENERATE_TOKENS  # the floor
    assert generate_token_budget(model, free_bytes=10**15) == GPU_GENERATE_TOKENS_MAX  # the cap
    assert generate_token_budget(model) == GPU_GENERATE_TOKENS  # not on a CUDA device: the floor
