"""The training data: a dataset folder saved by `build-dataset`, or a dataset repo on the Hub.

What training and evaluation need of a row is its chat `prompt` (from `make_prompt`) and its `expected_trace`
(from `format_trace`). Rows that lack them but carry `code` and `steps` get them rebuilt from the trace contract,
so a dataset saved by an older builder still trains.
"""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A user mistake about the dataset; its message is one sentence."""


def load_trace_dataset(spec: str, *, splits=("train", "test")):
    """Load `spec` (a `save_to_disk` folder or a Hub dataset id) as a DatasetDict with `prompt` (chat messages)
    and `expected_trace` columns in every split."""
    import datasets

    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(f"{spec} is a file; --dataset takes a folder saved by build-dataset or a Hub dataset id.")
        try:
            data = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as exc:
            raise DataError(f"{spec} is not a dataset folder saved by build-dataset ({_first_line(exc)}).") from exc
    else:
        if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
            raise DataError(f"dataset {spec} does not exist (expected a folder or a Hub dataset id like user/name).")
        try:
            data = datasets.load_dataset(spec)
        except Exception as exc:  # the Hub client raises many kinds of errors: offline, missing, private
            raise DataError(
                f"there is no folder {spec} here, and dataset {spec} could not be loaded from the Hub: "
                f"{_first_line(exc)}"
            ) from exc
    if isinstance(data, datasets.Dataset):
        raise DataError(f"{spec} holds a single split; training needs a DatasetDict with train and test splits.")
    missing = [s for s in splits if s not in data]
    if missing:
        raise DataError(f"dataset {spec} has no {' or '.join(missing)} split (it has: {', '.join(data)}).")
    return datasets.DatasetDict({name: _with_contract_columns(data[name], spec, name) for name in data})


def _with_contract_columns(split, spec: str, name: str):
    columns = set(split.column_names)
    need_prompt = "prompt" not in columns or (len(split) and isinstance(split[0]["prompt"], str))
    need_trace = "expected_trace" not in columns
    if not need_prompt and not need_trace:
        return split
    if (need_prompt and "code" not in columns) or (need_trace and "steps" not in columns):
        raise DataError(
            f"the {name} split of {spec} has no chat 'prompt' and 'expected_trace' columns (nor 'code' and 'steps' "
            "to rebuild them); build it with build-dataset."
        )
    from dataset_builder.trace import Step, format_trace, make_prompt

    def add(row):
        out = {}
        if need_prompt:
            out["prompt"] = make_prompt(row["code"])
        if need_trace:
            out["expected_trace"] = format_trace([Step.from_row(s) for s in row["steps"]])
        return out

    if need_prompt and "prompt" in columns:
        split = split.remove_columns("prompt")
    return split.map(add, desc=f"rebuilding prompts/traces ({name})")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---------------------------------------------------------------------------------------------------------
# The curriculum: which training programs, in which order

CURRICULA = ("none", "short-first")


def trace_length(row) -> int:
    """A program's trace length in steps: the `num_steps` column when the builder wrote it, else the number of
    entries in `steps`, else the steps of the parsed `expected_trace`."""
    if row.get("num_steps") is not None:
        return int(row["num_steps"])
    if row.get("steps") is not None:
        return len(row["steps"])
    from dataset_builder.trace import parse_trace

    return len(parse_trace(row.get("expected_trace") or "").steps)


def trace_lengths(split) -> list[int]:
    """`trace_length` of every row, reading only the column it needs."""
    columns = split.column_names
    if "num_steps" in columns:
        return [int(n) for n in split["num_steps"]]
    if "steps" in columns:
        return [len(s) for s in split["steps"]]
    return [trace_length({"expected_trace": t}) for t in split["expected_trace"]]


def training_rows(split, *, max_trace_steps: int | None = None, limit: int | None = None, curriculum: str = "none"):
    """The training programs: those with at most `max_trace_steps` steps, then the first `limit` of them, then in
    the curriculum's order (`short-first`: by trace length in steps, then by trace text length; ties keep the
    dataset's order). Returns (rows, description)."""
    if curriculum not in CURRICULA:
        raise DataError(f"unknown curriculum {curriculum!r}; choose one of {', '.join(CURRICULA)}.")
    lengths = trace_lengths(split)
    keep = [i for i, n in enumerate(lengths) if max_trace_steps is None or n <= max_trace_steps]
    if not keep:
        raise DataError(f"no training program has a trace of at most {max_trace_steps} steps.")
    if limit:
        keep = keep[:limit]
    if curriculum == "short-first":
        chars = split["expected_trace"] if "expected_trace" in split.column_names else [""] * len(split)
        keep.sort(key=lambda i: (lengths[i], len(chars[i]), i))
    rows = split.select(keep) if keep != list(range(len(split))) else split
    chosen = [lengths[i] for i in keep]
    described = (
        f"{len(keep)} of {len(split)} programs"
        + (f" (traces of at most {max_trace_steps} steps)" if max_trace_steps is not None else "")
        + f", {min(chosen)}-{max(chosen)} steps"
        + (", shortest traces first" if curriculum == "short-first" else "")
    )
    return rows, described
