"""``torchrun --nproc-per-node 2`` (gloo, CPU) runs a study as one process does: rank 0 writes one run directory
and one cache holding every rank's results, and a resume with another number of processes recomputes nothing. A
command that every rank runs in full (training under torchrun/accelerate) also gets one run directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alignlab import bigbench, redteam
from alignlab.models.spec import load_model
from tests.test_redteam_pipeline import write_attacks_file

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))

SCRIPT = '''
import json, os, sys
from pathlib import Path
import torch
from alignlab import bigbench
from alignlab.models.spec import load_model

torch.set_num_threads(1)
TMP = Path(sys.argv[1])


def counting_load(spec, dtype, cache):
    """load_model whose backend notes (per rank) how many requests it computes; rank 0 caches in TMP/cache-*."""
    model = load_model(spec, dtype=dtype, cache=TMP / os.environ["CACHE_NAME"] if cache else False)
    score, rank = model.backend.score, os.environ["RANK"]

    def counted(requests):
        with open(TMP / f"computed-{os.environ['CACHE_NAME']}-{rank}", "a") as out:
            out.write(f"{len(requests)}\\n")
        return score(requests)

    model.backend.score = counted
    return model


config = bigbench.BigBenchConfig(tasks=["hhh_alignment"], max_examples=8, chunk_size=3)
os.environ["CACHE_NAME"] = "cache-two"
run, _ = bigbench.run(config, sys.argv[2], out=TMP / "two", load=counting_load, report=False)
os.environ["CACHE_NAME"] = "cache-partial"
resumed, _ = bigbench.run(None, resume=TMP / "partial", load=counting_load, report=False)


def broken_load(spec, dtype, cache):
    if os.environ["RANK"] == "1":
        raise OSError("no such GPU")
    return load_model(spec, dtype=dtype, cache=False)


try:
    bigbench.run(config, sys.argv[2], out=TMP / "broken", load=broken_load, report=False)
    outcome = "ran"
except RuntimeError as err:
    outcome = str(err)
(TMP / f"broken-{os.environ['RANK']}").write_text(outcome)

from alignlab import redteam


def counting_every_call(spec, dtype, cache):
    """load_model whose generate/score/next_token note (per rank) how many requests they compute."""
    model = load_model(spec, dtype=dtype, cache=False)
    for method in ("generate", "score", "next_token"):
        def counted(requests, call=getattr(model.backend, method)):
            with open(TMP / f"redteam-{os.environ['RANK']}", "a") as out:
                out.write(f"{len(requests)}\\n")
            return call(requests)
        setattr(model.backend, method, counted)
    return model


red, _ = redteam.run(redteam.RedteamConfig(**json.loads((TMP / "redteam.json").read_text())), model=sys.argv[2],
                     out=TMP / "redteam", cache=False, load=counting_every_call, report=False)
assert (red is None) == (os.environ["RANK"] != "0")  # the red-team study ran once, on rank 0

from alignlab.runs.run import Run

every = Run.create("spmd", {}, root=TMP / "spmd")  # a command every rank runs in full (accelerate-style training)
every.append([{"key": os.environ["RANK"]}])
every.finish({"rank": os.environ["RANK"]})
(TMP / f"spmd-{os.environ['RANK']}").write_text(str(every.path))
if int(os.environ["RANK"]) == 0:
    (TMP / "paths.json").write_text(json.dumps([str(run.path), str(resumed.path)]))
else:
    assert run is None and resumed is None
'''


def _samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def _same(a: object, b: object) -> None:
    """Equal records, numbers up to batch-composition rounding (each rank batches fewer requests at once)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    else:
        assert a == b


def _computed(tmp: Path, cache: str) -> int:
    return sum(int(n) for f in tmp.glob(f"computed-{cache}-*") for n in f.read_text().split())


