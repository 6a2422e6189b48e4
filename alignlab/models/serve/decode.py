"""Token-by-token decoding of one sample on the hf backend, for streamed answers and token-id prompts.

It decodes exactly as ``hf_generate`` decodes a batch of one row (same forward calls, same per-row seed from
the prompt text, same sampler, stop and end-of-sequence rules), so a streamed sample equals the sample of the
same request unstreamed. Text is handed out as soon as it is final: never a piece that could still turn out to
be the start of a stop string, nor a character whose bytes are incomplete. The job is checked before each step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from alignlab.models.compat import output_cache, with_cache
from alignlab.models.hf import HFBackend
from alignlab.models.hf_generate import _eos_ids, _final_text, _finished, _Row, _row_seed, _sample
from alignlab.models.serve.engine import Job
from alignlab.models.types import GenerateParams, Generation


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` are not final yet."""
    hold = max((n for stop in stops for n in range(1, len(stop)) if text.endswith(stop[:n])), default=0)
    if text.endswith("\ufffd"):  # a character whose remaining bytes are still to come
        hold = max(hold, len(text) - len(text.rstrip("\ufffd")))
    return hold


@torch.no_grad()
def decode_one(hf: HFBackend, ids: list[int], params: GenerateParams, sample: int, seed_text: str, job: Job,
               on_text: Callable[[str], None] | None = None) -> Generation:
    """Sample ``sample`` (0-based) of ``params`` after the prompt ``ids``; ``seed_text`` is the prompt's text. The
    generation's token logprobs (end-of-sequence excluded) count its tokens."""
    model, tok = hf.model, hf.tokenizer
    device = next(model.parameters()).device
    row = _Row(0, sample, ids, params, torch.Generator().manual_seed(_row_seed(params, sample, seed_text)))
    eos = _eos_ids(hf)
    step = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones((1, len(ids)), dtype=torch.long)
    positions = torch.arange(len(ids))[None]
    cache, generated, logprobs, sent = None, [], [], ""
    done, finish = params.max_new_tokens == 0, "length"
    while not done:
        job.check()
        out = model(step.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                    **with_cache(model, cache), use_cache=True, logits_to_keep=1)
        cache = output_cache(out)
        logits = out.logits[:, -1].float().cpu()[0]
        token = _sample(logits, params, row.generator)
        generated.append(token)
        logprobs.append(float(logits.log_softmax(-1)[token]))
        done, finish = _finished(tok, row, generated, token, eos)
        if on_text is not None and not done:
            text = tok.decode(generated, skip_special_tokens=True)
            final = text[:len(text) - _held_back(text, params.stop)]
            if len(final) > len(sent) and final.startswith(sent):
                on_text(final[len(sent):])
                sent = final
        step = torch.tensor([[token]], dtype=torch.long)
        mask = torch.cat([mask, torch.ones((1, 1), dtype=torch.long)], dim=1)
        positions = torch.tensor([[len(ids) + len(generated) - 1]])
    text, logprobs = _final_text(tok, row, generated, logprobs, eos)
    if on_text is not None and len(text) > len(sent) and text.startswith(sent):
        on_text(text[len(sent):])
    return Generation(text, finish, tuple(logprobs))
