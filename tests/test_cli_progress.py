"""Progress reporting when stderr is not a terminal: plain lines, throttled, with the final count."""

from __future__ import annotations

import io

from rich.console import Console

from alignlab import cli_common


def test_progress_lines_are_throttled_and_report_completion(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(cli_common, "console", Console(file=out, force_terminal=False, width=200))
    clock = iter([0.0, 10.0, 31.0, 40.0, 75.0])
    monkeypatch.setattr(cli_common.time, "monotonic", lambda: next(clock))
    with cli_common.progress_bars(log_every_s=30.0) as update:
        update("covariances", 1, 4)   # t=0: first call, nothing yet
        update("covariances", 2, 4)   # t=10: within 30 s
        update("covariances", 3, 4)   # t=31: a line with the ETA from 31 s for 3 of 4
        update("covariances", 3, 4)   # t=40: within 30 s of the last line
        update("covariances", 4, 4)   # t=75: done, always printed
    assert out.getvalue().splitlines() == ["covariances: 3/4 (31 s, eta 10 s)", "covariances: 4/4 (75 s)"]
