"""``alignlab influence``: EK-FAC influence functions (Grosse et al. 2023). ``fit`` fits factors on a training file;
``query`` ranks the training sequences by influence on a prompt + completion. Both run under ``torchrun``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    DtypeOpt,
    ModelOpt,
    OutOpt,
    ResumeOpt,
    command_line,
    console,
    finish_run,
    progress_bars,
)

influence_app = typer.Typer(no_args_is_help=True, help=(
    "Influence functions with EK-FAC (Grosse et al. 2023): fit factors, then find the training sequences that "
    "most influence a completion."))

DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda (cuda:<local rank> under torchrun).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Training sequences per forward/backward pass.")]


@influence_app.command("fit")
def fit(
    train: Annotated[Path | None, typer.Option("--train", help="Training sequences: .jsonl with a 'text' field, or "
                                                               "a text file with one sequence per line.")] = None,
    model: ModelOpt = "embedded",
    modules: Annotated[str, typer.Option("--modules", help="mlp (the paper), attention, or all.")] = "mlp",
    pattern: Annotated[str | None, typer.Option("--pattern", help="Regex over layer names (overrides "
                                                                  "--modules).")] = None,
    fisher: Annotated[str, typer.Option("--fisher", help="sampled (labels drawn from the model, the paper) or "
                                                         "empirical (data labels).")] = "sampled",
    block_size: Annotated[int | None, typer.Option("--block-size", help="Block-diagonal factors for sides wider "
                                                                        "than this.")] = None,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per sequence (longer ones are "
                                                                 "cut).")] = 128,
    max_sequences: Annotated[int | None, typer.Option("--max-sequences", help="Use the first N sequences.")] = None,
    layers_per_pass: Annotated[int | None, typer.Option("--layers-per-pass", help="Fit this many layers per data "
                                                                                  "pass (less memory).")] = None,
    batch_size: BatchOpt = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the sampled labels.")] = 0,
    head_cache_mib: Annotated[int, typer.Option("--head-cache-mib", help="CPU: keep the output layer's softmax term "
                                                "per training row up to this size, so later passes skip the output "
                                                "layer (exact; 0: off).")] = 1024,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "auto",
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
) -> None:
    """Fit EK-FAC factors (covariances, float64 eigenbases, eigenvalue correction) into <run>/factors."""
    from alignlab.influence import distributed as dist
    from alignlab.influence.factors import FactorConfig
    from alignlab.influence.study import load_backend, run_fit
    from alignlab.runs.run import Run

    with _influence_run() as state:
        if resume:
            state["run"] = Run.resume(resume) if dist.rank() == 0 else None
            cfg = _manifest(resume)["config"]
            config, train, model, dtype = FactorConfig(**cfg["factor_config"]), Path(cfg["train"]), cfg["model"], \
                cfg["dtype"]
        else:
            if train is None:
                _fail("name the training file with --train (or use --resume)")
            config = FactorConfig(scope=modules, pattern=pattern, fisher=fisher, block_size=block_size,  # type: ignore
                                  batch_size=batch_size, max_length=max_length, max_sequences=max_sequences,
                                  layers_per_pass=layers_per_pass, seed=seed, head_cache_mib=head_cache_mib)
            if dist.rank() == 0:
                state["run"] = Run.create("influence", {"kind": "fit", "model": model, "dtype": dtype,
                                                        "train": str(train.resolve()),
                                                        "factor_config": vars(config).copy()},
                                          root=out, seed=seed, command=command_line())
        loaded = _open(state, load_backend(model, dtype, device))
        with progress_bars() as update:
            _, state["summary"] = run_fit(state["run"].path if state["run"] else None, loaded, train, config, update)


@influence_app.command("query")
def query(
    fit_run: Annotated[Path | None, typer.Option("--fit", help="The 'influence fit' run directory (default: the "
                                                               "newest complete one under --out).")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Query prompt (masked out of f).")] = None,
    completion: Annotated[str | None, typer.Option("--completion", help="Query completion: f = its NLL.")] = None,
    queries: Annotated[Path | None, typer.Option("--queries", help="JSONL of {prompt, completion} queries.")] = None,
    candidates: Annotated[str | None, typer.Option("--candidates", help="tfidf:N scores only the N TF-IDF-nearest "
                                                                        "training sequences per query.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Sequences reported per query.")] = 10,
    rank: Annotated[int, typer.Option("--rank", help="Rank of the query gradients in the ranking pass (0 = full); "
                                                     "the top-k are re-scored at full rank.")] = 32,
    damping_factor: Annotated[float, typer.Option("--damping-factor", help="λ = factor × mean(Λ) per "
                                                                           "layer.")] = 0.1,
    damping: Annotated[float | None, typer.Option("--damping", help="Absolute λ (overrides the factor).")] = None,
    batch_size: BatchOpt = 8,
    query_batch_size: Annotated[int, typer.Option("--query-batch-size", help="Queries sharing one training "
                                                                             "pass.")] = 16,
    device: DeviceOpt = "auto",
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
) -> None:
    """Top-k influential training sequences per query, with per-token highlights, layer and sparsity plots."""
    from alignlab.influence import distributed as dist
    from alignlab.influence.candidates import parse_candidates
    from alignlab.influence.data import read_queries
    from alignlab.influence.pipeline import QueryConfig
    from alignlab.influence.study import load_backend, query_report, run_query
    from alignlab.runs.run import Run

    with _influence_run() as state:
        if resume:
            cfg = _manifest(resume)["config"]
            fit_dir, pairs, config = Path(cfg["fit"]), [tuple(q) for q in cfg["queries"]], QueryConfig(**cfg["query"])
            state["run"] = Run.resume(resume) if dist.rank() == 0 else None
        else:
            fit_run = fit_run or _latest_fit(out)
            pairs = _query_pairs(prompt, completion, queries, read_queries)
            config = QueryConfig(rank=rank or None, top_k=top_k, candidates=parse_candidates(candidates),
                                 damping_factor=damping_factor, damping=damping, batch_size=batch_size,
                                 query_batch_size=query_batch_size)
            fit_dir = fit_run.resolve()
            if dist.rank() == 0:
                state["run"] = Run.create("influence", {"kind": "query", "fit": str(fit_dir), "queries": pairs,
                                                        "query": vars(config).copy()}, root=out,
                                          command=command_line())
        fit_cfg = _manifest(fit_dir)["config"]
        loaded = _open(state, load_backend(fit_cfg["model"], fit_cfg["dtype"], device))
        run = state["run"]
        done = dist.broadcast_object(run.done_keys() if run else set())
        with progress_bars() as update:
            records, pre = run_query(loaded, fit_dir, pairs, config, done, update)
        if run is not None:
            run.append(records)
            state["summary"] = query_report(loaded, fit_dir, run.samples(), config, pre)


@contextmanager
def _influence_run() -> Iterator[dict[str, Any]]:
    """Join torchrun's process group (if any), turn data/model errors into one red line naming the run to resume,
    and let rank 0 finish the run (``state["run"]``) with ``state["summary"]``."""
    from alignlab.influence import distributed as dist

    dist.setup()
    state: dict[str, Any] = {"run": None}
    try:
        yield state
    except typer.Exit:
        raise
    except (FileNotFoundError, ValueError, RuntimeError, FloatingPointError) as err:
        run = state["run"]
        _fail(str(err) + (f"\n(finish with --resume {run.path})" if run else ""))
    if state["run"] is not None:
        finish_run(state["run"], state["summary"])
    dist.teardown()


def _open(state: dict[str, Any], loaded: Any) -> Any:
    """Record the loaded model in the run (rank 0) and say where the run is."""
    if state["run"] is not None:
        state["run"].record_model(loaded)
        console.print(f"run directory: {state['run'].path}")
    return loaded


def _query_pairs(prompt: str | None, completion: str | None, queries: Path | None, reader: object) -> list:
    pairs = list(reader(queries)) if queries else []  # type: ignore[operator]
    if prompt is not None or completion is not None:
        if not prompt or not completion:
            _fail("give both --prompt and --completion")
        pairs.append((prompt, completion))
    if not pairs:
        _fail("give --prompt and --completion, or --queries FILE")
    return pairs


def _latest_fit(out: Path) -> Path:
    """The newest complete ``influence fit`` run under ``out``."""
    import json

    fits = []
    for manifest in out.glob("influence-*/manifest.json"):
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("config", {}).get("kind") == "fit" and data.get("status") == "complete":
            fits.append((data.get("finished", ""), manifest.parent))
    if not fits:
        _fail(f"no complete 'influence fit' run under {out}: run 'alignlab influence fit' first or pass --fit")
    return max(fits)[1]


def _manifest(path: Path) -> dict:
    import json

    file = path / "manifest.json"
    if not file.is_file():
        _fail(f"{file} not found: {path} is not a run directory")
    return json.loads(file.read_text(encoding="utf-8"))


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
