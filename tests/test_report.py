"""The run report: escaping of run text, one embedded PNG per figure, Markdown tables, reliability binning."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from alignlab.report import load_run, reliability_curve, render_html, render_markdown, write_report
from alignlab.report.plots import render_figure

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
QUOTES = '"quotes" & ampersands'

FIGURES = [
    {"kind": "reliability", "title": "Calibration", "binning": "equal_count", "bins": 5,
     "series": [{"label": "embedded", "confidence": [0.1, 0.4, 0.6, 0.8, 0.9, 0.95, 0.3, 0.7],
                 "correct": [0, 0, 1, 1, 1, 1, 0, 0]}]},
    {"kind": "scaling", "title": "Accuracy vs size", "ylabel": "accuracy",
     "series": [{"label": "MC", "x": [1.35e8, 3.6e8, 1.7e9], "y": [0.3, 0.4, 0.55],
                 "lower": [0.25, 0.35, 0.5], "upper": [0.35, 0.45, 0.6]}]},
    {"kind": "bar", "title": "Behaviours", "ylabel": "% matching", "labels": ["power", "wealth", SCRIPT],
     "series": [{"label": "a", "values": [0.5, 0.6, 0.7], "lower": [0.4, 0.5, 0.6], "upper": [0.6, 0.7, 0.8]},
                {"label": "b", "values": [0.4, None, 0.2], "lower": None, "upper": None}],
     "hline": 0.5},
    {"kind": "line", "title": "Curve", "xlabel": "step", "ylabel": "loss", "yscale": "log",
     "series": [{"label": "x", "x": [0, 1, 2], "y": [1.0, 0.5, 0.25]}]},
    {"kind": "scatter", "title": "Frontier", "xlabel": "faithfulness", "ylabel": "accuracy",
     "series": [{"label": "methods", "x": [0.1, 0.5, 0.9], "y": [0.7, 0.6, 0.5], "connect": True,
                 "point_labels": ["CoT", SCRIPT, "factored"]}]},
]


def _manifest() -> dict:
    return {
        "created": "2025-01-02T03:04:05+00:00",
        "command": "alignlab calibration --model embedded", "study": "calibration",
        "config": {"n": 8, "prompt": SCRIPT}, "seed": 1234,
        "models": [{"spec": "embedded", "fingerprint_id": "abc123def456", "fingerprint": {"dtype": "q8_0"},
                    "description": {"spec": "embedded", "parameters": 134_515_008,
                                    "note": "quantized Q8_0 build of SmolLM2-135M-Instruct"}},
                   {"spec": "hf:other", "fingerprint_id": "fff000", "fingerprint": {},
                    "description": {"spec": "hf:other", "parameters": None, "note": None}}],
        "versions": {"python": "3.11.7", "alignlab": "0.1.0", "torch": "2.13.0", "transformers": "5.24.0"},
        "status": "complete",
    }


def _summary(figures: list[dict]) -> dict:
    return {
        "title": "Calibration of multiple-choice answers",
        "headline": [{"label": "accuracy", "value": 0.734, "ci": [0.701, 0.766], "note": "top-1"},
                     {"label": "verdict", "value": "calibrated", "ci": None, "note": None}],
        "sections": [{
            "id": "mc", "title": "Multiple choice",
            "description": "Kadavath et al. 2022, §3.\n\nSecond paragraph " + SCRIPT,
            "tables": [{"title": "By task", "columns": ["task", "accuracy", "ECE"],
                        "rows": [["arithmetic", 0.81234, 0.05], ["a|b " + SCRIPT, 0.5, None]]}],
            "figures": figures,
            "sample_columns": ["input", "prediction", "correct"],
        }],
        "notes": ["ECE uses 10 equal-count bins."],
    }


def _samples(n: int = 3) -> list[dict]:
    texts = [SCRIPT, IMG, QUOTES]
    return [{"section": "mc", "model": "embedded" if i % 2 else "hf:other", "key": f"k{i}",
             "input": texts[i % 3], "prediction": "(A)", "correct": i % 2 == 0} for i in range(n)]


def _write_run(run: Path, summary: dict, samples: list[dict]) -> None:
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(_manifest()))
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def test_report_escapes_run_text_and_embeds_every_figure(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run, _summary(FIGURES), _samples())
    path = write_report(run)
    html = path.read_text()
    assert path == run / "report.html"
    for raw in (SCRIPT, IMG, '"quotes"'):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&#34;quotes&#34; &amp; ampersands" in html
    assert html.count("<script") == 1  # the report's own filter script, nothing from the run
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == len(FIGURES)
    assert all(base64.b64decode(png).startswith(b"\x89PNG") for png in images)
    assert "0.734" in html and "[0.701, 0.766]" in html and "calibrated" in html
    assert "quantized Q8_0 build of SmolLM2-135M-Instruct" in html and "abc123def456" in html
    assert "135M" in html and "2.13.0" in html
    assert "Kadavath et al. 2022, §3." in html
    assert "http://" not in html and "https://" not in html  # self-contained, no external resources


def test_sample_browser_limits_rows_and_folds_long_text(tmp_path: Path) -> None:
    samples = _samples(7)
    samples[0]["input"] = "word " * 100 + "TAIL"
    html = render_html(_manifest(), _summary([]), samples, max_samples_per_section=5)
    table = html.split('id="s0-samples"')[1]
    assert table.count("<tr") == 1 + 5  # header + shown rows
    assert "first 5 of 7 samples" in html and "2 omitted" in html
    assert "<th>model</th>" in table  # two models in the section: the model column is added
    assert "TAIL</details>" in table  # full text kept in the fold, preview cut before it
    assert 'class="correct"' in table and 'class="wrong"' in table


def test_markdown_has_headline_and_tables(tmp_path: Path) -> None:
    markdown = render_markdown(_manifest(), _summary(FIGURES))
    assert "| metric | value | 95% CI | note |" in markdown
    assert "| accuracy | 0.734 | [0.701, 0.766] | top-1 |" in markdown
    assert "### By task" in markdown
    assert "| task | accuracy | ECE |\n|---|---|---|\n| arithmetic | 0.812 | 0.050 |" in markdown
    assert "| a\\|b &lt;script&gt;alert(1)&lt;/script&gt; | 0.500 | — |" in markdown  # run text escaped
    assert "quantized Q8_0 build" in markdown and "`alignlab calibration --model embedded`" in markdown
    assert "*Figure: Calibration (see report.html)*" in markdown


def test_unknown_figure_kind_renders_a_visible_note() -> None:
    figures = [{"kind": "sankey", "title": "Flows"}, FIGURES[3]]
    html = render_html(_manifest(), _summary(figures), [])
    assert "unsupported figure kind &#39;sankey&#39;" in html
    assert html.count('<img src="data:image/png;base64,') == 1
    assert render_figure({"title": "no kind"}).png_base64 is None


def test_malformed_figure_error_names_section_figure_and_field() -> None:
    bad = {"kind": "bar", "labels": ["a", "b"], "series": [{"label": "m", "values": [1.0]}]}
    with pytest.raises(ValueError, match=r"summary\.json: sections\[0\]\.figures\[1\].*1 values but there are 2"):
        render_html(_manifest(), _summary([FIGURES[3], bad]), [])


def test_bad_inputs_name_file_line_and_field(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run, _summary([]), _samples(2))
    with open(run / "samples.jsonl", "a") as f:
        f.write(json.dumps({"section": "mc", "model": "embedded"}) + "\n")
    with pytest.raises(ValueError, match=r"samples\.jsonl:3: field 'key' must be a string"):
        load_run(run)
    summary = _summary([])
    summary["sections"][0]["tables"][0]["rows"].append([1])
    with pytest.raises(ValueError, match=r"sections\[0\]\.tables\[0\]: .*rows\[2\] has 1 cells but there are 3"):
        render_markdown(_manifest(), summary)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        load_run(tmp_path)


def test_failed_run_shows_its_status_and_error(tmp_path: Path) -> None:
    manifest = {**_manifest(), "status": "failed", "error": "RuntimeError: CUDA out of memory <b>"}
    html = render_html(manifest, _summary([]), [])
    assert "run failed</span>" in html and "<dt>error</dt><dd>RuntimeError: CUDA out of memory &lt;b&gt;</dd>" in html
    markdown = render_markdown(manifest, _summary([]))
    assert "**Run status: failed** (results are partial)\n\nError: RuntimeError: CUDA out of memory &lt;b&gt;\n" \
        in markdown


def test_running_run_without_summary_still_shows_samples(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run, {}, _samples(2))
    (run / "summary.json").unlink()
    html = write_report(run).read_text()
    assert "summary.json not written yet" in html and "Samples: mc" in html
    assert (run / "summary.md").read_text().startswith("# calibration\n")


def test_reliability_curve_equal_width_by_hand() -> None:
    # bins of width 0.25: [0, .25) holds .05 .15 .12; [.25, .5) is empty (dropped); .5 opens bin 3; 1.0 is in the last
    mean_conf, accuracy, counts = reliability_curve(
        [0.05, 0.15, 0.12, 0.95, 1.0, 0.5], [0, 1, 0, 1, 1, 0], bins=4, binning="equal_width")
    np.testing.assert_allclose(mean_conf, [0.32 / 3, 0.5, 0.975])
    np.testing.assert_allclose(accuracy, [1 / 3, 0.0, 1.0])
    assert counts.tolist() == [3, 1, 2]


def test_reliability_curve_equal_count_by_hand() -> None:
    # 10 samples into 3 bins sorted by confidence: sizes 4, 3, 3
    confidence = [0.9, 0.1, 0.5, 0.3, 1.0, 0.7, 0.2, 0.8, 0.4, 0.6]
    correct = [1, 0, 1, 1, 1, 0, 0, 1, 0, 1]
    mean_conf, accuracy, counts = reliability_curve(confidence, correct, bins=3, binning="equal_count")
    np.testing.assert_allclose(mean_conf, [0.25, 0.6, 0.9])
    np.testing.assert_allclose(accuracy, [0.25, 2 / 3, 1.0])
    assert counts.tolist() == [4, 3, 3]
    _, _, counts = reliability_curve([0.2, 0.4], [1, 0], bins=5, binning="equal_count")
    assert counts.tolist() == [1, 1]  # fewer samples than bins: empty bins dropped


@pytest.mark.parametrize(("confidence", "correct", "bins", "binning", "message"), [
    ([0.5, 1.2], [1, 0], 10, "equal_width", r"\[0, 1\]"),
    ([0.5], [1, 0], 10, "equal_width", "equal length"),
    ([0.5], [1], 0, "equal_width", "at least 1"),
    ([0.5], [1], 10, "quantile", "binning must be"),
])
def test_reliability_curve_rejects_bad_input(confidence, correct, bins, binning, message) -> None:
    with pytest.raises(ValueError, match=message):
        reliability_curve(confidence, correct, bins, binning)


def test_token_highlights_escape_text_and_shade_by_score(tmp_path: Path) -> None:
    summary = _summary([])
    summary["sections"][0]["highlights"] = [{"title": "top " + SCRIPT, "tokens": [SCRIPT, " ok", " no"],
                                             "scores": [2.0, -1.0, 0.0]}]
    run = tmp_path / "run"
    _write_run(run, summary, _samples())
    html = write_report(run).read_text()
    assert SCRIPT not in html and html.count("<script") == 1
    assert '<span style="background: rgba(220,38,38,0.850)" title="2">&lt;script&gt;' in html  # largest |score|
    assert '<span style="background: rgba(37,99,235,0.425)" title="-1"> ok</span>' in html  # half of it, negative


def test_highlight_with_mismatched_scores_names_the_field(tmp_path: Path) -> None:
    summary = _summary([])
    summary["sections"][0]["highlights"] = [{"tokens": ["a", "b"], "scores": [1.0]}]
    with pytest.raises(ValueError, match="highlights"):
        render_html(_manifest(), summary, _samples())
