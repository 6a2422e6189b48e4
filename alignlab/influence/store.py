"""Fitting EK-FAC factors into a folder of safetensors files, resumable layer by layer.

Layout of a factors folder::

    factors.json                 config, tracked layers, caller's identity (model, data), timings, status
    act-<group>.safetensors      eigenvalues + eigenvectors of A (one file per shared-input group)
    grad-<layer>.safetensors     eigenvalues + eigenvectors of S, Λ (mean over sequences), counts
    head.safetensors             the output layer's softmax term per training row (head.py; when it fits)
    cov-<pass>.safetensors       covariances of an unfinished pass (deleted when the pass completes)

Layers are fitted in passes of ``layers_per_pass`` transformer layers (all at once by default); a restarted
fit skips every pass whose files exist and reuses saved covariances, so a crash loses at most one pass.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from alignlab.influence import distributed as dist
from alignlab.influence.data import Batch
from alignlab.influence.factors import FactorConfig, correction_pass, covariance_pass, eigendecompose
from alignlab.influence.head import HeadCache
from alignlab.influence.modules import TrackedModule

Progress = Callable[[str, int, int], None]
HEAD_FILE = "head.safetensors"


@dataclass
class Factors:
    """Fitted EK-FAC factors: eigenbases per group/layer and Λ (mean over sequences) per layer."""

    tracked: list[TrackedModule]
    qa: dict[str, torch.Tensor]
    ea: dict[str, torch.Tensor]
    qs: dict[str, torch.Tensor]
    es: dict[str, torch.Tensor]
    lam: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    head: HeadCache | None = None  # the output layer's softmax term per training row (head.py), if kept

    def to(self, device: str | torch.device) -> Factors:
        def move(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.to(device) for k, v in d.items()}
        return Factors(self.tracked, move(self.qa), move(self.ea), move(self.qs), move(self.es), move(self.lam),
                       self.meta, self.head)


def layer_index(name: str) -> int:
    """The transformer layer a module belongs to (first integer path part), or -1."""
    match = re.search(r"\.(\d+)\.", f".{name}.")
    return int(match.group(1)) if match else -1


def partitions(tracked: Sequence[TrackedModule], layers_per_pass: int | None) -> list[list[TrackedModule]]:
    """Consecutive groups of ``layers_per_pass`` layers; members of a shared-input group stay together."""
    if layers_per_pass is None:
        return [list(tracked)]
    layers = sorted({layer_index(t.name) for t in tracked})
    chunks = [set(layers[i:i + layers_per_pass]) for i in range(0, len(layers), layers_per_pass)]
    leader_layer = {t.name: layer_index(t.name) for t in tracked}
    return [[t for t in tracked if leader_layer[t.group] in chunk] for chunk in chunks]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / ".factors.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, folder / "factors.json")


def _comparable(value: Any) -> Any:
    """A recorded setting as compared on resume: the output-layer cache budget changes speed, not results."""
    return {k: v for k, v in value.items() if k != "head_cache_mib"} if isinstance(value, dict) else value


class _Clock:
    """Adds wall and process-CPU seconds per phase (CPU time is less sensitive to other load on shared cores)."""

    def __init__(self, wall: dict[str, float], cpu: dict[str, float]) -> None:
        self.wall, self.cpu = wall, cpu
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def start(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def stop(self, phase: str) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.wall[phase] = self.wall.get(phase, 0.0) + time.perf_counter() - self.t0
        self.cpu[phase] = self.cpu.get(phase, 0.0) + time.process_time() - self.c0
        self.start()


def fit_factors(model: torch.nn.Module, tracked: list[TrackedModule], batches: Sequence[Batch], config: FactorConfig,
                folder: Path, identity: dict[str, Any] | None = None, progress: Progress | None = None) -> Factors:
    """Fit (or finish fitting) factors into ``folder``; ``identity`` (model fingerprint, data hash) must match a
    folder being resumed. ``batches`` are this process's shard (see ``distributed.shard``)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"config": asdict(config), "tracked": [asdict(t) for t in tracked], "identity": identity or {},
            "timings": {}, "cpu_timings": {}, "status": "running"}
    meta_path = folder / "factors.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        for key in ("config", "tracked", "identity"):
            if _comparable(old.get(key)) != _comparable(json.loads(json.dumps(meta[key], default=str))):
                raise ValueError(f"{meta_path}: '{key}' differs from this fit; use a new folder")
        meta["timings"], meta["cpu_timings"] = old.get("timings", {}), old.get("cpu_timings", {})
    is_main = dist.rank() == 0
    if is_main:
        _write_meta(folder, meta)
    clock = _Clock(meta["timings"], meta["cpu_timings"])
    device = next(model.parameters()).device
    head = HeadCache(config.head_cache_mib * 2**20) if config.head_cache_mib > 0 else None
    for p, part in enumerate(partitions(tracked, config.layers_per_pass)):
        if all((folder / f"grad-{_safe(t.name)}.safetensors").exists() for t in part):
            continue
        cov_path = folder / f"cov-{p}.safetensors"
        clock.start()
        if cov_path.exists():
            saved = load_file(str(cov_path), device=str(device))
            acts = {k[2:]: v for k, v in saved.items() if k.startswith("A/")}
            grads = {k[2:]: v for k, v in saved.items() if k.startswith("S/")}
            tokens = float(saved["tokens"])
        else:
            acts, grads, tokens = covariance_pass(model, part, batches, config, progress, head)
            if is_main:
                _save({f"A/{k}": v for k, v in acts.items()} | {f"S/{k}": v for k, v in grads.items()}
                      | {"tokens": torch.tensor(tokens, dtype=torch.float64)}, cov_path)
        clock.stop("covariances")
        eig_a = {g: eigendecompose(c, tokens, f"A of {g}") for g, c in acts.items()}
        eig_s = {n: eigendecompose(c, tokens, f"S of {n}") for n, c in grads.items()}
        del acts, grads
        clock.stop("eigendecomposition")
        qa = {g: v for g, (_, v) in eig_a.items()}
        qs = {n: v for n, (_, v) in eig_s.items()}
        lam, sequences = correction_pass(model, part, batches, qa, qs, config, progress, head)
        clock.stop("correction")
        if is_main:
            for g, (values, vectors) in eig_a.items():
                _save({"eigenvalues": values, "eigenvectors": vectors}, folder / f"act-{_safe(g)}.safetensors")
            for t in part:
                values, vectors = eig_s[t.name]
                _save({"eigenvalues": values, "eigenvectors": vectors, "lambda": lam[t.name] / sequences,
                       "sequences": torch.tensor(sequences), "tokens": torch.tensor(tokens)},
                      folder / f"grad-{_safe(t.name)}.safetensors")
            cov_path.unlink(missing_ok=True)
            _write_meta(folder, meta)
        del eig_a, eig_s, qa, qs, lam  # free this pass's factors before the next pass (or the final load)
        dist.barrier()
    meta["status"] = "complete"
    if is_main:
        if head is not None and head.rows:
            head.save(folder / HEAD_FILE)
        _write_meta(folder, meta)
    dist.barrier()
    kept = head is not None and bool(head.rows)
    factors = load_factors(folder, load_head=not kept)
    if kept:
        factors.head = head  # this process's rows, already in memory (rank 0 saved its own)
    return factors


def load_factors(folder: Path, load_head: bool = True) -> Factors:
    """Read a complete factors folder (CPU tensors); ``load_head`` also reads the output-layer cache if saved."""
    meta_path = folder / "factors.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {folder} is not a factors folder")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    tracked = [TrackedModule(**t) for t in meta["tracked"]]
    out = Factors(tracked, {}, {}, {}, {}, {}, meta)
    for t in tracked:
        path = folder / f"grad-{_safe(t.name)}.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: the fit of {folder} is incomplete; rerun fit to resume it")
        grad = load_file(str(path))
        out.qs[t.name], out.es[t.name], out.lam[t.name] = grad["eigenvectors"], grad["eigenvalues"], grad["lambda"]
        if t.group not in out.qa:
            act = load_file(str(folder / f"act-{_safe(t.group)}.safetensors"))
            out.qa[t.group], out.ea[t.group] = act["eigenvectors"], act["eigenvalues"]
    if load_head and (folder / HEAD_FILE).exists():
        out.head = HeadCache.load(folder / HEAD_FILE)
    return out
