"""``alignlab redteam``: red teaming after Ganguli et al. 2022 (attacks on target types, min-harmlessness
scoring, success rates, the attack landscape) with LM-generated attacks after Perez et al. 2022.

``generate`` writes attacks into a run directory; ``attack`` plays attacks against targets, scores and maps them;
``score`` adds a scorer to a run (or scores a transcript file); ``map`` draws the landscape of a run or a file.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    CacheOpt,
    DataOpt,
    DtypeOpt,
    OutOpt,
    ResumeOpt,
    command_line,
    console,
    finish_run,
    load_or_exit,
    progress_bars,
)

redteam_app = typer.Typer(no_args_is_help=True, help=(
    "Red teaming (Ganguli et al. 2022): attack target types, score harmlessness per turn, compare success rates, "
    "map the attack landscape."))

SourceOpt = Annotated[str, typer.Option("--source", help="Comma-separated attack sources: harmless-base, "
                                                          "attempts[:PATH], jsonl:PATH, zero-shot, few-shot[:POOL].")]
TargetOpt = Annotated[str, typer.Option("--target", help="Comma-separated targets TYPE[=MODEL_SPEC]; TYPE is plain, "
                                                          "prompted, rejection or trained.")]
ScorerOpt = Annotated[str, typer.Option("--scorer", help="Comma-separated scorers: judge:<model spec> or "
                                                          "pm:<preference model folder>. The first also picks "
                                                          "rejection samples and weights few-shot pools.")]
AttackerOpt = Annotated[str, typer.Option("--attacker", help="Model spec that writes attacks, continues "
                                                              "conversations and labels clusters.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="At most this many attacks per source.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds sampling, few-shot draws, UMAP and clustering.")]
PathArg = Annotated[Path, typer.Argument(help="A red-team run directory, or a transcript file (released "
                                              "red_team_attempts JSON/JSONL(.gz), or JSONL with transcript/messages).")]


def _fail(err: Exception, run: Any = None) -> typer.Exit:
    hint = f"\n(completed samples are saved; finish with --resume {run.path})" if run is not None else ""
    console.print(f"[red]error:[/red] {err}{hint}")
    return typer.Exit(2)


def _finish(run: Any, config: Any, skips: list[Any]) -> None:
    from alignlab.redteam.summary import build_summary

    notes = [f"skipped {s}" for s in skips]
    finish_run(run, build_summary(run.samples(), run.manifest, seed=config.seed, skips=notes))


def _resources(dtype: str, cache: bool) -> Any:
    from alignlab.redteam.pipeline import Resources

    return Resources(lambda spec: load_or_exit(spec, dtype, cache))


def _execute(run: Any, config: Any, dtype: str, cache: bool, stage: Any, skips: list[Any] | None = None) -> None:
    """Run ``stage(resources, progress) -> skips`` with progress bars, close the models, write the report."""
    from alignlab.models.types import ModelError

    console.print(f"run directory: {run.path}")
    res = _resources(dtype, cache)
    try:
        with progress_bars() as update:
            found = stage(res, update) or []
    except (FileNotFoundError, ValueError, ModelError, ModuleNotFoundError) as err:
        raise _fail(err, run) from err
    finally:
        res.close()
    _finish(run, config, [*(skips or []), *found])


@redteam_app.command("attack")
def attack(
    source: SourceOpt = "harmless-base",
    target: TargetOpt = "plain,prompted",
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec for targets given without =SPEC.")]
    = "embedded",
    attacker: AttackerOpt = "embedded",
    scorer: ScorerOpt = "judge:embedded",
    limit: LimitOpt = 8,
    turns: Annotated[int, typer.Option("--turns", help="Assistant turns per conversation; the attacker writes the "
                                                       "Human turns after the first.")] = 1,
    rejection_n: Annotated[int, typer.Option("--rejection-n", help="Samples per reply for the rejection "
                                                                   "target (paper: 16).")] = 4,
    few_shot_k: Annotated[int, typer.Option("--few-shot-k", help="Examples per few-shot prompt.")] = 5,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens per reply.")] = 64,
    prompt_format: Annotated[str, typer.Option("--format", help="chat (chat template) or raw_hh "
                                                                "(Human:/Assistant: text, for base models).")] = "chat",
    calibration_pairs: Annotated[int, typer.Option("--calibration-pairs", help="hh-rlhf harmless-base pairs that set "
                                                                               "each scorer's threshold.")] = 64,
    quantile: Annotated[float, typer.Option("--threshold-quantile", help="Threshold = this quantile of the "
                                                                        "rejected replies' scores.")] = 0.5,
    landscape: Annotated[bool, typer.Option("--map/--no-map", help="Draw the attack landscape.")] = True,
    clusters: Annotated[int | None, typer.Option("--clusters", help="k-means clusters (default: HDBSCAN, or "
                                                                    "k-means on small maps).")] = None,
    projection: Annotated[str, typer.Option("--projection", help="umap (the paper's) or pca (instant; UMAP "
                                                                  "compiles for tens of seconds).")] = "umap",
    seed: SeedOpt = 0,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Conversations per model call.")] = 16,
) -> None:
    """Attack targets, score every assistant turn, report success rates, distributions and the landscape."""
    from alignlab.redteam.pipeline import RedteamConfig, run_attack
    from alignlab.runs.run import Run

    split = lambda text: [s.strip() for s in text.split(",") if s.strip()]  # noqa: E731
    if resume:
        run = Run.resume(resume)
        config = RedteamConfig(**run.manifest["config"]["study"])
        dtype = run.manifest["config"]["dtype"]
    else:
        try:
            config = RedteamConfig(sources=split(source), targets=split(target), scorers=split(scorer), model=model,
                                   attacker=attacker, limit=limit, turns=turns, few_shot_k=few_shot_k,
                                   rejection_n=rejection_n, max_new_tokens=max_new_tokens,
                                   prompt_format=prompt_format, calibration_pairs=calibration_pairs,  # type: ignore
                                   threshold_quantile=quantile, seed=seed, data=data, chunk_size=chunk_size,
                                   landscape=landscape, clusters=clusters,
                                   projection=projection)
        except ValueError as err:
            raise _fail(err) from err
        run = Run.create("redteam", {"study": asdict(config), "dtype": dtype}, root=out, seed=seed,
                         command=command_line())
    _execute(run, config, dtype, cache, lambda res, update: run_attack(run, config, res, update))


@redteam_app.command("generate")
def generate(
    method: Annotated[str, typer.Option("--method", help="zero-shot or few-shot (needs --pool).")] = "zero-shot",
    attacker: AttackerOpt = "embedded",
    pool: Annotated[str | None, typer.Option("--pool", help="Few-shot examples: a scored red-team run directory "
                                                            "or a red_team_attempts file with ratings.")] = None,
    scorer: ScorerOpt = "judge:embedded",
    limit: LimitOpt = 16,
    few_shot_k: Annotated[int, typer.Option("--few-shot-k", help="Examples per few-shot prompt.")] = 5,
    seed: SeedOpt = 0,
    out: OutOpt = Path("runs"),
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """Write LM-generated attacks (Perez et al. 2022) to a run directory's attacks.jsonl, for ``--source jsonl:``."""
    from alignlab.redteam.attacks import Attack, write_attacks
    from alignlab.redteam.pipeline import RedteamConfig, collect_attacks
    from alignlab.runs.run import Run

    if method not in ("zero-shot", "few-shot"):
        raise _fail(ValueError(f"--method must be zero-shot or few-shot, got {method!r}"))
    if method == "few-shot" and not pool:
        raise _fail(ValueError("--method few-shot needs --pool (a scored run directory or an attempts file)"))
    source = method if method == "zero-shot" else f"few-shot:{pool}"
    config = RedteamConfig(sources=[source], targets=[], scorers=[scorer], attacker=attacker, limit=limit,
                           few_shot_k=few_shot_k, seed=seed, landscape=False)
    run = Run.create("redteam-generate", {"study": asdict(config), "dtype": dtype}, root=out, seed=seed,
                     command=command_line())
    console.print(f"run directory: {run.path}")
    res = _resources(dtype, cache)
    try:
        attacks: list[Attack] = collect_attacks(run, config, res, [source], 1, [])
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err, run) from err
    finally:
        res.close()
    path = write_attacks(attacks, run.path / "attacks.jsonl")
    summary = {"title": "alignlab red teaming: generated attacks", "headline": [
        {"label": "attacks generated", "value": len(attacks), "note": f"{method} by {attacker}"}],
        "sections": [{"id": "redteam", "title": f"Generated attacks ({method}, Perez et al. 2022 §2.2)",
                      "description": f"Written to {path.name}; attack them with --source jsonl:{path}.",
                      "tables": [{"title": "Attacks", "columns": ["id", "attack"],
                                  "rows": [[a.id, a.messages[-1].content] for a in attacks]}]}]}
    finish_run(run, summary)


