"""The constitution commands as the runner sees them: run-directory name, config class, and the work of one run.

Each ``evaluate(run, model, config, progress) -> summary`` does one command's work into ``run``. ``revise``, ``label``
and ``questions`` get the loaded model; the trainers and ``evaluate-pm`` get ``None`` (the model they start from, or
the PM they score, is a field of their config). The runner modules are imported when a run starts, so importing the
package (and building the CLI) stays light.
"""

from __future__ import annotations

from typing import Any

from alignlab.constitution.config import (
    EvaluatePMConfig,
    LabelConfig,
    PMConfig,
    QuestionsConfig,
    ReviseConfig,
    RLConfig,
    SLConfig,
)
from alignlab.runs.run import Run
from alignlab.runs.study import Progress, Study


def _revise(run: Run, model: Any, config: ReviseConfig, progress: Progress | None) -> dict[str, Any]:
    from alignlab.constitution.revise import run_revisions

    return run_revisions(run, model, config, progress=progress)


def _label(run: Run, model: Any, config: LabelConfig, progress: Progress | None) -> dict[str, Any]:
    from alignlab.constitution.feedback import run_labels

    return run_labels(run, model, config, progress=progress)


def _questions(run: Run, model: Any, config: QuestionsConfig, progress: Progress | None) -> dict[str, Any]:
    from alignlab.constitution.constitutions import load_constitution
    from alignlab.constitution.data import write_jsonl
    from alignlab.constitution.formats import resolve_for_model
    from alignlab.constitution.summaries import questions_summary
    from alignlab.constitution.traits import generate_questions

    const = load_constitution(config.constitution)
    run.record_model(model)
    fmt = resolve_for_model(config.prompt_format, model)
    rows, counts = generate_questions(model, const, config.n, seed=config.seed, data=config.data, fmt=fmt)
    write_jsonl(run.path / "questions.jsonl", rows)
    return {**questions_summary(const.name, rows, counts, model=model.spec), "format": fmt}


def _record_losses(run: Run, model: str, losses: list[float], **series: list[float]) -> None:
    """One sample per optimizer step: ``{"key": "step<i>", "step": i, "loss": ...}`` plus each of ``series``
    (e.g. the RL step's mean reward and KL) logged at that step."""
    section = run.manifest["study"]
    run.append([{"section": section, "model": model, "key": f"step{i + 1}", "step": i + 1, "loss": loss,
                 **{name: values[i] for name, values in series.items() if i < len(values)}}
                for i, loss in enumerate(losses)])


def _train_sft(run: Run, model: Any, config: SLConfig, progress: Progress | None) -> dict[str, Any]:
    from alignlab.constitution.summaries import policy_summary
    from alignlab.constitution.train_sft import train_sft

    outcome = train_sft(config, run.path)
    _record_losses(run, config.model, outcome["losses"])
    return policy_summary(outcome, "SL-CAI supervised fine-tuning (§3)", task="train-sft", model=config.model)


def _train_pm(run: Run, model: Any, config: PMConfig, progress: Progress | None) -> dict[str, Any]:
    from alignlab.constitution.summaries import pm_summary
    from alignlab.constitution.train_pm import train_pm

    outcome = train_pm(config, run.path)
    _record_losses(run, config.base, outcome["losses"])
    return pm_summary(outcome)


def _train_rl(run: Run, model: Any, config: RLConfig, progress: Progress | None) -> dict[str, Any]:
    from alignlab.constitution.summaries import policy_summary
    from alignlab.constitution.train_rl import train_rl

    outcome = train_rl(config, run.path)
    _record_losses(run, config.model, outcome["losses"], reward=outcome["rewards"], kl=outcome["kl"])
    return policy_summary(outcome, f"RL-CAI with {config.method.upper()} (§4)", task=f"train-{config.method}",
                          model=config.model)


def _evaluate_pm(run: Run, model: Any, config: EvaluatePMConfig, progress: Progress | None) -> dict[str, Any]:
    from alignlab.constitution.pm_eval import evaluate

    return evaluate(run, **config.as_dict())


REVISE = Study("constitution-revise", ReviseConfig, _revise,
               title="SL-CAI critique/revision data: revisions.jsonl, sft.jsonl, dpo.jsonl")
LABEL = Study("constitution-label", LabelConfig, _label,
              title="AI feedback: soft labels P(A better) for response pairs (labels.jsonl)")
QUESTIONS = Study("constitution-questions", QuestionsConfig, _questions,
                  title="Trait questions written by the model, kept apart from the persona evals")
SFT = Study("constitution-sft", SLConfig, _train_sft, title="SL-CAI supervised fine-tuning; saves <run>/policy")
PM = Study("constitution-pm", PMConfig, _train_pm, title="Soft-label preference model; saves <run>/pm")
RLOO = Study("constitution-rloo", RLConfig, _train_rl, title="RL-CAI with RLOO against a PM; saves <run>/policy")
GRPO = Study("constitution-grpo", RLConfig, _train_rl, title="RL-CAI with GRPO against a PM; saves <run>/policy")
DPO = Study("constitution-dpo", RLConfig, _train_rl, title="DPO on revision or AI-labelled pairs; saves <run>/policy")
EVALUATE_PM = Study("constitution-evaluate-pm", EvaluatePMConfig, _evaluate_pm,
                    title="PM harmless-response win rate on persona evals; accuracy on comparison files")

STUDIES = (REVISE, LABEL, QUESTIONS, SFT, PM, RLOO, GRPO, DPO, EVALUATE_PM)
WITH_MODEL = (REVISE, LABEL, QUESTIONS)  # take --model; their manifest's config has "model": <spec>
RESUMABLE = (REVISE, LABEL)  # finished steps are skipped on --resume


def study_for(config: Any) -> Study[Any]:
    """The study of a config: by its type (and, for :class:`RLConfig`, its method)."""
    if type(config) is RLConfig:
        return {"rloo": RLOO, "grpo": GRPO, "dpo": DPO}[config.method]
    for study in STUDIES:
        if type(config) is study.config:
            return study
    names = ", ".join(dict.fromkeys(s.config.__name__ for s in STUDIES))
    raise TypeError(f"expected one of {names}, got {type(config).__name__}")


def study_named(name: Any, where: Any = "") -> Study[Any]:
    for study in STUDIES:
        if study.name == name:
            return study
    raise ValueError(f"{where or 'the run'} is a {name!r} run, not one of {', '.join(s.name for s in STUDIES)}")
