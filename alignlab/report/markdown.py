"""``summary.md``: the run's headline and every section's tables as Markdown, for a README or a PR.

Every piece of run text (titles, labels, table cells, notes, model and dataset text) is escaped by
:func:`escape_text` or fenced by :func:`code`, so a renderer with raw HTML enabled (markdown-it with
``html=True``, many viewers) shows it as text: no HTML tag, entity, link, image or template tag from a run
survives, whatever flavour of Markdown renders it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from alignlab.report.html import format_ci, format_parameters, format_value, parse_manifest, parse_summary

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}  # entities work in every Markdown flavour
# emphasis, strikethrough, code spans, links and images, all backslash-escapable; an underscore inside a word
# (snake_case) never starts emphasis in CommonMark or Python-Markdown, so it stays as written
_PUNCTUATION = re.compile(r"([\\`*~\[\]]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_TEMPLATE_OPEN = re.compile(r"\{(?=[{%#])")  # {{ }}, {% %}, {# #}: inert for Jinja/Liquid-processing viewers
_BLOCK_START = re.compile(r"([#+-])|(\d+)([.)])")  # a heading, list item or thematic break at a line start
_CLOSING_HASHES = re.compile(r"(^|\s)(#+)$")  # would close an ATX heading and vanish


class Literal(str):
    """Markdown this module wrote from numbers only (a CI such as ``[0.1, 0.2]``): :func:`escape_text` keeps it."""


def escape_text(value: Any, *, cell: bool = False, block: bool = False) -> str:
    """Run text as one line of inline Markdown that renders as exactly that text (whitespace runs collapsed).
    ``cell``: also escape ``|`` so the text stays one table cell. ``block``: the text starts a line, a list item
    or a heading, so a leading ``#``, ``-``, ``+`` or ``1.`` and a trailing `` #`` are text, not structure."""
    if isinstance(value, Literal):
        return value
    text = " ".join(format_value(value).split())
    text = "".join(_HTML.get(c, c) for c in text)
    text = _PUNCTUATION.sub(r"\\\1", _TEMPLATE_OPEN.sub("&#123;", text))
    if cell:
        text = text.replace("|", "\\|")
    if block:
        text = _CLOSING_HASHES.sub(r"\1\\\2", text)
        start = _BLOCK_START.match(text)
        if start:
            text = "\\" + text if start.group(1) else f"{start.group(2)}\\{text[start.end(2):]}"
    return text


def code(value: Any) -> str:
    """Run text as a code span (literal in every renderer) on one line; the fence is longer than any run of
    backticks inside, and padded so a backtick at either end stays text. Text with a template tag (``{{``) is
    escaped instead: a code span cannot hide it from a viewer that runs Jinja/Liquid first."""
    text = " ".join(str(value).split())
    if _TEMPLATE_OPEN.search(text):
        return escape_text(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if "`" in text else f"{fence}{text}{fence}"


def markdown_table(columns: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(escape_text(c, cell=True) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(escape_text(v, cell=True) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(manifest: dict[str, Any], summary: dict[str, Any]) -> str:
    """Title, run metadata and versions, headline table, then per section its description, tables and figure
    titles."""
    run = parse_manifest(manifest)
    parsed = parse_summary(summary)
    out = [f"# {escape_text(parsed.title, block=True)}", ""]
    if run.status != "complete":
        out += [f"**Run status: {escape_text(run.status)}** (results are partial)", ""]
    if run.error:
        out += [f"Error: {escape_text(run.error)}", ""]
    for name, value in (("study", escape_text(run.study)), ("command", code(run.command) if run.command else ""),
                        ("created", escape_text(run.created)), ("seed", "" if run.seed is None else str(run.seed)),
                        ("alignlab", escape_text(run.alignlab_version))):
        if value:
            out.append(f"- {name}: {value}")
    if run.versions:
        out.append("- versions: " + ", ".join(escape_text(f"{name} {format_value(version)}")
                                              for name, version in sorted(run.versions.items())))
    for resume, changed in zip(run.resumed, run.resume_changes(), strict=True):
        what = "versions changed: " + ", ".join(escape_text(c) for c in changed) if changed else "same versions"
        command = f" ({code(resume.command)})" if resume.command else ""
        out.append(f"- resumed {escape_text(resume.at or '—')}{command}: {what}")
    for m in run.models:
        details = [f"fingerprint {code(m.fingerprint_id)}" if m.fingerprint_id else "",
                   escape_text(f"{format_parameters(m.description['parameters'])} parameters")
                   if m.description.get("parameters") else "",
                   escape_text(m.description.get("note") or "")]
        out.append(f"- model {code(m.spec)}" + "".join(f"; {d}" for d in details if d))
    if parsed.headline:
        rows = [[h.label, h.value, Literal(format_ci(h.ci)), h.note or ""] for h in parsed.headline]
        out += ["", "## Headline", "", markdown_table(["metric", "value", "95% CI", "note"], rows)]
    for section in parsed.sections:
        out += ["", f"## {escape_text(section.title, block=True)}"]
        for paragraph in section.description.split("\n\n"):
            if paragraph.strip():
                out += ["", escape_text(paragraph, block=True)]
        for table in section.tables:
            if table.title:
                out += ["", f"### {escape_text(table.title, block=True)}"]
            out += ["", markdown_table(table.columns, table.rows)]
        for figure in section.figures:
            name = escape_text(figure.get("title") or figure.get("kind") or "untitled")
            out += ["", f"*Figure: {name} (see report.html)*"]
    if parsed.notes:
        out += ["", "## Notes", ""] + [f"- {escape_text(note, block=True)}" for note in parsed.notes]
    return "\n".join(out) + "\n"
