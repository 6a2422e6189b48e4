"""Reading JSONL (plain or gzipped) with errors that name the file and line: one reader for every loader.

Every line is read as bytes, at most :data:`MAX_LINE_BYTES` of them (10 MiB; ``$ALIGNLAB_MAX_LINE_BYTES``
overrides it), and decoded as UTF-8, so a huge line or a file in another encoding is one :class:`DataError`
naming the file and the line instead of a memory blow-up or a bare ``'utf-8' codec can't decode`` message.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from alignlab.data.errors import DataError, MissingFileError

MAX_LINE_BYTES = 10 * 1024 * 1024  # the longest line any loader reads; a longer one is an error, not a slurp
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def max_line_bytes() -> int:
    """The line cap: ``$ALIGNLAB_MAX_LINE_BYTES`` when set to a positive integer, else :data:`MAX_LINE_BYTES`."""
    value = os.environ.get("ALIGNLAB_MAX_LINE_BYTES", "")
    return int(value) if value.isdigit() and int(value) > 0 else MAX_LINE_BYTES


def decode(raw: bytes, path: str | Path, line: int | None = None) -> str:
    """``raw`` as UTF-8 text; other bytes raise DataError naming the file, the line and the byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if line is None:  # a whole file: find the line of the bad byte
            line = raw.count(b"\n", 0, err.start) + 1
            column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        else:
            column = err.start + 1
        byte = raw[err.start:err.start + 1].hex()
        raise DataError(f"not UTF-8 text (byte 0x{byte} at column {column}: {err.reason}); save the file as "
                        "UTF-8", path=path, line=line) from None


def open_binary(path: str | Path) -> IO[bytes]:
    """``path`` opened for reading bytes (through gzip when its name ends in ``.gz``); a missing file or a folder
    raises DataError naming it (:class:`MissingFileError` is also a ``FileNotFoundError``)."""
    path = Path(path)
    if path.is_dir():
        raise DataError("is a folder, not a file", path=path)
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115 - the caller closes
    except FileNotFoundError:
        raise MissingFileError("no such file", path=path) from None


def read_text(path: str | Path) -> str:
    """A whole file (a JSON document, a CSV, YAML) as UTF-8 text; a bad byte raises DataError with its line."""
    with open_binary(path) as stream:
        try:
            raw = stream.read()
        except _GZIP_ERRORS as err:
            raise DataError(f"not a valid gzip file ({err or type(err).__name__})", path=path) from None
    return decode(raw, path).removeprefix("\ufeff")


def read_raw_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of every line of a file (gzipped when its name ends in ``.gz``), without the line
    break. A line longer than :func:`max_line_bytes` and a broken gzip stream raise DataError naming the file and
    the line; the file is never read whole."""
    path = Path(path)
    cap = max_line_bytes()
    number = 0
    try:
        with open_binary(path) as lines:
            while raw := lines.readline(cap + 1):
                number += 1
                if len(raw) > cap and not (len(raw) == cap + 1 and raw.endswith(b"\n")):
                    raise DataError(f"line longer than {cap:,} bytes (the cap of every JSONL reader; set "
                                    "ALIGNLAB_MAX_LINE_BYTES to raise it)", path=path, line=number)
                yield number, raw.removesuffix(b"\n").removesuffix(b"\r")
    except _GZIP_ERRORS as err:
        raise DataError(f"not a valid gzip file ({err or type(err).__name__})", path=path,
                        line=number + 1 if number else None) from None


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line, as :func:`read_raw_lines` reads them, decoded as UTF-8 (a leading
    byte-order mark dropped); bytes that are not UTF-8 raise DataError naming the file, the line and the column."""
    for number, raw in read_raw_lines(path):
        text = decode(raw, path, number)
        yield number, text.removeprefix("\ufeff") if number == 1 else text


def first_byte(path: str | Path) -> bytes:
    """The first byte of a file that is not white space (``b""`` when there is none): ``b"["`` starts a JSON array
    file, ``b"{"`` JSONL. Reads no further than that byte."""
    path = Path(path)
    try:
        with open_binary(path) as stream:
            while chunk := stream.read(65536):
                if stripped := chunk.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip():
                    return stripped[:1]
    except _GZIP_ERRORS as err:
        raise DataError(f"not a valid gzip file ({err or type(err).__name__})", path=path) from None
    return b""


def json_object(line: str, path: str | Path, number: int) -> dict[str, Any]:
    """One JSONL line as an object; bad JSON or a non-object raises DataError naming the file and line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON ({err.msg} at column {err.colno})", path=path, line=number) from err
    except RecursionError:
        raise DataError("invalid JSON (nested too deeply)", path=path, line=number) from None
    if not isinstance(row, dict):
        raise DataError(f"expected a JSON object, got {type(row).__name__}", path=path, line=number)
    return row


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a ``.jsonl`` or ``.jsonl.gz`` file."""
    path = Path(path)
    for number, line in read_lines(path):
        if line.strip():
            yield number, json_object(line, path, number)