def _open(path: Path, out: Path, study: str, config: Any, dtype: str) -> tuple[Any, Any, list[Any]]:
    """A run directory reopened, or a transcript file imported into a new run."""
    from alignlab.redteam.pipeline import RedteamConfig, import_transcripts
    from alignlab.runs.run import Run

    if path.is_dir():
        run = Run.resume(path)
        saved = RedteamConfig(**run.manifest["config"]["study"])
        return run, saved, []
    if not path.is_file():
        raise FileNotFoundError(f"{path} is neither a run directory nor a transcript file")
    run = Run.create(study, {"study": asdict(config), "dtype": dtype, "transcripts": str(path)}, root=out,
                     seed=config.seed, command=command_line())
    return run, config, import_transcripts(run, path)


@redteam_app.command("score")
def score_(
    path: PathArg,
    scorer: ScorerOpt = "judge:embedded",
    calibration_pairs: Annotated[int, typer.Option("--calibration-pairs", help="Pairs that set the threshold.")] = 64,
    quantile: Annotated[float, typer.Option("--threshold-quantile", help="Quantile of rejected scores.")] = 0.5,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """Score a run's conversations with more scorers (in place), or score a transcript file (a new run)."""
    from alignlab.redteam.pipeline import RedteamConfig, score

    specs = [s.strip() for s in scorer.split(",") if s.strip()]
    try:
        fresh = RedteamConfig(targets=[], scorers=specs, calibration_pairs=calibration_pairs,
                              threshold_quantile=quantile, data=data, landscape=False)
        run, config, skips = _open(path, out, "redteam-score", fresh, dtype)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    _execute(run, config, dtype, cache, lambda res, update: score(run, fresh, res, specs, update), skips)


@redteam_app.command("map")
def map_(
    path: PathArg,
    labeler: Annotated[str, typer.Option("--labeler", help="Model spec that writes the cluster labels.")]
    = "embedded",
    clusters: Annotated[int | None, typer.Option("--clusters", help="k-means clusters (default: HDBSCAN, or "
                                                                    "k-means on small maps).")] = None,
    projection: Annotated[str, typer.Option("--projection", help="umap (the paper's) or pca (instant; UMAP "
                                                                  "compiles for tens of seconds).")] = "umap",
    seed: SeedOpt = 0,
    out: OutOpt = Path("runs"),
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """The attack landscape of a run or a transcript file: embeddings, UMAP, clusters with LM labels, tag counts."""
    from alignlab.redteam.mapping import map_run
    from alignlab.redteam.pipeline import RedteamConfig

    try:
        fresh = RedteamConfig(targets=[], attacker=labeler, seed=seed, clusters=clusters, projection=projection)
        run, config, skips = _open(path, out, "redteam-map", fresh, dtype)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    _execute(run, config, dtype, cache, lambda res, update: map_run(run, fresh, res, update, label_model=labeler),
             skips)
