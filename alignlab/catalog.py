"""What ``alignlab list`` shows of every study beside its commands (those come from the CLI itself): the paper it
reproduces and the datasets it reads (with where each resolves)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One study: its CLI name, the paper it reproduces, and its datasets (paths relative to a data root, as
    ``--data`` / ``$ALIGNLAB_DATA`` / the user cache hold them)."""

    study: str
    paper: str
    datasets: tuple[str, ...]
    note: str = ""


CATALOG = (
    Entry("bigbench", "Srivastava et al. 2022",
          ("bigbench/hhh_alignment", "bigbench/known_unknowns", "bigbench/simple_ethical_questions",
           "bigbench/moral_permissibility", "bigbench/<any JSON task>"),
          "any JSON task of google/BIG-bench by name, or a task folder"),
    Entry("behaviors", "Perez et al. 2022",
          ("evals/persona", "evals/advanced-ai-risk", "evals/sycophancy", "evals/winogenerated"),
          "anthropics/evals folders, or any .jsonl in their format"),
    Entry("honesty", "Kadavath et al. 2022",
          ("bigbench/date_understanding", "bigbench/logical_deduction", "triviaqa"),
          "calibration also takes MMLU/ARC/TruthfulQA-style .jsonl; ptrue/pik also generate arithmetic"),
    Entry("fairness", "Ganguli et al. 2023",
          ("BBQ/data", "winogender-schemas/data", "discrim-eval/explicit", "discrim-eval/implicit"),
          "BBQ rows are generated from BBQ's templates when BBQ/data is absent"),
    Entry("reasoning", "Lanham et al. 2023; Radhakrishnan et al. 2023",
          ("bigbench/strategyqa", "bigbench/logical_deduction"),
          "also any multiple-choice .jsonl, or generated addition"),
    Entry("redteam", "Ganguli et al. 2022",
          ("hh-rlhf/harmless-base", "hh-rlhf/red-team-attempts"), ""),
    Entry("constitution", "Bai et al. 2022; Kundu et al. 2023",
          ("hh-rlhf/harmless-base", "hh-rlhf/helpful-base", "evals/persona"), ""),
    Entry("influence", "Grosse et al. 2023", (),
          "your training sequences (.jsonl or .txt)"),
    Entry("loop", "Ganguli et al. 2022; Bai et al. 2022; Grosse et al. 2023", ("hh-rlhf/harmless-base",),
          "attack -> Constitutional AI -> re-audit -> influence, one resumable run"),
)
