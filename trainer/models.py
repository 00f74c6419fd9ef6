"""Which model to train: a Hub id, a local folder, a `.gguf` file, or `tiny`.

`resolve_model(spec)` turns what the user typed into a `ModelSource`: a path or id that
`from_pretrained` loads, and the *Hub id* the adapter will name as its base (`base_model_name_or_path`),
never a local path. `load_model(source)` loads tokenizer and model for training or evaluation.

- A Hub id (`Qwen/Qwen3-4B-Thinking-2507`, the default) loads as is.
- A local folder loads as is; the base id comes from `--base-model-id`, else from a `base_model_id.txt` the
  folder may hold (written by the GGUF conversion), else the adapter cannot be pushed with a real base id.
- A `.gguf` file is converted once into a normal fp32 checkpoint in the cache (the trainers refuse a
  model still marked GGUF-quantized), keyed by the file's content hash.
- `tiny` is a tiny Qwen3-architecture model (hidden 64, 2 layers) with a byte-level BPE tokenizer trained
  locally and a Qwen3-style thinking chat template, built offline in about a second with fixed seeds (the same
  weights every time). It exists for smoke tests and CI: **it learns nothing useful**.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "Qwen/Qwen3-4B-Thinking-2507"
TINY = "tiny"
TINY_VERSION = "2"
BASE_ID_FILE = "base_model_id.txt"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelError(Exception):
    """A user mistake about the model (missing file, unknown id offline, ...); its message is one sentence."""


@dataclass(frozen=True)
class ModelSource:
    spec: str  # what the user typed
    kind: str  # "hub" | "folder" | "gguf" | "tiny"
    path: str  # what from_pretrained loads (a Hub id or a folder)
    base_model_id: str | None  # the Hub id the adapter names as its base; None when unknown

    @property
    def is_tiny(self) -> bool:
        return self.kind == TINY


def cache_dir() -> Path:
    """Where converted and built models live: `$EWM_CACHE`, else `$HF_HOME/execution-world-model`."""
    if os.environ.get("EWM_CACHE"):
        return Path(os.environ["EWM_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "execution-world-model"


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.match(text)) and not text.startswith(("/", ".")) and text.count("/") <= 1


def resolve_model(spec: str | None, base_model_id: str | None = None) -> ModelSource:
    """What to load for `spec`, converting or building it first where needed."""
    spec = (spec or DEFAULT_MODEL).strip()
    if spec == TINY:
        return ModelSource(spec, TINY, str(build_tiny_model()), base_model_id or TINY)
    path = Path(spec).expanduser()
    if spec.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"GGUF file {spec} does not exist.")
        folder = convert_gguf(path)
        return ModelSource(spec, "gguf", str(folder), base_model_id or _read_base_id(folder))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{spec} is a folder but holds no config.json, so it is not a model checkpoint.")
        return ModelSource(spec, "folder", str(path), base_model_id or _read_base_id(path))
    if path.exists():
        raise ModelError(
            f"{spec} is a file but not a .gguf file; pass a Hub id, a model folder, a .gguf file or 'tiny'."
        )
    if not looks_like_hub_id(spec):
        raise ModelError(f"{spec} is neither an existing folder or .gguf file nor a Hub model id.")
    return ModelSource(spec, "hub", spec, base_model_id or spec)


def _read_base_id(folder: Path) -> str | None:
    marker = Path(folder) / BASE_ID_FILE
    if marker.is_file():
        text = marker.read_text().strip()
        return text or None
    return None


def load_tokenizer(source: ModelSource | str):
    """The tokenizer alone (no weights): enough to read the chat template and count tokens."""
    from transformers import AutoTokenizer

    if isinstance(source, str):
        source = resolve_model(source)
    try:
        return AutoTokenizer.from_pretrained(source.path, padding_side="left")
    except OSError as exc:
        raise ModelError(f"could not load model {source.spec!r}: {_first_line(exc)}") from exc


def load_model(source: ModelSource | str, *, dtype=None, device: str | None = None):
    """Load (tokenizer, model) for `source`; left padding for batched generation. `dtype` defaults to bf16 on a
    GPU that supports it, else fp32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(source, str):
        source = resolve_model(source)
    if dtype is None:
        dtype = default_dtype()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=dtype)
    except OSError as exc:
        raise ModelError(f"could not load model {source.spec!r}: {_first_line(exc)}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    return tokenizer, model


def free_gpu_memory() -> None:
    """Give the GPU memory of models just deleted back to the card before the next stage measures what is free:
    a trainer holds reference cycles (and, with vLLM colocated, its engine), which only a collection frees."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def default_dtype():
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def thinking_template(tokenizer) -> bool:
    """True when the chat template's generation prompt opens a `<think>` block (Qwen3-Thinking), so completions
    start inside the thinking."""
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
        )
    except Exception:
        return False
    return text.rstrip().endswith("<think>")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------------------
# GGUF: converted once into a normal checkpoint


def convert_gguf(path: Path) -> Path:
    """Convert a `.gguf` file into an fp32 checkpoint folder in the cache (once per file content)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    digest = _sha256(path)[:16]
    folder = cache_dir() / "gguf" / f"{path.stem}-{digest}"
    if (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except Exception as exc:  # the gguf reader raises many kinds of errors for unsupported files
        raise ModelError(f"could not read GGUF file {path}: {_first_line(exc)}") from exc
    # A model still marked as GGUF-quantized is refused by the trainers: it is de-quantized fp32 now.
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None and hasattr(config, "quantization_config"):
            try:
                delattr(config, "quantization_config")
            except AttributeError:
                config.quantization_config = None
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            try:
                setattr(model, attr, None)
            except Exception:
                pass
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    base_id = _gguf_base_id(path)
    if base_id:
        (tmp / BASE_ID_FILE).write_text(base_id + "\n")
    (tmp / "converted_from.json").write_text(json.dumps({"gguf": str(path), "sha256_prefix": digest}) + "\n")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _gguf_base_id(path: Path) -> str | None:
    """The Hub id a GGUF file says it was made from (`general.base_model.0.repo_url` or similar), if any."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        fields = {}
        for name, field_ in reader.fields.items():
            if name.startswith("general.") and field_.types and field_.types[0].name == "STRING":
                fields[name] = bytes(field_.parts[field_.data[0]]).decode("utf-8", "replace")
    except Exception:
        return None
    for key in ("general.base_model.0.repo_url", "general.repo_url", "general.source.url", "general.url"):
        url = fields.get(key, "")
        match = re.search(r"huggingface\.co/([\w.-]+/[\w.-]+)", url)
        if match:
            return match.group(1)
    org, name = fields.get("general.base_model.0.organization"), fields.get("general.base_model.0.name")
    if org and name:
        candidate = f"{org}/{name}".replace(" ", "-")
        if looks_like_hub_id(candidate):
            return candidate
    return None


# ---------------------------------------------------------------------------------------------------------
# tiny: a Qwen3-architecture model built offline for smoke tests

# The conversation: an assistant turn renders as `<think>\n{reasoning}\n</think>\n\n{answer}` (Qwen3's way).
_TINY_TURNS = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- set content = message['content'] %}{%- set reasoning = '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning + '\\n</think>\\n\\n' + content + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
)
# Like Qwen3-Thinking's: the generation prompt opens the thinking (ending in `<think>\n`), and is a prefix of
# prompt + answer, as SFT needs.
TINY_CHAT_TEMPLATE = _TINY_TURNS + (
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
)
# Like Qwen3's hybrid models: thinking by default (the model opens <think> itself); `enable_thinking=False`
# pre-fills an empty thinking block.
TINY_HYBRID_TEMPLATE = _TINY_TURNS + (
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}"
)
# No thinking at all (like most instruct models).
TINY_PLAIN_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
TINY_TEMPLATES = {"thinking": TINY_CHAT_TEMPLATE, "hybrid": TINY_HYBRID_TEMPLATE, "none": TINY_PLAIN_TEMPLATE}
TINY_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_ADDED = ["<think>", "</think>", "<execution_trace>", "</execution_trace>"]


def _tiny_corpus() -> list[str]:
    from dataset_builder.trace import INSTRUCTIONS, Step, format_trace

    programs = [
        "x = 10\ny = 20\nz = 30\n",
        "items = [3, 1, 2]\nitems.sort()\ntotal = sum(items)\nprint(total)\n",
        "def f(n):\n    return n * 2\nr = f(4)\nfor i in range(3):\n    r += i\n",
        "d = {'a': 1, 'b': 2}\nfor k, v in d.items():\n    print(k, v)\ns = 'hello, world'\n",
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    msg = str(e)\nwhile x > 0:\n    x -= 1\n",
    ]
    steps = [
        Step(1, state=(("x", "10"),)),
        Step(2, state=(("x", "10"), ("y", "[1, 2, 3]"))),
        Step(3, "call", "f", 1, (("n", "4"),)),
        Step(4, "line", "f", 1, (("n", "4"), ("s", "'hello, world'"))),
        Step(4, "return", "f", 1, value="8"),
        Step(5, state=(("d", "{'a': 1, 'b': 2}"), ("r", "True"), ("t", "(1, None)")), output="a 1\n"),
        Step(6, "exception", value="ZeroDivisionError: division by zero"),
    ]
    texts = [INSTRUCTIONS, format_trace(steps), "Line State Call Return Exception Output at in from"]
    texts += programs
    texts += [str(i) for i in range(200)]
    return texts


def build_tiny_model(folder: Path | str | None = None, template: str = "thinking") -> Path:
    """Build (once; cached by version) the tiny model into `folder` and return it. About a second, offline.
    `template`: the kind of chat template it carries, "thinking" (the default, like Qwen3-Thinking), "hybrid"
    (like Qwen3's hybrid models, `enable_thinking`) or "none" (the same weights; for tests of the thinking policy)."""
    if template not in TINY_TEMPLATES:
        raise ValueError(f"unknown tiny template {template!r}")
    folder = Path(folder) if folder else cache_dir() / f"tiny-qwen3-v{TINY_VERSION}"
    if (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=TINY_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.add_tokens(TINY_ADDED)  # not special: decoding keeps them, as Qwen3's <think> tokens
    tokenizer.chat_template = TINY_TEMPLATES[template]
    tokenizer.model_max_length = 4096

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = Qwen3ForCausalLM(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
        top_k=20,
    )
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(
        "A tiny Qwen3-architecture model with random weights, built offline by `trainer.models.build_tiny_model()` "
        "for smoke tests. It learns nothing useful.\n"
    )
    try:
        tmp.rename(folder)
    except OSError:  # another process built it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder
