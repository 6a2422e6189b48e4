"""torchrun with 2 CPU processes (gloo) gives the same factors and scores as one process."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = '''
import sys
from pathlib import Path
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from alignlab.influence import distributed as dist
from alignlab.influence.data import make_batches
from alignlab.influence.factors import FactorConfig
from alignlab.influence.modules import find_tracked
from alignlab.influence.pipeline import _scores_over
from alignlab.influence.scores import Preconditioner, precondition_queries
from alignlab.influence.store import fit_factors

torch.set_num_threads(1)
dist.setup()
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                     num_attention_heads=2, num_key_value_heads=2)).eval()
gen = torch.Generator().manual_seed(5)
train = [torch.randint(0, 40, (int(torch.randint(5, 10, (1,), generator=gen)),), generator=gen).tolist()
         for _ in range(13)]
tracked = find_tracked(model, torch.tensor([train[0]]))
config = FactorConfig(fisher="sampled", batch_size=3, seed=4)
batches = make_batches(train, dist.shard(list(range(13)), 3), 3, 0)
folder = Path(sys.argv[1])
factors = fit_factors(model, tracked, batches, config, folder)
pre = Preconditioner(factors)
queries = precondition_queries(model, pre, make_batches(train, [1, 6], 2, 0))
scores = _scores_over(model, pre, train, list(range(13)), queries, 3, 0, True, None, "scores")
if dist.rank() == 0:
    torch.save({"total": scores.total, "per_token": scores.per_token}, folder / "scores.pt")
dist.teardown()
'''


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="no torchrun")
def test_two_processes_equal_one(tmp_path, monkeypatch):
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    monkeypatch.setattr(sys, "argv", [str(script), str(tmp_path / "one")])
    runpy.run_path(str(script), run_name="__main__")  # the single-process reference, in this process
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / "two")],
                   check=True, env=env, timeout=120, capture_output=True)
    files = sorted(p.name for p in (tmp_path / "one").glob("[ag]*-*.safetensors"))  # act-/grad- factor files
    assert files and files == sorted(p.name for p in (tmp_path / "two").glob("[ag]*-*.safetensors"))
    for name in files:
        one, two = load_file(str(tmp_path / "one" / name)), load_file(str(tmp_path / "two" / name))
        torch.testing.assert_close(two["eigenvalues"], one["eigenvalues"], rtol=1e-4, atol=1e-6)
        if "lambda" in one:
            torch.testing.assert_close(two["lambda"], one["lambda"], rtol=1e-3, atol=1e-6)
            assert float(one["sequences"]) == float(two["sequences"]) == 13
    s1 = torch.load(tmp_path / "one" / "scores.pt", weights_only=True)
    s2 = torch.load(tmp_path / "two" / "scores.pt", weights_only=True)
    assert s1["total"].shape == (2, 13)
    torch.testing.assert_close(s2["total"], s1["total"], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(s2["per_token"], s1["per_token"], rtol=1e-3, atol=1e-3)
