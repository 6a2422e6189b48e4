"""Reports are inert: run text (model outputs, dataset questions and answers, labels, notes, specs) never becomes a
live tag, attribute, link, image or template expression in ``report.html`` or in ``summary.md`` as a renderer
with raw HTML enabled shows it; the versions a manifest records show in both; every template autoescapes."""

from __future__ import annotations

import ast
import json
import re
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

import alignlab
from alignlab.report import render_html, render_markdown, write_report
from alignlab.report.html import _ENVIRONMENT, _FILTER_SCRIPT
from alignlab.report.markdown import code, escape_text
from alignlab.runs.run import Run

PAYLOADS = [
    "<script>alert(1)</script>",
    "</script><script>alert(2)</script>",
    "{{7*7}}",
    "{% if 1 %}x{% endif %}",
    "<img src=x onerror=alert(3)>",
    "[x](javascript:alert(4))",
    "![x](http://evil/x.png)",
    "<a href='javascript:alert(5)'>y</a>",
    "<javascript:alert(6)>",
    "<http://evil/autolink>",
    "&lt;script&gt;alert(7)&lt;/script&gt;",
    "*a* _b_ `c` ``d`` \\ | # 1. - > ~~e~~",
]
EVIL = " ".join(PAYLOADS)  # one line of every payload: each text field gets all of them
BREAKOUT = "line one\n\n<script>alert(8)</script>\n\n[ref]: javascript:alert(9)\n# heading\n- item"


def _manifest(text: str) -> dict:
    return {
        "study": "mc " + text, "created": text, "command": "alignlab mc " + text, "seed": 7, "status": text,
        "error": text,
        "config": {"path": text},
        "models": [{"spec": "hf:" + text, "fingerprint_id": text, "fingerprint": {"tokenizer": text},
                    "description": {"spec": text, "parameters": text, "note": text, "device": text}}],
        "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.25.0", text: text},
        "resumed": [{"at": text, "command": text, "versions": {"torch": text}}],
    }


def _summary(text: str) -> dict:
    return {
        "title": text,
        "headline": [{"label": text, "value": text, "ci": [0.1, 0.2], "note": text}],
        "sections": [{
            "id": "mc", "title": text, "description": text + "\n\n" + BREAKOUT,
            "tables": [{"title": text, "columns": [text, "n"], "rows": [[text, 1], [BREAKOUT, {"k": text}]]}],
            "figures": [{"kind": "bar", "title": text, "labels": [text], "series": [{"label": text, "values": [0.5]}]},
                        {"kind": text, "title": text}],
            "highlights": [{"title": text, "tokens": [text], "scores": [1.0]}],
            "sample_columns": ["question", "answer", "output", "conversation"],
        }],
        "notes": [text, BREAKOUT],
    }


def _samples(text: str) -> list[dict]:
    return [{"section": "mc", "model": "hf:" + text, "key": "k0", "question": text, "answer": BREAKOUT,
             "output": text, "conversation": [{"role": "user", "content": text}], "correct": True},
            {"section": "other " + text, "model": text, "key": "k1", "question": "x" * 300 + text}]


