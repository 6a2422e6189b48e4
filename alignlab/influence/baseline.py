"""kronfluence (Grosse et al.'s reference implementation) on the same data, for parity tests and the benchmark.

Not a runtime dependency: ``kronfluence`` is imported only when :func:`kronfluence_scores` runs. Settings match
ours: EK-FAC, the same summed losses and masks, relative damping (``damping_factor=None`` there means
``0.1 × mean(Λ)``, our default), fp32 scores, fp64 eigendecomposition.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from alignlab.influence.data import IGNORE, make_batches, row_generator, sample_labels


class _Rows(torch.utils.data.Dataset):
    def __init__(self, seqs: Sequence[Sequence[int]], starts: Sequence[int] | None, pad_id: int) -> None:
        batch = make_batches(seqs, list(range(len(seqs))), len(seqs), pad_id, starts)[0]
        self.items = [{"input_ids": batch.input_ids[i], "attention_mask": batch.attention_mask[i],
                       "labels": batch.labels[i], "index": i} for i in range(len(seqs))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def _loss(model: torch.nn.Module, batch: dict[str, Any], sample: bool, seed: int, sampler: str) -> torch.Tensor:
    """The loss a kronfluence user writes in ``Task.compute_train_loss``: logits sliced and cross entropy; sampled
    labels by ``torch.multinomial`` over the softmax, as kronfluence's examples do, or with ``sampler="alignlab"``
    our draws exactly (same seeds, same inverse-CDF sampler, so both fits see identical labels)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    if sample:
        rows = [int(i) for i in batch["index"]]
        probs = torch.softmax(logits.detach(), dim=-1)
        if sampler == "alignlab":
            labels = sample_labels(probs, labels, rows, seed)
        else:
            labels = labels.clone()
            for r, row in enumerate(rows):
                gen = row_generator(seed, row, probs.device)
                drawn = torch.multinomial(probs[r], 1, generator=gen).squeeze(-1)
                labels[r] = torch.where(labels[r] == IGNORE, labels[r], drawn)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                           reduction="sum")


def kronfluence_scores(model: torch.nn.Module, module_names: list[str], train: Sequence[Sequence[int]],
                       queries: Sequence[Sequence[int]], query_starts: Sequence[int], out_dir: Path, *,
                       empirical: bool = True, batch_size: int = 8, query_batch_size: int = 8,
                       rank: int | None = None, seed: int = 0, pad_id: int = 0,
                       sampler: str = "multinomial") -> dict[str, Any]:
    """Fit EK-FAC factors and pairwise scores with kronfluence; returns ``scores [Q, N]`` and phase timings.
    ``sampler`` (sampled Fisher only): ``"multinomial"`` (kronfluence's recipe) or ``"alignlab"`` (our draws)."""
    if sampler not in ("multinomial", "alignlab"):
        raise ValueError(f"sampler must be 'multinomial' or 'alignlab', not {sampler!r}")
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    class LMTask(Task):
        def compute_train_loss(self, batch: Any, model: torch.nn.Module, sample: bool = False) -> torch.Tensor:
            return _loss(model, batch, sample, seed, sampler)

        def compute_measurement(self, batch: Any, model: torch.nn.Module) -> torch.Tensor:
            return _loss(model, batch, False, seed, sampler)

        def get_influence_tracked_modules(self) -> list[str]:
            return module_names

        def get_attention_mask(self, batch: Any) -> torch.Tensor:
            return batch["attention_mask"]

    task = LMTask()
    model = prepare_model(model, task)
    analyzer = Analyzer(analysis_name="parity", model=model, task=task, output_dir=str(out_dir), disable_tqdm=True,
                        disable_model_save=True, cpu=not torch.cuda.is_available())
    train_set, query_set = _Rows(train, None, pad_id), _Rows(queries, query_starts, pad_id)
    factor_args = FactorArguments(strategy="ekfac", use_empirical_fisher=empirical)
    score_args = ScoreArguments(damping_factor=None, query_gradient_low_rank=rank)
    phases = [
        ("covariances", lambda: analyzer.fit_covariance_matrices(
            "ekfac", train_set, per_device_batch_size=batch_size, factor_args=factor_args, overwrite_output_dir=True)),
        ("eigendecomposition", lambda: analyzer.perform_eigendecomposition(
            "ekfac", factor_args=factor_args, overwrite_output_dir=True)),
        ("correction", lambda: analyzer.fit_lambda_matrices(
            "ekfac", train_set, per_device_batch_size=batch_size, factor_args=factor_args, overwrite_output_dir=True)),
        ("pairwise scores", lambda: analyzer.compute_pairwise_scores(
            "scores", "ekfac", query_set, train_set, per_device_query_batch_size=query_batch_size,
            per_device_train_batch_size=batch_size, score_args=score_args, overwrite_output_dir=True)),
    ]
    timings: dict[str, float] = {}
    cpu_timings: dict[str, float] = {}
    for phase, call in phases:
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        timings[phase], cpu_timings[phase] = time.perf_counter() - wall, time.process_time() - cpu
    scores = analyzer.load_pairwise_scores("scores")["all_modules"]
    return {"scores": scores.float(), "timings": timings, "cpu_timings": cpu_timings}
