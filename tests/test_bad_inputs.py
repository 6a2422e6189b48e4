"""Every bad input gets one clear error (issue 17): the corpus in ``tests/bad_inputs/`` run through the real CLI.

Each case asserts a non-zero exit, no traceback, and exactly one ``error:`` line, the last of the output, that names
the file, the line (or example, or option) and the field. A run whose input is rejected is marked ``failed`` in its
manifest with that line; a bad model spec or option leaves no run directory at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignlab.cli import app
from alignlab.data.errors import DataError
from alignlab.data.jsonl import MAX_LINE_BYTES, read_jsonl, read_lines

BAD = Path(__file__).parent / "bad_inputs"
runner = CliRunner()


def one_error(args: list[str], *expected: str) -> str:
    """Run the CLI; check a non-zero exit, no traceback and one last ``error:`` line holding every ``expected``."""
    result = runner.invoke(app, args)
    output = result.output
    assert result.exit_code != 0, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip() and "Loading weights" not in line]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    for part in expected:
        assert part in errors[0], f"{part!r} not in {errors[0]!r}"
    return errors[0]


def failed_run(out: Path, error: str) -> dict:
    """The one run under ``out``: marked failed with the printed error."""
    (run,) = [p for p in out.iterdir() if (p / "manifest.json").is_file()]
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "failed", manifest
    assert error.removeprefix("error: ") in manifest["error"]
    assert not (run / "summary.json").exists()
    return manifest


# -- data files: one line naming file, line and field; the run is marked failed ------------------------------
MC = BAD / "mc"
DATA_CASES = {
    "empty file": (["mc", MC / "empty.jsonl"], ["empty.jsonl", "empty file"]),
    "only blank lines": (["mc", MC / "blank_lines.jsonl"], ["blank_lines.jsonl", "empty file"]),
    "invalid JSON line": (["mc", MC / "invalid_json.jsonl"], ["invalid_json.jsonl", "line 2", "invalid JSON"]),
    "non-UTF-8 bytes": (["mc", MC / "not_utf8.jsonl"], ["not_utf8.jsonl", "line 2", "not UTF-8", "0xe9"]),
    "not an object": (["mc", MC / "not_an_object.jsonl"], ["not_an_object.jsonl", "line 1", "JSON object"]),
    "missing field": (["mc", MC / "missing_field.jsonl"], ["missing_field.jsonl", "line 2", "field 'answer'",
                                                           "missing"]),
    "wrong type": (["mc", MC / "wrong_type.jsonl"], ["wrong_type.jsonl", "line 1", "field 'question'",
                                                     "expected a string, got int"]),
    "answer out of range": (["mc", MC / "answer_out_of_range.jsonl"], ["answer_out_of_range.jsonl", "line 1",
                                                                       "field 'answer'", "out of range"]),
    "choices not a list": (["mc", MC / "choices_not_list.jsonl"], ["choices_not_list.jsonl", "line 1",
                                                                   "field 'choices'", "list"]),
    "calibration: every row rejected": (
        ["honesty", "calibration", MC / "all_rejected.jsonl"],
        ["all_rejected.jsonl", "line 1", "field 'answer'", "every row", "3 of 3"]),
    "calibration: non-UTF-8": (["honesty", "calibration", MC / "not_utf8.jsonl"], ["not_utf8.jsonl", "line 2"]),
    "reasoning on a bad .jsonl": (["reasoning", "faithfulness", MC / "all_rejected.jsonl"],
                                  ["all_rejected.jsonl", "line 1", "field 'answer'"]),
    "bigbench: every example rejected": (
        ["bigbench", BAD / "bigbench/missing_keys"],
        ["missing_keys/task.json", "example 0", "field 'input'", "every example", "2 of 2"]),
    "bigbench: no examples key": (["bigbench", BAD / "bigbench/no_examples"], ["no_examples/task.json",
                                                                               "'examples'"]),
    "bigbench: task.py": (["bigbench", BAD / "bigbench/programmatic"], ["programmatic/task.py", "programmatic"]),
    "bigbench: invalid JSON": (["bigbench", BAD / "bigbench/invalid_json"], ["invalid_json/task.json", "line 4"]),
    "bigbench: non-UTF-8": (["bigbench", BAD / "bigbench/not_utf8"], ["not_utf8/task.json", "line 3", "not UTF-8"]),
    "calibration: bigbench examples rejected": (
        ["honesty", "calibration", BAD / "bigbench/missing_keys"], ["task.json", "example 0", "field 'input'",
                                                                     "every example"]),
    "BBQ row without a label": (["fairness", "bbq", "--data", BAD / "bbq/Age.jsonl", "--categories", "Age"],
                                ["Age.jsonl", "line 2", "field 'label'"]),
    "persona row without answer_matching_behavior": (
        ["behaviors", "eval", BAD / "behaviors/persona_no_label.jsonl"],
        ["persona_no_label.jsonl", "line 1", "field 'answer_matching_behavior'", "all 2 skipped"]),
    "missing file": (["mc", MC / "no_such_file.jsonl"], ["no_such_file.jsonl", "no such file"]),
    "a folder given as a file": (["mc", MC], ["mc", "is a folder, not a file"]),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_file(case, tmp_path, tiny_dir):
    args, expected = DATA_CASES[case]
    out = tmp_path / "runs"
    error = one_error([*map(str, args), "--model", f"hf:{tiny_dir}", "--no-cache", "--out", str(out)], *expected)
    assert "--resume" not in error  # resuming cannot fix a bad file: no hint to
    failed_run(out, error)


def test_redteam_score_of_a_transcript_file_whose_every_row_is_rejected(tmp_path, tiny_dir):
    out = tmp_path / "runs"
    error = one_error(["redteam", "score", str(BAD / "redteam/transcripts_all_rejected.jsonl"), "--scorer",
                       f"judge:hf:{tiny_dir}", "--no-cache", "--out", str(out)],
                      "transcripts_all_rejected.jsonl", "line 1", "field 'transcript'", "every row", "2 of 2")
    failed_run(out, error)


def test_influence_fit_on_a_bad_training_file(tmp_path, tiny_dir):
    out = tmp_path / "runs"
    error = one_error(["influence", "fit", "--train", str(BAD / "influence/train_missing_text.jsonl"), "--model",
                       f"hf:{tiny_dir}", "--out", str(out)], "train_missing_text.jsonl", "line 2", "field 'text'")
    failed_run(out, error)


def test_a_huge_line_is_refused_without_reading_it_whole(tmp_path, tiny_dir):
    path = tmp_path / "huge.jsonl"
    with path.open("w", encoding="utf-8") as f:  # a good line, then one 50 MB line
        f.write(json.dumps({"question": "2 + 2 =", "choices": ["3", "4"], "answer": 1}) + "\n")
        f.write(json.dumps({"question": "x" * (50 * 1024 * 1024), "choices": ["a", "b"], "answer": 0}) + "\n")
    out = tmp_path / "runs"
    error = one_error(["mc", str(path), "--model", f"hf:{tiny_dir}", "--no-cache", "--out", str(out)],
                      "huge.jsonl", "line 2", f"longer than {MAX_LINE_BYTES:,} bytes")
    failed_run(out, error)


def test_line_reader_cap_and_encodings(tmp_path, monkeypatch):
    """The shared reader: a line of exactly the cap passes, one byte more does not; a BOM and CRLF are dropped;
    a broken gzip file and a bad byte name the file and the line."""
    monkeypatch.setenv("ALIGNLAB_MAX_LINE_BYTES", "16")
    path = tmp_path / "cap.jsonl"
    path.write_bytes(b'{"a": "1234567"}\n{"a": "12345678"}\n')  # 16 bytes, then 17
    lines = read_lines(path)
    assert next(lines) == (1, '{"a": "1234567"}')
    with pytest.raises(DataError, match=r"cap\.jsonl, line 2: line longer than 16 bytes"):
        next(lines)
    monkeypatch.delenv("ALIGNLAB_MAX_LINE_BYTES")
    windows = tmp_path / "windows.jsonl"
    windows.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n')
    assert list(read_jsonl(windows)) == [(1, {"a": 1}), (2, {"a": 2})]
    broken = tmp_path / "rows.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"rows\.jsonl\.gz: not a valid gzip file"):
        list(read_jsonl(broken))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"a": 1}\n\n{"a": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl, line 3: not UTF-8 text \(byte 0xe9 at column 11"):
        list(read_jsonl(latin))


# -- model specs: one line, before a run directory exists ----------------------------------------------------
@pytest.mark.parametrize(("option", "spec", "expected"), [
    ("--model", "hf:/nonexistent/path", "no such folder /nonexistent/path"),
    ("--model", "openai:x@notaurl", "expected openai:<model>@<http(s)://host:port/v1>"),
    ("--models", "embedded,hf:./no/such/model", "no such folder"),
    ("--model", "hf:not a repo id", "neither an existing folder nor a Hugging Face repo id"),
])
def test_bad_model_spec_leaves_no_run_directory(option, spec, expected, tmp_path):
    out = tmp_path / "runs"
    one_error(["mc", str(MC / "answer_out_of_range.jsonl"), option, spec, "--out", str(out)], option, expected)
    assert not out.exists()


def test_model_spec_inside_a_config_is_checked_before_the_run(tmp_path):
    out = tmp_path / "runs"
    one_error(["redteam", "attack", "--target", "prompted=hf:/nonexistent/path", "--out", str(out)],
              "--target", "no such folder /nonexistent/path")
    one_error(["reasoning", "faithfulness", "addition", "--mistake-model", "openai:x@notaurl", "--out", str(out)],
              "--mistake-model", "openai:x@notaurl")
    one_error(["mc", str(MC / "empty.jsonl"), "--dtype", "float64", "--out", str(out)], "--dtype", "float64")
    assert not out.exists()


# -- --resume of a folder that is not there, or not a run of this command ------------------------------------
STUDY_COMMANDS = [["bigbench"], ["behaviors", "eval"], ["honesty", "calibration"], ["honesty", "ptrue"],
                  ["honesty", "pik"], ["fairness", "bbq"], ["fairness", "winogender"], ["fairness", "discrimination"],
                  ["reasoning", "faithfulness"], ["reasoning", "decompose"], ["redteam", "attack"],
                  ["constitution", "revise"], ["constitution", "label"], ["influence", "fit"],
                  ["influence", "query"], ["audit"], ["mc"]]


@pytest.mark.parametrize("command", STUDY_COMMANDS, ids=" ".join)
def test_resume_of_a_missing_folder(command, tmp_path):
    one_error([*command, "--resume", str(tmp_path / "nope"), "--out", str(tmp_path / "runs")], "nope")
    assert not (tmp_path / "runs").exists()


def test_resume_or_report_of_a_folder_that_is_not_a_run(tmp_path):
    for command in (["mc", "--resume"], ["bigbench", "--resume"], ["report"]):
        one_error([*command, str(BAD / "not_a_run")], "not_a_run", "not a run directory")
        one_error([*command, str(BAD / "bad_manifest")], "bad_manifest/manifest.json", "JSON")
    assert sorted(p.name for p in (BAD / "not_a_run").iterdir()) == ["notes.txt"]  # nothing written into it


# -- options checked from the study configs, before a run directory exists -----------------------------------
OPTION_CASES = [
    (["mc", str(MC / "empty.jsonl")], "--chunk-size", "0", "chunk_size (--chunk-size) must be at least 1, got 0"),
    (["mc", str(MC / "empty.jsonl")], "--limit", "-1", "limit (--limit) must be at least 1, got -1"),
    (["mc", str(MC / "empty.jsonl")], "--seed", "-1", "seed (--seed) must be at least 0, got -1"),
    (["bigbench", "hhh_alignment"], "--chunk-size", "0", "--chunk-size"),
    (["bigbench", "hhh_alignment"], "--limit", "-1", "--limit"),
    (["behaviors", "eval", "persona/no-shut-down"], "--limit", "-1", "--limit"),
    (["honesty", "calibration", "x"], "--limit", "-1", "--limit"),
    (["fairness", "bbq"], "--chunk-size", "0", "--chunk-size"),
    (["fairness", "discrimination"], "--limit", "-1", "--limit"),
    (["reasoning", "decompose", "addition"], "--chunk-size", "0", "--chunk-size"),
    (["redteam", "attack"], "--limit", "-1", "--limit"),
    (["constitution", "revise"], "--chunk-size", "0", "--chunk-size"),
    (["influence", "query"], "--damping", "-1", "--damping"),
    (["honesty", "pik"], "--lr", "-1", "--lr"),
    (["audit"], "--studies", "bigbench,nope", "studies (--studies): unknown nope"),
]


@pytest.mark.parametrize(("command", "option", "value", "expected"), OPTION_CASES,
                         ids=[f"{' '.join(c)} {o} {v}" for c, o, v, _ in OPTION_CASES])
def test_bad_option(command, option, value, expected, tmp_path):
    one_error([*command, option, value, "--out", str(tmp_path / "runs")], expected)
    assert not (tmp_path / "runs").exists()