class _Elements(HTMLParser):
    """Every start tag with its attributes, the text of each <script>, and all text (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def _parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def _markdown_to_html(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)


def test_markdown_renderer_with_html_enabled_shows_run_text_as_text(tmp_path: Path) -> None:
    markdown = render_markdown(_manifest(EVIL), _summary(EVIL))
    assert "{{" not in markdown and "{%" not in markdown  # nothing for a Jinja/Liquid-processing viewer to run
    parsed = _parse(_markdown_to_html(markdown))
    allowed = {"h1", "h2", "h3", "p", "ul", "li", "strong", "em", "code", "table", "thead", "tbody", "tr", "th", "td"}
    assert {tag for tag, _ in parsed.tags} <= allowed  # no script, img, a, ...: only the structure we wrote
    assert [attrs for _, attrs in parsed.tags if attrs] == []  # no onerror=, href=, src=, style=
    assert parsed.scripts == []
    text = "".join(parsed.text)
    # every field renders as exactly its text, each payload shown literally: a round trip, not a deletion
    assert text.count(EVIL) >= 15  # title, status, study, created, headline x3, section, table, figures, notes...
    for field in ("Run status: ", "Error: ", "study: mc ", "created: ", "resumed "):
        assert field + EVIL in text
    assert "torch 2.13.0+cpu" in text and "transformers 5.25.0" in text
    assert "line one <script>alert(8)</script> [ref]: javascript:alert(9) # heading - item" in text  # one line


def test_markdown_structure_stays_ours() -> None:
    html = _markdown_to_html(render_markdown(_manifest(BREAKOUT), _summary(BREAKOUT)))
    # a newline in run text never starts a block: the only headings are the title and ours
    assert re.findall(r"<h([123])>", html) == ["1", "2", "2", "3", "2"]  # title, Headline, section, table, Notes
    assert "<ul>" in html and html.count("<table>") == 2


@pytest.mark.parametrize("text", PAYLOADS + [BREAKOUT, "1. x", "2025) y", "-0.5", "#tag", "+1", "---", "x #", "#",
                                  "snake_case_name", "0.1.0"])
def test_escape_text_and_code_round_trip_through_a_renderer(text: str) -> None:
    expected = " ".join(text.split())
    for markdown in (escape_text(text, block=True), "- " + escape_text(text, block=True), "## " +
                     escape_text(text, block=True), "see " + escape_text(text), code(text), "- " + code(text)):
        parsed = _parse(MarkdownIt("commonmark", {"html": True}).render(markdown))
        assert {tag for tag, _ in parsed.tags} <= {"p", "code", "ul", "li", "h2"}, markdown
        blocks = [tag for tag, _ in parsed.tags if tag != "code"]
        assert len(blocks) <= 2 and len(parsed.tags) - len(blocks) <= 1, markdown  # one block, never a nested one
        assert "".join(parsed.text).strip().removeprefix("see ") == expected
    assert escape_text("0.1.0") == "0.1.0" and escape_text("snake_case") == "snake_case"  # readable as written
    row = f"| {escape_text(text, cell=True)} | z |\n"
    cells = re.findall(r"<td>(.*?)</td>", _markdown_to_html("| a | b |\n|---|---|\n" + row))
    assert len(cells) == 2  # a "|" in the text never adds a cell
    parsed = _parse(cells[0])
    assert {tag for tag, _ in parsed.tags} <= {"code"} and "".join(parsed.text) == expected


def test_html_report_has_no_live_injected_tag(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(_manifest(EVIL)))
    (run / "summary.json").write_text(json.dumps(_summary(EVIL)))
    (run / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in _samples(EVIL)))
    html = write_report(run).read_text()
    parsed = _parse(html)
    assert parsed.scripts == [_FILTER_SCRIPT]  # the report's own script, nothing else
    names = {"charset", "name", "content", "http-equiv", "lang", "class", "id", "href", "src", "alt", "style",
             "title", "type", "placeholder", "aria-label", "data-table", "data-counter"}
    for tag, attrs in parsed.tags:
        assert set(attrs) <= names, (tag, attrs)  # no onerror=, onload=, formaction=, ...
        assert re.fullmatch(r"#s\d+", attrs.get("href", "#s0") or "")  # only the table of contents links
        assert (attrs.get("src", "data:image/png;base64,") or "").startswith("data:image/png;base64,")
        assert re.fullmatch(r"background: rgba\([\d,]+,[\d.]+\)", attrs.get("style", "background: rgba(0,0)") or "")
        assert re.fullmatch(r"(s\d+(-samples|-count)?)?", attrs.get("id", "") or "")
    assert {tag for tag, _ in parsed.tags} <= {
        "html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "h3", "span", "dl", "dt",
        "dd", "code", "table", "thead", "tbody", "tr", "th", "td", "details", "summary", "pre", "div", "section",
        "ul", "li", "nav", "a", "p", "figure", "img", "input", "script"}
    text = "".join(parsed.text)
    assert text.count(EVIL) >= 15  # shown as text, verbatim
    assert "{{7*7}}" in text
    assert "default-src 'none'" in html  # and a CSP that would block anything that slipped through
    markdown = (run / "summary.md").read_text()
    assert "<script" not in markdown and "<img" not in markdown
    assert not re.search(r"(?<!\\)\]\(", markdown)  # no unescaped "](": no Markdown link or image


def test_report_shows_the_versions_its_manifest_records(tmp_path: Path) -> None:
    with Run.create("mc", {"path": "q.jsonl"}, root=tmp_path, seed=3, command="alignlab mc q.jsonl") as run:
        pass
    (run.path / "summary.json").write_text(json.dumps({"title": "MC"}))
    manifest = json.loads((run.path / "manifest.json").read_text())
    torch, transformers = metadata.version("torch"), metadata.version("transformers")
    assert manifest["versions"]["torch"] == torch and manifest["versions"]["transformers"] == transformers
    # a later resume on another torch: recorded per resume by Run.resume, shown as a change
    manifest["resumed"] = [{"at": "2026-01-01T00:00:00+00:00", "command": "alignlab mc --resume R",
                            "versions": {**manifest["versions"], "torch": "9.9.9"}},
                           {"at": "2026-01-02T00:00:00+00:00", "command": "again",
                            "versions": {**manifest["versions"], "torch": "9.9.9"}}]
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    html = write_report(run.path).read_text()
    markdown = (run.path / "summary.md").read_text()
    text = "".join(_parse(html).text)
    assert f"package versions: python {manifest['versions']['python']}, torch {torch}, transformers " \
           f"{transformers}" in text
    assert f"torch{torch}" in text and f"transformers{transformers}" in text  # the full table: name, version
    assert f"alignlab{alignlab.__version__}" in text  # the alignlab row comes from versions too
    assert f"versions changed: torch {torch} → 9.9.9" in text and "same package versions" in text
    assert f"- alignlab: {alignlab.__version__}\n" in markdown
    versions_line = next(line for line in markdown.splitlines() if line.startswith("- versions: "))
    assert f"torch {torch}," in versions_line and f"transformers {transformers}," in versions_line
    assert "- resumed 2026-01-01T00:00:00+00:00 (`alignlab mc --resume R`): versions changed: torch " in markdown
    assert "- resumed 2026-01-02T00:00:00+00:00 (`again`): same versions" in markdown


def test_every_template_autoescapes_and_nothing_is_marked_safe() -> None:
    report = Path(alignlab.__file__).parent / "report"
    names = _ENVIRONMENT.list_templates()
    assert names  # the loader finds the templates folder
    for name in names:
        assert _ENVIRONMENT.autoescape is True or _ENVIRONMENT.autoescape(name), name
        source = (report / "templates" / name).read_text()
        assert not re.search(r"\|\s*safe\b|autoescape\s+false|\bMarkup\b", source), name
    # the only Markup in the package wraps the report's own script constant
    calls = [(path, node) for path in Path(alignlab.__file__).parent.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)]
    named = [(path, getattr(node.func, "id", getattr(node.func, "attr", "")), node) for path, node in calls]
    assert [ast.unparse(node.args[0]) for _, name, node in named if name == "Markup"] == ["_FILTER_SCRIPT"]
    # every jinja2 environment or template built in the package autoescapes
    for path, name, node in named:
        if name in ("Environment", "Template", "SandboxedEnvironment"):
            flags = {k.arg: k.value for k in node.keywords}
            assert isinstance(flags.get("autoescape"), ast.Constant) and flags["autoescape"].value is True, path
    # and it does escape when rendering: the same payload through the real template stays text
    html = render_html({"config": {}}, {"title": "</title><script>alert(1)</script>"}, [])
    assert "<title>&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; · alignlab</title>" in html
