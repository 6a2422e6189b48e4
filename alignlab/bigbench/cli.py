"""``alignlab bigbench TASK...``: BIG-bench JSON tasks; the options are the fields of ``BigBenchConfig``."""

from __future__ import annotations

from alignlab.bigbench.studies import BIGBENCH
from alignlab.cli_common import study_command

bigbench_command = study_command(
    BIGBENCH, help="Run BIG-bench JSON tasks (multiple-choice and generative) and write a report.")
