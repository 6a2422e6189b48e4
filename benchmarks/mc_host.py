"""Host side of the hf backend's MC scoring, before and after issue 18 §1, in one run (CPU, no lm-eval).

    .venv/bin/python benchmarks/mc_host.py                 # 2000 questions, rows of 512 and 4096 tokens
    .venv/bin/python benchmarks/mc_host.py --questions 400 # quicker

The MC workload of ``mc_scoring.py`` (four short options behind a shared five-shot prefix) through
``HFBackend.score`` with a model whose forward is negligible: a 1-layer, 16-wide random Llama over a byte-level
BPE tokenizer of 1024 tokens trained here on the workload's own text (a real fast tokenizer, so tokenisation
costs what it costs; a 49k vocabulary would make the LM head, not the host, dominate a CPU run). "Before" is
``alignlab/models/{packing,hf}.py`` at git ``HEAD`` (``git show``, read-only) loaded as temporary modules;
"after" is the working tree. Host time per question = CPU time - CPU time inside ``model.forward`` - (after
only) building the attention mask from the row plan, which the new code does on the device (a dense mask on CPU,
FlexAttention's block mask on CUDA); the old code filled it token by token on the host, so there it stays host
time. CPU time, because the machine may be shared; wall-clock host time is printed too. Both sides must give the
same scores (max |dlogL| printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from mc_questions import continuations, make_questions

ROOT = Path(__file__).resolve().parents[1]


def old_backend_class(tmp: Path) -> type:
    """``HFBackend`` as of git HEAD, with its own ``packing`` module (read-only git)."""
    for name in ("packing", "hf"):
        text = subprocess.run(["git", "show", f"HEAD:alignlab/models/{name}.py"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        text = text.replace("from alignlab.models.packing import", "from old_packing import")
        (tmp / f"old_{name}.py").write_text(text)
    sys.path.insert(0, str(tmp))
    spec = importlib.util.spec_from_file_location("old_hf", tmp / "old_hf.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.HFBackend


def small_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=1024, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def tiny_model(vocab: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=8192)
    return LlamaForCausalLM(config).eval()


class CpuClock:
    """Wall and CPU seconds inside ``model.forward`` (CPU time: other processes on a shared machine do not count)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.wall = self.cpu = 0.0
        model.register_forward_pre_hook(self._start)
        model.register_forward_hook(self._end)

    def _start(self, *_: object) -> None:
        self._t = (time.perf_counter(), time.process_time())

    def _end(self, *_: object) -> None:
        self.wall += time.perf_counter() - self._t[0]
        self.cpu += time.process_time() - self._t[1]


def measure(backend, requests, mask_module=None) -> dict:
    """Score all requests once (after a warm-up call); wall and CPU seconds overall, in forward and building
    masks (the new code's ``dense_mask``, a device op on a GPU)."""
    backend.score(requests[:8])
    forward, mask = CpuClock(backend.model), [0.0, 0.0]
    if mask_module is not None:
        original = mask_module.dense_mask

        def timed(*args, **kwargs):
            t, c = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                mask[0] += time.perf_counter() - t
                mask[1] += time.process_time() - c
        mask_module.dense_mask = timed
    backend.prefix_store.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    results = backend.score(requests)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if mask_module is not None:
        mask_module.dense_mask = original
    return {"wall": wall, "cpu": cpu, "forward": forward.cpu, "mask": mask[1], "host": cpu - forward.cpu - mask[1],
            "host_wall": wall - forward.wall - mask[0], "logliks": [r.logprobs for r in results]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--questions", type=int, default=2000)
    p.add_argument("--budgets", default="512,4096", help="tokens per forward (max_batch_tokens), comma-separated")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    from alignlab.models import packing
    from alignlab.models.hf import HFBackend
    from alignlab.models.types import ScoreRequest

    prefix, questions = make_questions(args.questions, args.seed)
    requests = [ScoreRequest(prefix + q.text(), continuations(q)) for q in questions]
    tokenizer = small_tokenizer([prefix] + [r.context + c for r in requests[:400] for c in r.continuations])
    model = tiny_model(len(tokenizer))
    n = len(requests)
    with tempfile.TemporaryDirectory() as tmp:
        old_cls = old_backend_class(Path(tmp))
        rows = []
        for budget in (int(b) for b in args.budgets.split(",")):
            old = measure(old_cls(model, tokenizer, spec="hf:old", max_batch_tokens=budget), requests)
            new = measure(HFBackend(model, tokenizer, spec="hf:new", max_batch_tokens=budget), requests,
                          mask_module=packing)
            diff = max(abs(a - b) for x, y in zip(old["logliks"], new["logliks"], strict=True)
                       for a, b in zip(x, y, strict=True))
            rows.append((budget, old, new, diff))
    print(f"\nHost side of HFBackend.score: {n} questions x 4 options, shared 5-shot prefix, tiny model "
          f"(vocab {len(tokenizer)}), 1 torch thread; CPU ms per question (wall-clock host ms in the last column)")
    head = ["budget", "side", "total", "forward", "mask build", "host", "host (wall)"]
    print("".join(h.rjust(12) for h in head) + "   max |dlogL|")
    for budget, old, new, diff in rows:
        for name, r in (("before", old), ("after", new)):
            cells = [str(budget), name, *(f"{1000 * r[k] / n:.3f}" for k in ("cpu", "forward", "mask", "host",
                                                                             "host_wall"))]
            print("".join(c.rjust(12) for c in cells) + (f"   {diff:.1e}" if name == "after" else ""))
        speedup = old["host"] / new["host"], old["host_wall"] / new["host_wall"]
        print(f"{'':12}{'speed-up':>12}{'':36}{speedup[0]:>12.1f}x{speedup[1]:>11.1f}x")

if __name__ == "__main__":
    main()
