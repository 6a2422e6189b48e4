"""Open-question loaders: seeded arithmetic, TriviaQA-style JSONL, source material, answer grading."""

from __future__ import annotations

import json

import pytest

from alignlab.data.errors import DataError
from alignlab.honesty.questions import (
    OpenQuestion,
    first_integer,
    generate_arithmetic,
    is_correct,
    load_open_jsonl,
    load_open_task,
    load_source_material,
    normalize_answer,
    parse_arithmetic_spec,
)


def test_arithmetic_is_seeded_and_its_answers_are_right():
    items = generate_arithmetic(30, seed=3, ops=("add", "sub", "mul"), digits=2)
    assert items == generate_arithmetic(30, seed=3, ops=("add", "sub", "mul"), digits=2)
    assert items != generate_arithmetic(30, seed=4, ops=("add", "sub", "mul"), digits=2)
    for item in items:
        a, op, b = item.question.removeprefix("What is ").removesuffix("?").split()
        assert 10 <= int(a) <= 99 and 10 <= int(b) <= 99
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert item.answers == (str(expected),) and item.checker == "integer"
    assert len({i.id for i in items}) == 30


def test_arithmetic_specs_parse_and_bad_ones_are_refused():
    assert parse_arithmetic_spec("arithmetic") == (("add", "sub", "mul"), 2)
    assert parse_arithmetic_spec("arithmetic:mul:3") == (("mul",), 3)
    assert parse_arithmetic_spec("arithmetic:add+sub") == (("add", "sub"), 2)
    with pytest.raises(ValueError, match="digits"):
        parse_arithmetic_spec("arithmetic:add:x")
    with pytest.raises(ValueError, match="unknown arithmetic"):
        load_open_task("arithmetic:div:2", n=3)
    assert len(load_open_task("arithmetic:add:1", n=7, seed=1)) == 7


def test_grading_normalises_aliases_and_reads_the_first_integer():
    item = OpenQuestion("q", "Who?", ("The Beatles", "Beatles"))
    assert is_correct("the beatles.", item) and is_correct("  Beatles ", item)
    assert not is_correct("The Rolling Stones", item) and not is_correct("", item)
    assert normalize_answer("An  Apple, please!") == "apple please"
    number = OpenQuestion("n", "What is 7 - 9?", ("-2",), checker="integer")
    assert is_correct("-2, I think", number) and not is_correct("2", number) and not is_correct("none", number)
    assert first_integer("about 1,024 items") == 1024


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_triviaqa_jsonl_loads_and_a_seeded_subset_is_stable(tmp_path):
    path = write_jsonl(tmp_path / "tq.jsonl", [{"id": f"t{i}", "question": f"Q{i}?", "answers": [f"A{i}", "alt"]}
                                               for i in range(10)] + [{"question": "Last?", "answers": "yes"}])
    items = load_open_jsonl(path)
    assert len(items) == 11 and items[0].answers == ("A0", "alt") and items[-1].id == "tq-11"
    assert items[-1].answers == ("yes",)
    subset = load_open_task(str(path), n=4, seed=2)
    assert subset == load_open_task(str(path), n=4, seed=2) and len(subset) == 4


@pytest.mark.parametrize(("line", "field"), [
    ('{"question": "Q?", "answers": []}', "answers"),
    ('{"answers": ["a"]}', "question"),
    ('{"question": "Q?", "answers": ["a"], "id": 3}', "id"),
    ('{"question": "Q?", "answers": ["a"], "background": 5}', "background"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, line, field):
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"question": "ok?", "answers": ["a"]}', line])
    with pytest.raises(DataError, match=rf"bad.jsonl, line 2, field '{field}'"):
        load_open_jsonl(path)


def test_invalid_json_and_duplicate_ids_are_reported(tmp_path):
    with pytest.raises(DataError, match="line 1: invalid JSON"):
        load_open_jsonl(write_jsonl(tmp_path / "a.jsonl", ["{oops"]))
    dup = {"id": "x", "question": "Q?", "answers": ["a"]}
    with pytest.raises(DataError, match="line 2, field 'id': duplicate"):
        load_open_jsonl(write_jsonl(tmp_path / "b.jsonl", [dup, dup]))


def test_source_material_requires_a_background_passage(tmp_path):
    good = {"question": "Who wrote it?", "answers": ["Ann"], "background": "Ann wrote the book in 1901."}
    items = load_source_material(write_jsonl(tmp_path / "s.jsonl", [good]))
    assert items[0].background == good["background"]
    with pytest.raises(DataError, match="line 2, field 'background'"):
        load_source_material(write_jsonl(tmp_path / "t.jsonl", [good, {"question": "Q?", "answers": ["a"]}]))


def test_an_unknown_task_name_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="not arithmetic"):
        load_open_task("no/such/file.jsonl")


def test_a_jsonl_line_may_ask_for_the_integer_checker(tmp_path):
    path = write_jsonl(tmp_path / "n.jsonl", [{"question": "How many?", "answers": ["12"], "checker": "integer"},
                                              {"question": "Who?", "answers": ["Ann"]}])
    items = load_open_jsonl(path)
    assert [i.checker for i in items] == ["integer", "alias"] and is_correct("12 of them", items[0])
    with pytest.raises(DataError, match="line 1, field 'checker'"):
        load_open_jsonl(write_jsonl(tmp_path / "c.jsonl", [{"question": "Q?", "answers": ["a"], "checker": "x"}]))
