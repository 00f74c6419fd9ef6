"""A quick probe of the direct-answer lever (`train-and-push --direct-answers`) without the hour of the CPU recipe:
LoRA SFT (rank 64, alpha 128, every projection, as the trainer's) of a base model on direct answers alone, CRUXEval's
direct prompt for the function calls of a built dataset answered with their traced result (`trainer.answers`), then
the merged model saved for `evaluate-traces --benchmark cruxeval --model DIR --cruxeval-prompts direct`.

    python scripts/direct_answer_probe.py --data data/cpu-recipe-1100-calls --model CONVERTED_QWEN_DIR \\
        --examples 300 --learning-rate 1e-4 --format chat --output /tmp/probe
    evaluate-traces --benchmark cruxeval --benchmark-data data/cruxeval.jsonl --model /tmp/probe --limit 200 \\
        --cruxeval-prompts direct --cruxeval-prompt-format chat --no-trace-base --batch-size 16 --dtype bfloat16

It trains one example at a time (no padding), the loss on the answer's tokens only (projected through the vocabulary
there alone), with a linear decay; programs with the structure of a CRUXEval item (`--benchmark-data`) are left out,
as in a training run. Measured figures are in results/direct_answer_probes.json and docs/cruxeval.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataset_builder import benchmark as crux  # noqa: E402
from trainer.answers import answer_examples  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a dataset folder saved by build-dataset --drill-kind calls")
    parser.add_argument("--model", required=True, help="the base model's folder (e.g. the recipe's converted GGUF)")
    parser.add_argument("--benchmark-data", default="data/cruxeval.jsonl", help="CRUXEval items, kept out by structure")
    parser.add_argument("--examples", type=int, default=300, help="direct answers to train on (shuffled, seed 0)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--format",
        choices=["raw", "chat"],
        default="chat",
        help="raw: the prompt is the whole input (CRUXEval's way for open models); chat: one user turn "
        "through the chat template (what train-and-push --direct-answers trains)",
    )
    parser.add_argument("--output", required=True, help="where the merged model goes")
    return parser.parse_args(argv)


def token_ids(tokenizer, prompt: str, answer: str, chat: bool) -> tuple[list, list]:
    """(prompt ids, answer ids) as the model sees them: raw text then the answer and the end-of-text token, or the
    chat template's user turn then the assistant's."""
    if not chat:
        ids = tokenizer(prompt, add_special_tokens=False).input_ids
        return ids, tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    turn = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(turn + [{"role": "assistant", "content": answer}], tokenize=False)
    ids = tokenizer(head, add_special_tokens=False).input_ids
    return ids, tokenizer(whole[len(head) :], add_special_tokens=False).input_ids


def main(argv=None) -> None:
    import torch
    from datasets import load_from_disk
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = parse_args(argv)
    torch.manual_seed(0)
    items = crux.load_items(args.benchmark_data)
    structures = {crux.structure_of(crux.program_of(item)) for item in items}
    rows = [r for r in load_from_disk(args.data)["train"] if crux.structure_of(r["code"]) not in structures]
    examples = answer_examples(rows)
    random.Random(0).shuffle(examples)
    examples = examples[: args.examples]
    print(f"{len(examples)} direct answers (of {len(rows)} training programs without a CRUXEval item's structure)")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=64, lora_alpha=128, lora_dropout=0.0, target_modules=targets))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0)
    steps = math.ceil(len(examples) / args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    inner = model.base_model.model
    started, tokens = time.perf_counter(), 0
    for step in range(steps):
        batch = [
            token_ids(tokenizer, e["prompt"], e["answer"], args.format == "chat")
            for e in examples[step * args.batch_size : (step + 1) * args.batch_size]
        ]
        labelled = sum(len(answer) for _, answer in batch)
        total = 0.0
        for prompt, answer in batch:
            hidden = inner.model(input_ids=torch.tensor([prompt + answer])).last_hidden_state[0]
            logits = inner.lm_head(hidden[len(prompt) - 1 : len(prompt) + len(answer) - 1]).float()
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor(answer), reduction="sum") / labelled
            loss.backward()
            total += loss.item()
            tokens += len(prompt) + len(answer)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 10 == 0 or step == steps - 1:
            spent = time.perf_counter() - started
            print(
                f"step {step + 1}/{steps}: loss {total:.3f}, {tokens / spent:.0f} tokens/s, {spent:.0f} s", flush=True
            )
    model.merge_and_unload().save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    seconds = round(time.perf_counter() - started, 1)
    record = {
        "examples": len(examples),
        "format": args.format,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "steps": steps,
        "tokens": tokens,
        "seconds": seconds,
    }
    (Path(args.output) / "probe.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"Merged model saved in {args.output} ({seconds:.0f} s of training).")


if __name__ == "__main__":
    main()
