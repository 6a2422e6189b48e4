"""Errors raised by the dataset loaders: each names the file and the place in it."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A dataset file is malformed; the message names the file, the line or example, and the field."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        example: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = Path(path) if path is not None else None
        self.line = line
        self.example = example
        self.field = field
        where = [str(self.path)] if self.path is not None else []
        if line is not None:
            where.append(f"line {line}")
        if example is not None:
            where.append(f"example {example}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


class MissingFileError(DataError, FileNotFoundError):
    """An input file that does not exist: a DataError (one line naming it) that callers catching
    ``FileNotFoundError`` still catch."""


class DownloadError(OSError):
    """A download failed; the message names the URL and the cause."""


def nothing_usable(rejected: list[str] | tuple[str, ...], *, path: str | Path | None = None,
                   what: str = "row") -> DataError:
    """The error of an input whose every ``what`` was rejected (``rejected``: one message per rejected one, each
    naming its file, line and field): the first rejection, then the count. A run raises it rather than finish
    with nothing evaluated."""
    where = f" of {path}" if path is not None else ""
    first = rejected[0] if rejected else "no usable data"
    return DataError(f"{first} (every {what}{where} was rejected: {len(rejected)} of {len(rejected)}; nothing to "
                     "evaluate)")
