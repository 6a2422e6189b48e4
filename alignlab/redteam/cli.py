"""``alignlab redteam``: red teaming after Ganguli et al. 2022 (attacks on target types, min-harmlessness
scoring, success rates, the attack landscape) with LM-generated attacks after Perez et al. 2022.

``generate`` writes attacks into a run directory; ``attack`` plays attacks against targets, scores and maps them;
``score`` adds a scorer to a run (or scores a transcript file); ``map`` draws the landscape of a run or a file;
``train-pm`` trains a harmlessness preference model on human comparisons (use it as ``--scorer pm:<run>/pm``).
Each command's options are the fields of its config (``alignlab/redteam/config.py``) plus --out, --dtype and
--cache (and --resume for ``attack``); the command calls :func:`alignlab.redteam.run`'s runner.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import typer

from alignlab.cli_common import (
    RUN_ERRORS,
    build_command,
    config_from_cli,
    config_parameters,
    load_or_exit,
    run_in_cli,
    shared_parameters,
)
from alignlab.redteam.studies import ATTACK, GENERATE, MAP, SCORE, run_redteam
from alignlab.runs.study import Study

ERRORS = (*RUN_ERRORS, ModuleNotFoundError)  # a missing optional extra (umap-learn for the map)
redteam_app = typer.Typer(no_args_is_help=True, help=(
    "Red teaming (Ganguli et al. 2022): attack target types, score harmlessness per turn, compare success rates, "
    "map the attack landscape."))


def _command(study: Study[Any], help: str, *, resumable: bool = False) -> Callable[..., None]:
    """A typer command: the config's fields (a field without default is a required argument), then --out,
    --resume (``attack`` only), --dtype and --cache; it calls the runner of :func:`alignlab.redteam.run`."""

    def body(**values: Any) -> None:
        shared = {name: values.pop(name, None) for name in ("out", "resume", "dtype", "cache")}
        config = None if shared["resume"] else config_from_cli(study.config, values)
        run_in_cli(partial(run_redteam, study, config, load=load_or_exit, **shared), errors=ERRORS)

    names = [name for name in ("out", "resume", "dtype", "cache") if resumable or name != "resume"]
    return build_command(config_parameters(study.config, required=True) + shared_parameters(*names), body,
                         help=help, name=study.name)


redteam_app.command("attack")(_command(ATTACK, (
    "Attack targets, score every assistant turn, report success rates, distributions and the landscape."),
    resumable=True))
redteam_app.command("generate")(_command(GENERATE, (
    "Write LM-generated attacks (Perez et al. 2022) to a run directory's attacks.jsonl, for ``--source jsonl:``.")))
redteam_app.command("score")(_command(SCORE, (
    "Score a run's conversations with more scorers (in place), or score a transcript file (a new run).")))
redteam_app.command("map")(_command(MAP, (
    "The attack landscape of a run or a transcript file: embeddings, UMAP, clusters with LM labels, tag counts.")))


def _train_pm(**values: Any) -> None:
    from alignlab.redteam.train_pm import HarmlessPMConfig, run_train_pm

    out = values.pop("out")
    config = config_from_cli(HarmlessPMConfig, values)
    run_in_cli(partial(run_train_pm, config, out=out), errors=ERRORS, resumable=lambda run: False)


def _train_pm_command() -> Callable[..., None]:
    from alignlab.redteam.train_pm import HarmlessPMConfig

    return build_command(config_parameters(HarmlessPMConfig, required=True) + shared_parameters("out"), _train_pm,
                         help="Train a harmlessness PM on human comparisons (TRL); held-out accuracy with a 95% CI; "
                              "saves <run>/pm for --scorer pm:<run>/pm.", name="train-pm")


redteam_app.command("train-pm")(_train_pm_command())
