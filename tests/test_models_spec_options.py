"""Model options (issue 18 §4): ``<spec>?key=value`` and ``load_model(spec, **options)`` reach ``from_pretrained``;
bad options fail with one line; ``--device`` is a global option; trust_remote_code warns; several openai URLs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from alignlab.cli import app
from alignlab.cli_common import split_specs
from alignlab.models.spec import check_spec, load_model, parse_spec


def test_options_parse_typed_and_round_trip_through_the_spec_string():
    spec = parse_spec("hf:org/model?revision=abc123&device_map=auto&trust_remote_code=yes&max_batch_tokens=2048")
    assert (spec.kind, spec.target) == ("hf", "org/model")
    assert spec.options == {"revision": "abc123", "device_map": "auto", "trust_remote_code": True,
                            "max_batch_tokens": 2048}
    assert parse_spec(str(spec)) == spec
    vllm = parse_spec("vllm:embedded?tensor_parallel_size=4&gpu_memory_utilization=0.5")
    assert (vllm.kind, vllm.target, vllm.options) == ("vllm", "embedded",
                                                      {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.5})
    assert str(parse_spec("embedded")) == "embedded"  # unchanged spec strings keep old runs' manifests equal


@pytest.mark.parametrize("spec, message", [
    ("hf:gpt2?color=red", "unknown option 'color' for hf"),
    ("hf:gpt2?max_batch_tokens=0", "max_batch_tokens='0': expected a positive integer"),
    ("hf:gpt2?trust_remote_code=maybe", "expected true or false"),
    ("hf:gpt2?revision", "option 'revision' needs a value"),
    ("embedded?revision=main", "unknown option 'revision' for embedded"),
    ("vllm:gpt2?gpu_memory_utilization=1.5", "expected a number in (0, 1]"),
    ("vllm:/no/such/folder", "no such folder"),
    ("openai:m@http://a:1/v1,ftp://b/v1", "expected openai:<model>@"),
])
def test_bad_options_raise_one_line_naming_the_option(spec, message):
    with pytest.raises(ValueError) as err:
        check_spec(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_several_openai_urls_stay_one_spec_in_a_models_list():
    text = "embedded,openai:m@http://a:1/v1,http://b:2/v1/,hf:gpt2"
    assert split_specs("embedded", text) == ["embedded", "openai:m@http://a:1/v1,http://b:2/v1/", "hf:gpt2"]
    assert check_spec("openai:m@http://a:1/v1,http://b:2/v1/").base_urls == ("http://a:1/v1", "http://b:2/v1")


def test_spec_and_keyword_options_reach_from_pretrained(tiny_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    seen: list[dict] = []
    original = AutoModelForCausalLM.from_pretrained

    def spy(path, **kwargs):
        seen.append(kwargs)
        return original(path, **{k: v for k, v in kwargs.items() if k != "device_map"})

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    model = load_model(f"hf:{tiny_dir}?attn_implementation=eager&max_batch_tokens=77", cache=False,
                       revision="main", device="cpu")
    assert seen[-1]["attn_implementation"] == "eager" and seen[-1]["revision"] == "main"
    assert seen[-1]["trust_remote_code"] is False and "device_map" not in seen[-1]
    assert model.backend.max_batch_tokens == 77 and model.backend.model.config._attn_implementation == "eager"
    assert model.spec == f"hf:{tiny_dir}?attn_implementation=eager&max_batch_tokens=77"
    plain = load_model(f"hf:{tiny_dir}?device_map=cpu", cache=False)
    assert seen[-1]["device_map"] == "cpu"
    # a kernel asked for by name keys its own cache entries; without one the fingerprint (and old cache) is unchanged
    assert model.fingerprint["attn_implementation"] == "eager" and "attn_implementation" not in plain.fingerprint
    assert model.fingerprint_id != plain.fingerprint_id
    assert model.describe()["attn_implementation"] == "eager"
    with pytest.raises(ValueError, match="option max_batch_tokens=-3: expected a positive integer"):
        load_model(f"hf:{tiny_dir}", cache=False, max_batch_tokens=-3)
    with pytest.raises(ValueError, match="does not apply to hf models"):
        load_model(f"hf:{tiny_dir}", cache=False, tensor_parallel_size=2)


def test_trust_remote_code_is_off_by_default_and_warns_when_asked(tiny_dir):
    with pytest.warns(UserWarning, match="trust_remote_code=True: loading .* runs Python code"):
        model = load_model(f"hf:{tiny_dir}?trust_remote_code=1", cache=False, device="cpu")
    assert model.backend.model is not None


def test_device_is_a_global_option_and_reaches_the_model(tiny_dir, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_DEVICE", "cpu")  # restored after the test: --device writes the variable
    assert str(next(load_model(f"hf:{tiny_dir}", cache=False).backend.model.parameters()).device) == "cpu"
    result = CliRunner().invoke(app, ["--device", "nonsense-device", "serve", f"hf:{tiny_dir}"])
    assert result.exit_code == 2 and "nonsense-device" in result.output


def test_vllm_spec_without_vllm_installed_names_the_venv_script():
    pytest.importorskip("transformers")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed in this environment")
    from alignlab.models.types import ModelError

    with pytest.raises(ModelError, match="benchmarks/vllm_venv.py"):
        load_model("vllm:embedded", cache=False)