@pytest.mark.skipif(TORCHRUN is None, reason="no torchrun next to this Python")
def test_two_processes_equal_one_and_resume_across_world_sizes(tmp_path, tiny_dir, shared_data, monkeypatch):
    spec = f"hf:{tiny_dir}"
    monkeypatch.setenv("ALIGNLAB_DATA", str(shared_data))
    config = bigbench.BigBenchConfig(tasks=["hhh_alignment"], max_examples=8, chunk_size=3)
    reference, _ = bigbench.run(config, spec, out=tmp_path / "one", report=False,
                                load=lambda s, d, c: load_model(s, dtype=d, cache=tmp_path / "cache-one"))
    expected = _samples(reference.path)

    calls = []

    def failing_load(s: str, d: str, c: bool):  # one process, stopped after its first chunk (3 of 8)
        model = load_model(s, dtype=d, cache=tmp_path / "cache-partial")
        score = model.backend.score

        def once(requests):
            if calls:
                raise OSError("device lost")
            calls.append(len(requests))
            return score(requests)

        model.backend.score = once
        return model

    with pytest.raises(OSError, match="device lost"):
        bigbench.run(config, spec, out=tmp_path / "partial-root", load=failing_load, report=False)
    (partial,) = (tmp_path / "partial-root").iterdir()
    partial.rename(tmp_path / "partial")

    # a study that is not built on run_study (red teaming): one process, every model call counted
    red_config = {"sources": [f"jsonl:{write_attacks_file(tmp_path / 'attacks.jsonl')}"],
                  "targets": ["plain", "prompted"], "scorers": [f"judge:{spec}"], "attacker": spec, "limit": 2,
                  "max_new_tokens": 4, "calibration_pairs": 2, "data": str(shared_data), "landscape": False}
    (tmp_path / "redteam.json").write_text(json.dumps(red_config))
    red_counts: list[int] = []

    def counting_every_call(s: str, d: str, c: bool):
        model = load_model(s, dtype=d, cache=False)
        for method in ("generate", "score", "next_token"):
            call = getattr(model.backend, method)
            setattr(model.backend, method, lambda requests, call=call: red_counts.append(len(requests))
                    or call(requests))
        return model

    red_one, _ = redteam.run(redteam.RedteamConfig(**red_config), model=spec, out=tmp_path / "redteam-one",
                             cache=False, load=counting_every_call, report=False)

    script = tmp_path / "two.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", "2", str(script), str(tmp_path), spec],
                          env=env, timeout=240, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    two, resumed = map(Path, json.loads((tmp_path / "paths.json").read_text()))

    _same(_samples(two), expected)  # one run directory, written by rank 0
    assert [p.name for p in (tmp_path / "two").iterdir()] == [two.name]
    both = [f for f in tmp_path.glob("computed-cache-two-*") if f.read_text().strip()]
    assert len(both) == 2  # the work was shared, and each request computed once
    assert _computed(tmp_path, "cache-two") == len(expected)
    _same(_samples(resumed), expected)
    assert _computed(tmp_path, "cache-partial") == len(expected) - 3  # the first chunk is not computed again

    # a worker that cannot load the model stops the run with its rank and reason; it is marked failed
    assert "torchrun rank 1 could not load" in (tmp_path / "broken-0").read_text()
    assert "no such GPU" in (tmp_path / "broken-0").read_text()
    (broken,) = (tmp_path / "broken").iterdir()
    assert json.loads((broken / "manifest.json").read_text())["status"] == "failed"

    # red teaming under torchrun: one run directory, and the two ranks share its model calls instead of each
    # computing all of them
    (red_two,) = (tmp_path / "redteam").iterdir()
    assert json.loads((red_two / "manifest.json").read_text())["status"] == "complete"
    assert len(_samples(red_two)) == len(_samples(red_one.path))
    per_rank = [sum(int(n) for n in (tmp_path / f"redteam-{r}").read_text().split()) for r in (0, 1)]
    assert min(per_rank) > 0 and sum(per_rank) == sum(red_counts)

    # a command that every rank runs in full gets one run directory, written by rank 0 alone
    assert (tmp_path / "spmd-0").read_text() == (tmp_path / "spmd-1").read_text()
    (spmd,) = (tmp_path / "spmd").iterdir()
    assert _samples(spmd) == [{"key": "0"}]
    assert json.loads((spmd / "summary.json").read_text()) == {"rank": "0"}

    # rank 0's cache holds every rank's results: one process now computes nothing and reads what 2 processes wrote
    counted = []
    model = load_model(spec, cache=tmp_path / "cache-two")
    score = model.backend.score
    model.backend.score = lambda requests: counted.append(len(requests)) or score(requests)
    again, _ = bigbench.run(config, model, out=tmp_path / "again", report=False)
    assert counted == []
    assert _samples(again.path) == _samples(two)  # exactly: every result came from the cache
