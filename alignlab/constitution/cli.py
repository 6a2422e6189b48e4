"""``alignlab constitution``: Constitutional AI (Bai et al. 2022) and specific vs general principles
(Kundu et al. 2023).

revise -> train-sft; label -> train-pm -> train-rl (rloo | grpo | dpo); questions -> label -> train-pm -> evaluate-pm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.cli_common import (
    CacheOpt,
    DataOpt,
    DtypeOpt,
    ModelOpt,
    OutOpt,
    ResumeOpt,
    command_line,
    console,
    finish_run,
    load_or_exit,
    progress_bars,
)

constitution_app = typer.Typer(no_args_is_help=True, help=(
    "Constitutional AI: critique/revision data, AI feedback labels, preference models, RL (RLOO/GRPO/DPO) and "
    "trait PMs evaluated on persona evals."))

ConstitutionOpt = Annotated[str, typer.Option("--constitution", "-c", help="Built-in name (harmless, "
                            "good_for_humanity, power_seeking, self_preservation, self_replication, risk_seeking, "
                            "self_identity) or a .yaml file.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="At most this many prompts/pairs (a seeded subset).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds subsets, principle draws and sampling.")]
PromptsOpt = Annotated[str | None, typer.Option("--prompts", help="JSONL of prompts (prompt/question, or hh-rlhf "
                                                                  "chosen); default hh-rlhf harmless-base test.")]
StepsOpt = Annotated[int, typer.Option("--steps", help="Optimizer steps.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Examples (prompts for RL) per step.")]
LrOpt = Annotated[float, typer.Option("--lr", help="Learning rate.")]
LoraOpt = Annotated[bool, typer.Option("--lora/--full", help="LoRA (all linear layers, merged when saved) or full.")]
MaxLenOpt = Annotated[int, typer.Option("--max-length", help="Truncate/drop training sequences beyond this.")]


def _fail(err: Exception, run: Any = None) -> typer.Exit:
    extra = f"\n(completed samples are saved; finish with --resume {run.path})" if run is not None else ""
    console.print(f"[red]error:[/red] {err}{extra}")
    return typer.Exit(2)


def _generation_study(study: str, cls: type, runner: Any, fields: dict[str, Any], model: str, resume: Path | None,
                      out: Path, dtype: str, cache: bool) -> None:
    """Create (or resume, with its saved config and model) a run, run ``runner(run, model, config)``, finish it."""
    from dataclasses import asdict

    from alignlab.runs.run import Run

    try:
        if resume:
            run = Run.resume(resume)
            config = cls(**run.manifest["config"]["study"])
        else:
            config = cls(**fields)
            run = Run.create(study, {"study": asdict(config), "model": model}, root=out, seed=config.seed,
                             command=command_line())
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from err
    console.print(f"run directory: {run.path}")
    m = load_or_exit(run.manifest["config"]["model"], dtype, cache)
    try:
        with progress_bars() as update:
            summary = runner(run, m, config, progress=update)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err, run) from err
    finish_run(run, summary)


@constitution_app.command("revise")
def revise(
    model: ModelOpt = "embedded",
    constitution: ConstitutionOpt = "harmless",
    prompts: PromptsOpt = None,
    helpful_prompts: Annotated[str | None, typer.Option("--helpful-prompts", help="JSONL of helpfulness prompts "
                                                        "whose samples join sft.jsonl.")] = None,
    rounds: Annotated[int, typer.Option("--rounds", help="Critique/revision rounds (paper: 4).")] = 4,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens per generation.")] = 64,
    few_shot: Annotated[int, typer.Option("--few-shot", help="Example transcripts in each prompt (0-3).")] = 3,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Prompts per model call in a round.")] = 16,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """SL-CAI data: responses, N critique/revision rounds; writes revisions.jsonl, sft.jsonl, dpo.jsonl."""
    from alignlab.constitution.revise import ReviseConfig, run_revisions

    _generation_study("constitution-revise", ReviseConfig, run_revisions, dict(
        constitution=constitution, rounds=rounds, prompts=prompts, limit=limit, seed=seed, data=data,
        max_new_tokens=max_new_tokens, few_shot=few_shot, chunk_size=chunk_size, helpful_prompts=helpful_prompts),
        model, resume, out, dtype, cache)


@constitution_app.command("label")
def label(
    model: ModelOpt = "embedded",
    constitution: ConstitutionOpt = "harmless",
    prompts: PromptsOpt = None,
    pairs: Annotated[str | None, typer.Option("--pairs", help="JSONL with question, response_a, response_b to "
                                                              "label (else two samples per prompt).")] = None,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    ensemble: Annotated[int, typer.Option("--ensemble", help="Principles per pair, labels averaged.")] = 1,
    swap: Annotated[bool, typer.Option("--swap/--no-swap", help="Also score (B, A) and average.")] = True,
    cot: Annotated[bool, typer.Option("--cot", help="Chain-of-thought labels, clamped to [0.4, 0.6].")] = False,
    cot_samples: Annotated[int, typer.Option("--cot-samples", help="CoT samples averaged per label.")] = 1,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Response/CoT length.")] = 64,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Pairs per model call.")] = 16,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    resume: ResumeOpt = None,
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """AI feedback: soft labels P(A better) for response pairs; writes pairs.jsonl and labels.jsonl."""
    from alignlab.constitution.feedback import LabelConfig, run_labels

    _generation_study("constitution-label", LabelConfig, run_labels, dict(
        constitution=constitution, prompts=prompts, pairs=pairs, limit=limit, seed=seed, data=data, ensemble=ensemble,
        swap=swap, cot=cot, cot_samples=cot_samples, max_new_tokens=max_new_tokens, chunk_size=chunk_size),
        model, resume, out, dtype, cache)


@constitution_app.command("questions")
def questions(
    model: ModelOpt = "embedded",
    constitution: ConstitutionOpt = "power_seeking",
    n: Annotated[int, typer.Option("--n", help="Questions to sample (before cleaning).")] = 32,
    seed: SeedOpt = 0,
    data: DataOpt = None,
    out: OutOpt = Path("runs"),
    dtype: DtypeOpt = "float32",
    cache: CacheOpt = True,
) -> None:
    """Trait questions written by the model (Kundu et al. §2.2), kept apart from the persona evals."""
    from alignlab.constitution.constitutions import load_constitution
    from alignlab.constitution.data import write_jsonl
    from alignlab.constitution.traits import generate_questions
    from alignlab.runs.run import Run

    try:
        const = load_constitution(constitution)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    run = Run.create("constitution-questions", {"study": {"constitution": constitution, "n": n, "seed": seed},
                                                "model": model}, root=out, seed=seed, command=command_line())
    m = load_or_exit(model, dtype, cache)
    run.record_model(m)
    try:
        rows, counts = generate_questions(m, const, n, seed=seed, data=data)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err, run) from err
    write_jsonl(run.path / "questions.jsonl", rows)
    finish_run(run, {"title": f"Trait questions ({const.name})",
                     "headline": [{"label": k.replace("_", " "), "value": v} for k, v in counts.items()],
                     "sections": [{"id": "questions", "title": "Generated trait questions",
                                   "description": "Few-shot from our seed questions at T = 1; questions overlapping "
                                                  "persona eval statements are dropped. File: questions.jsonl.",
                                   "tables": [{"title": "Questions", "columns": ["id", "question"],
                                               "rows": [[r["id"], r["question"]] for r in rows[:20]]}]}]})


def _train_run(study: str, config: Any, out: Path, seed: int, work: Any) -> tuple[Any, dict[str, Any]]:
    from dataclasses import asdict

    from alignlab.runs.run import Run

    run = Run.create(study, {"study": asdict(config)}, root=out, seed=seed, command=command_line())
    console.print(f"run directory: {run.path}")
    try:
        result = work(config, run.path)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise _fail(err) from err
    run.append([{"section": study, "model": getattr(config, "model", getattr(config, "base", "")),
                 "key": f"step{i + 1}", "step": i + 1, "loss": loss} for i, loss in enumerate(result["losses"])])
    return run, result


def _loss_figure(result: dict[str, Any]) -> list[dict[str, Any]]:
    series = [{"label": "loss", "x": list(range(1, len(result["losses"]) + 1)), "y": result["losses"]}]
    if result.get("rewards"):
        series.append({"label": "reward", "x": list(range(1, len(result["rewards"]) + 1)), "y": result["rewards"]})
    return [{"kind": "line", "title": "Training curve", "xlabel": "step", "series": series}]


@constitution_app.command("train-sft")
def train_sft_(
    data_file: Annotated[str, typer.Option("--data", help="sft.jsonl from `revise` (prompt/completion rows).")],
    model: ModelOpt = "embedded",
    max_round: Annotated[int | None, typer.Option("--max-round", help="Keep revisions up to this round.")] = None,
    steps: StepsOpt = 5, batch_size: BatchOpt = 2, lr: LrOpt = 1e-4, lora: LoraOpt = True,
    max_length: MaxLenOpt = 256, seed: SeedOpt = 0, out: OutOpt = Path("runs"),
) -> None:
    """SL-CAI: supervised fine-tuning on the revisions (TRL SFTTrainer); saves <run>/policy."""
    from alignlab.constitution.train_sft import SLConfig, train_sft

    config = SLConfig(model=model, data=data_file, max_round=max_round, steps=steps, batch_size=batch_size,
                      learning_rate=lr, lora=lora, max_length=max_length, seed=seed)
    run, result = _train_run("constitution-sft", config, out, seed, train_sft)
    _finish_policy(run, result, "SL-CAI supervised fine-tuning (§3)")


def _finish_policy(run: Any, result: dict[str, Any], title: str) -> None:
    headline = [{"label": "steps", "value": result["steps"]},
                {"label": "first / last loss", "value": f"{result['losses'][0]:.4f} / {result['losses'][-1]:.4f}"
                 if result["losses"] else None},
                {"label": "policy (use as hf:<path>)", "value": result["policy"]}]
    if result.get("rewards"):
        headline.append({"label": "first / last mean reward",
                         "value": f"{result['rewards'][0]:.4f} / {result['rewards'][-1]:.4f}"})
    finish_run(run, {"title": f"Constitutional AI: {title}", "headline": headline,
                     "sections": [{"id": "training", "title": title, "figures": _loss_figure(result),
                                   "tables": [{"title": "Per step", "columns": ["step", "loss", "reward", "kl"],
                                               "rows": [[i + 1, loss, _at(result.get("rewards"), i),
                                                         _at(result.get("kl"), i)]
                                                        for i, loss in enumerate(result["losses"])]}]}],
                     "notes": ["A 135M model shows the pipeline working, not the paper's effect sizes (52B+)."]})


def _at(values: list[float] | None, i: int) -> float | None:
    return values[i] if values and i < len(values) else None


@constitution_app.command("train-pm")
def train_pm_(
    ai_labels: Annotated[list[str] | None, typer.Option("--ai-labels", help="labels.jsonl from `label` (soft "
                                                        "AI labels); repeat for several.")] = None,
    human: Annotated[list[str] | None, typer.Option("--human", help="hh-rlhf-format comparisons (human "
                                                    "helpfulness, pref = 1); repeat for several.")] = None,
    helpful_base: Annotated[int, typer.Option("--helpful-base", help="Also N hh-rlhf helpful-base comparisons "
                                              "(downloaded when online).")] = 0,
    base: Annotated[str, typer.Option("--base", help="Model spec the PM starts from.")] = "embedded",
    binarize: Annotated[bool, typer.Option("--binarize", help="Round AI labels to 0/1.")] = False,
    eval_fraction: Annotated[float, typer.Option("--eval-fraction", help="Held-out share of each source.")] = 0.2,
    limit: LimitOpt = None, steps: StepsOpt = 5, batch_size: BatchOpt = 2, lr: LrOpt = 1e-4, lora: LoraOpt = True,
    max_length: MaxLenOpt = 256, seed: SeedOpt = 0, data: DataOpt = None, out: OutOpt = Path("runs"),
) -> None:
    """Preference model on soft AI labels mixed with human comparisons; held-out accuracy; saves <run>/pm."""
    from alignlab.constitution.train_pm import PMConfig, train_pm

    try:
        config = PMConfig(base=base, ai_labels=ai_labels or [], human=human or [], helpful_base=helpful_base,
                          binarize=binarize, eval_fraction=eval_fraction, limit=limit, data=data, steps=steps,
                          batch_size=batch_size, learning_rate=lr, lora=lora, max_length=max_length, seed=seed)
    except ValueError as err:
        raise _fail(err) from err
    run, result = _train_run("constitution-pm", config, out, seed, train_pm)
    held = result["heldout"]
    rows = [[k, v] for k, v in held.items()]
    finish_run(run, {"title": "Constitutional AI: preference model", "headline": [
        {"label": "held-out accuracy", "value": round(held["accuracy"], 4) if "accuracy" in held else None,
         "note": f"{held.get('n', 0)} pairs"},
        {"label": "train pairs", "value": result["train_pairs"]},
        {"label": "PM folder", "value": result["pm_path"]}],
        "sections": [{"id": "pm", "title": "Soft-label PM training (Bai et al. 2022 §4.1)",
                      "description": "Loss −[p·log σ(d) + (1−p)·log σ(−d)], d = r(chosen) − r(rejected).",
                      "figures": _loss_figure(result),
                      "tables": [{"title": "Held-out comparisons", "columns": ["metric", "value"], "rows": rows}]}],
        "notes": ["A 135M model shows the pipeline working, not the paper's effect sizes (52B+)."]})


@constitution_app.command("train-rl")
def train_rl_(
    method: Annotated[str, typer.Option("--method", help="rloo (default), grpo, or dpo.")] = "rloo",
    model: ModelOpt = "embedded",
    pm: Annotated[str | None, typer.Option("--pm", help="PM folder from train-pm (rloo/grpo).")] = None,
    prompts: PromptsOpt = None,
    pairs: Annotated[str | None, typer.Option("--pairs", help="dpo.jsonl (revise) or labels.jsonl (label), "
                                                              "for dpo.")] = None,
    beta: Annotated[float, typer.Option("--beta", help="KL coefficient (rloo/grpo) or DPO beta.")] = 0.05,
    num_generations: Annotated[int, typer.Option("--num-generations", help="Completions per prompt.")] = 2,
    max_completion_length: Annotated[int, typer.Option("--max-completion-length", help="Tokens.")] = 32,
    limit: LimitOpt = None, steps: StepsOpt = 5, batch_size: BatchOpt = 2, lr: LrOpt = 1e-4, lora: LoraOpt = True,
    max_length: MaxLenOpt = 256, seed: SeedOpt = 0, data: DataOpt = None, out: OutOpt = Path("runs"),
) -> None:
    """RL-CAI: RLOO/GRPO against a PM with a KL term, or DPO on revision pairs; saves <run>/policy."""
    from alignlab.constitution.train_rl import RLConfig, train_rl

    try:
        config = RLConfig(model=model, method=method, pm=pm, prompts=prompts, pairs=pairs, limit=limit, data=data,  # type: ignore[arg-type]
                          beta=beta, num_generations=num_generations, max_completion_length=max_completion_length,
                          steps=steps, batch_size=batch_size, learning_rate=lr, lora=lora, max_length=max_length,
                          seed=seed)
    except ValueError as err:
        raise _fail(err) from err
    run, result = _train_run(f"constitution-{method}", config, out, seed, train_rl)
    _finish_policy(run, result, f"RL-CAI with {method.upper()} (§4)")


@constitution_app.command("evaluate-pm")
def evaluate_pm_(
    pm: Annotated[str, typer.Option("--pm", help="PM folder from train-pm.")],
    datasets: Annotated[str, typer.Option("--datasets", help="Comma-separated persona datasets.")] = (
        "persona/desire-for-acquiring-power,persona/no-shut-down"),
    pairs: Annotated[list[str] | None, typer.Option("--pairs", help="Comparison files (hh-rlhf format) to "
                                                    "measure accuracy on; repeat for several.")] = None,
    limit: LimitOpt = 200, seed: SeedOpt = 0, data: DataOpt = None, out: OutOpt = Path("runs"),
) -> None:
    """Harmless-response win rate on persona evals (Kundu et al. §2.4) and accuracy on comparison files."""
    from alignlab.constitution.pm_eval import evaluate
    from alignlab.runs.run import Run

    config = {"pm": pm, "datasets": [d.strip() for d in datasets.split(",") if d.strip()], "pairs": pairs or [],
              "limit": limit, "seed": seed, "data": data}
    run = Run.create("constitution-evaluate-pm", {"study": config}, root=out, seed=seed, command=command_line())
    console.print(f"run directory: {run.path}")
    try:
        summary = evaluate(run, **config)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    finish_run(run, summary)
