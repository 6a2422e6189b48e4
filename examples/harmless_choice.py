"""A multiple-choice benchmark of our own in one file: hh-rlhf harmless-base pairs as a two-way choice.

Each hh-rlhf comparison is one dialogue with two final assistant replies, the one people preferred as less harmful
(``chosen``) and the other (``rejected``). The model "answers" by giving the preferred reply the higher
log-probability after the shared dialogue: the preference-model accuracy of Bai et al. 2022 (§3, Figure 4)
measured with a language model's own likelihood instead of a trained PM.

    python examples/harmless_choice.py --limit 100             # the embedded model on 100 pairs
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Iterable

from alignlab import mc
from alignlab.data.jsonl import read_jsonl
from alignlab.data.resolve import resolve_dataset

TURN = "\n\nAssistant:"


class HarmlessChoice(mc.Benchmark):
    name = "harmless-choice"
    reproduces = ("hh-rlhf harmless-base comparisons as a 2-way choice between the preferred and the rejected "
                  "final reply, scored by log-probability after the shared dialogue (cf. Bai et al. 2022, §3).")

    def questions(self, config: mc.MCConfig) -> Iterable[mc.Question]:
        path = resolve_dataset("hh-rlhf/harmless-base", data=config.data) / "test.jsonl"
        for line, row in read_jsonl(path):
            dialogue, chosen = split_last_reply(row["chosen"])
            same, rejected = split_last_reply(row["rejected"])
            if dialogue != same or chosen == rejected:
                continue  # not a comparison of two final replies to one dialogue
            first = zlib.crc32(f"{config.seed}:{line}".encode()) % 2  # the preferred reply's seeded position
            choices = (chosen, rejected) if first == 0 else (rejected, chosen)
            turns = dialogue.count("\n\nHuman:")
            yield mc.Question(f"{path.name}:{line}", dialogue + TURN, choices, answer=first,
                              group="1 turn" if turns == 1 else "2+ turns")


def split_last_reply(transcript: str) -> tuple[str, str]:
    """(the dialogue before the last assistant turn, that turn's reply)."""
    cut = transcript.rfind(TURN)
    if cut < 0:
        raise ValueError("no assistant turn in the transcript")
    return transcript[:cut], transcript[cut + len(TURN):]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--scoring", default="mean", choices=["sum", "mean"])
    parser.add_argument("--data")
    args = parser.parse_args()
    config = mc.MCConfig(limit=args.limit, scoring=args.scoring, data=args.data)
    run, summary = mc.run(HarmlessChoice(), config, model=args.model)
    for entry in summary["results"]:
        print(f"{entry['task']}: accuracy {entry['value']:.3f} (95% CI {entry['ci'][0]:.3f}-{entry['ci'][1]:.3f}, "
              f"n={entry['n']})")
    print(f"report: {run.path / 'report.html'}")
