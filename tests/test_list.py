"""``alignlab list``: every study's commands come from the CLI itself, and each dataset says where it resolves."""

from __future__ import annotations

from typer.testing import CliRunner

from alignlab.catalog import CATALOG
from alignlab.cli import app, commands
from alignlab.data.resolve import locate_dataset


def test_every_study_in_the_catalog_has_its_registered_commands():
    assert commands("fairness") == ["fairness bbq", "fairness winogender", "fairness discrimination"]
    assert commands("bigbench") == ["bigbench"] and commands("no-such-study") == []
    assert all(commands(entry.study) for entry in CATALOG)


def test_datasets_resolve_without_downloading(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNLAB_DATA", str(shared_data))
    monkeypatch.setenv("ALIGNLAB_CACHE", str(tmp_path / "cache"))
    assert locate_dataset("bigbench/hhh_alignment") == (shared_data / "bigbench" / "hhh_alignment", "$ALIGNLAB_DATA")
    assert locate_dataset("no/such/dataset") == (None, "download on first use")
    assert locate_dataset("hhh_alignment", data=shared_data / "bigbench") == (
        shared_data / "bigbench" / "hhh_alignment", "--data")
    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "alignlab constitution questions" in result.output
    assert not (tmp_path / "cache" / "data").exists()  # nothing was downloaded
