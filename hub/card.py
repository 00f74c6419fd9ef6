"""The dataset card: figures read from the data, a histogram, and the `dataset_card.md` template rendered with
huggingface_hub's card API (`DatasetCardData` + `DatasetCard.from_template`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path, PurePath

from hub import layout
from hub.errors import HubError

TEMPLATE = Path(__file__).resolve().parent.parent / "dataset_card.md"
HISTOGRAM_PATH = "images/distributions.svg"
LICENSE = "apache-2.0"
TAGS = ["code", "python", "execution-trace", "program-execution", "world-model", "synthetic"]
TOP_EXCEPTION_TYPES = 8  # the card lists this many of the most common uncaught exception types
FIRST_ROWS = 10  # the smallest first page the Hub viewer shows (it shows up to 100 rows, truncating cells to fit)
FIRST_ROWS_MAX_BYTES = 200_000  # docs/design.md §6: keep the first rows under ~200 KB of JSON

COLUMNS = [
    ("id", "string", "stable id: the user's id for `--programs`, else a hash of the normalized code"),
    ("code", "string", "the program"),
    (
        "steps",
        "list of struct",
        "one entry per trace event: `line`, `event` (`line`/`call`/`return`/`exception`), "
        "`function`, `depth`, `state` (list of `{name, value}`: the frame's variables *after* the line, values as `repr`), "
        "`value` (returned value or `Type: message`), `output` (what the step printed)",
    ),
    ("stdout", "string", "everything the program printed"),
    ("error", "string", "`Type: message` of an uncaught exception, else empty"),
    ("prompt", "list of `{role, content}`", "the chat prompt shown to the model"),
    ("expected_trace", "string", "the target text: the trace in the format below"),
    ("num_lines", "int32", "lines of code"),
    ("num_steps", "int32", "trace events"),
    ("constructs", "list of string", "construct kinds the program uses"),
    ("skeleton", "string", "hash of the program's structure (names and constants abstracted); splits never share one"),
]


# ---------------------------------------------------------------------------------------------------------
# Figures


def _quantile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    value = sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
    return int(value) if value == int(value) else round(value, 1)


def _summary(values: list[int]) -> dict:
    s = sorted(values)
    return {
        "min": s[0] if s else 0,
        "p25": _quantile(s, 0.25),
        "median": _quantile(s, 0.5),
        "p75": _quantile(s, 0.75),
        "p90": _quantile(s, 0.9),
        "max": s[-1] if s else 0,
        "mean": round(sum(s) / len(s), 1) if s else 0,
    }


def _bins(values: list[int], max_bins: int = 16) -> list[tuple[int, int, int]]:
    """(low, high, count) integer bins of equal width covering min..max."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    width = max(1, -(-(hi - lo + 1) // max_bins))
    out = []
    start = lo
    while start <= hi:
        end = start + width - 1
        out.append((start, end, sum(start <= v <= end for v in values)))
        start = end + 1
    return out


def _fence(code: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    return "`" * max(3, longest + 1)


# Texts that programs control (ids, exception type names, rejection reasons) are escaped for Markdown and HTML:
# the card is rendered by the Hub, and `<img>`, links or a stray backtick must show as text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def code_span(text: str) -> str:
    """`text` as inline code, whatever backticks it holds (the delimiter is longer than any run inside)."""
    text = " ".join(text.split())  # a code span cannot hold a line break
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    tick = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{tick}{pad}{text}{pad}{tick}"


def plain_text(text: str) -> str:
    """`text` as literal Markdown text: HTML characters as entities, Markdown punctuation backslash-escaped."""
    text = " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _pick_example(rows: list[dict]) -> dict | None:
    """A short, representative row: prefer one with a function call and printed output, no error."""

    def score(row):
        events = {s["event"] for s in row["steps"]}
        return (
            not (3 <= row["num_steps"] <= 14),
            "call" not in events,
            not row["stdout"],
            bool(row["error"]),
            row["num_steps"],
            row["id"],
        )

    return min(rows, key=score) if rows else None


def row_bytes(row: dict) -> int:
    return len(json.dumps(row, ensure_ascii=False).encode())


def first_rows_bytes(split, n: int = FIRST_ROWS) -> int:
    """Size of the JSON the viewer gets for the first `n` rows of a split."""
    return len(json.dumps(split.select(range(min(n, len(split)))).to_list(), ensure_ascii=False).encode())


def dataset_figures(dsd, report: dict) -> dict:
    """Everything the card states about the data, computed from the rows (and the build report for what only
    the build knows: Python version, seed, options, rejections)."""
    splits = {name: len(dsd[name]) for name in dsd}
    columns = ["id", "code", "steps", "stdout", "error", "expected_trace", "num_lines", "num_steps", "constructs"]
    rows, train_rows = [], []
    for name in dsd:
        split_rows = dsd[name].select_columns(columns).to_list()
        rows += split_rows
        if name == "train":
            train_rows = split_rows
    total = len(rows)
    kinds = Counter(kind for row in rows for kind in set(row["constructs"]))
    errors = Counter(row["error"].split(":", 1)[0] for row in rows if row["error"])
    events = Counter(step["event"] for row in rows for step in row["steps"])
    lines = [row["num_lines"] for row in rows]
    steps = [row["num_steps"] for row in rows]
    example = _pick_example(train_rows or rows)
    if example is not None:
        code = example["code"].rstrip("\n")
        trace = example["expected_trace"].rstrip("\n")
        example = {
            "id": code_span(example["id"]),
            "code": code,
            "fence": _fence(code),
            "trace": trace,
            "trace_fence": _fence(trace),
        }
    options = dict(report.get("options") or {})
    if isinstance(options.get("programs_file"), str):  # its name only: no path of the user's reaches the Hub
        options["programs_file"] = PurePath(options["programs_file"]).name
    first_rows = {name: first_rows_bytes(dsd[name]) for name in dsd}
    biggest_row = max((row_bytes(row) for name in dsd for row in dsd[name]), default=0)
    return {
        "splits": splits,
        "total": total,
        "distinct_skeletons": report.get("distinct_skeletons") or len({r for n in dsd for r in dsd[n]["skeleton"]}),
        "constructs": [
            {"kind": kind, "programs": count, "share": f"{100 * count / total:.0f}%"}
            for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "lines": _summary(lines),
        "steps": _summary(steps),
        "line_bins": _bins(lines),
        "step_bins": _bins(steps),
        "errors": {
            "count": sum(errors.values()),
            "share": f"{100 * sum(errors.values()) / total:.1f}%" if total else "0%",
            "kinds": len(errors),
            "types": [{"type": code_span(t), "count": c} for t, c in errors.most_common(TOP_EXCEPTION_TYPES)],
        },
        "printing": f"{100 * sum(bool(r['stdout']) for r in rows) / total:.0f}%" if total else "0%",
        "events": dict(sorted(events.items())),
        "python_version": report.get("python_version") or "unknown",
        "sandbox": report.get("sandbox") or "unknown (built before the sandbox was recorded)",
        "source": report.get("source") or "unknown",
        "seed": report.get("seed"),
        "options": [
            {"name": k, "value": json.dumps(v) if not isinstance(v, str) else v} for k, v in sorted(options.items())
        ],
        "max_value_chars": options.get("max_value_chars"),
        "max_steps": options.get("max_steps"),
        "timeout": options.get("timeout"),
        "drills": (report.get("counts") or {}).get("drills", 0),
        "rejected": (report.get("counts") or {}).get("rejected", len(report.get("rejected") or [])),
        "rejected_by_reason": [
            {"reason": plain_text(k), "count": v} for k, v in (report.get("rejected_by_reason") or {}).items()
        ],
        "example": example,
        "first_rows": FIRST_ROWS,
        "first_rows_kb": {name: round(size / 1000, 1) for name, size in first_rows.items()},
        "biggest_row_kb": round(biggest_row / 1000, 1),
    }


def size_category(total: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if total < limit:
            return name
    return "1M<n<10M"


# ---------------------------------------------------------------------------------------------------------
# Histogram (a small deterministic SVG: no plotting library)


def _panel(x0: int, title: str, xlabel: str, bins: list[tuple[int, int, int]], color: str) -> list[str]:
    width, height, top, left, bottom = 330, 250, 30, 40, 45
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = max((c for _, _, c in bins), default=0) or 1
    out = [
        f'<text x="{x0 + width / 2:.0f}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{title}</text>',
        f'<line x1="{x0 + left}" y1="{top + plot_h}" x2="{x0 + left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
        f'<line x1="{x0 + left}" y1="{top}" x2="{x0 + left}" y2="{top + plot_h}" stroke="#444"/>',
        f'<text x="{x0 + left + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle" font-size="11">{xlabel}</text>',
        f'<text x="{x0 + left - 6}" y="{top + 4}" text-anchor="end" font-size="10">{peak}</text>',
        f'<text x="{x0 + left - 6}" y="{top + plot_h + 4}" text-anchor="end" font-size="10">0</text>',
    ]
    n = max(len(bins), 1)
    bar_w = plot_w / n
    label_every = max(1, -(-n // 8))
    for i, (lo, hi, count) in enumerate(bins):
        h = plot_h * count / peak
        x = x0 + left + i * bar_w
        label = f"{lo}" if lo == hi else f"{lo}-{hi}"
        out.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{label}: {count}</title></rect>"
        )
        if i % label_every == 0:
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" font-size="10">{label}</text>'
            )
    return out


def histogram_svg(figures: dict) -> str:
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="680" height="250" viewBox="0 0 680 250" '
        'font-family="Helvetica, Arial, sans-serif">',
        '<rect width="680" height="250" fill="white"/>',
        *_panel(0, "Program lines", "lines of code (number of programs per bar)", figures["line_bins"], "#4c78a8"),
        *_panel(340, "Trace steps", "trace events (number of programs per bar)", figures["step_bins"], "#f58518"),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Metadata and rendering


def card_data(dsd, report: dict, hub_metadata: dict, pretty_name: str, license: str = LICENSE):
    from huggingface_hub import DatasetCardData

    total = sum(len(dsd[name]) for name in dsd)
    return DatasetCardData(
        license=license,
        language=["en"],
        pretty_name=pretty_name,
        size_categories=[size_category(total)],
        task_categories=["text-generation"],
        tags=TAGS,
        configs=hub_metadata["configs"],
        dataset_info=hub_metadata["dataset_info"],
    )


def render_card(
    dsd,
    report: dict,
    repo_id: str,
    *,
    hub_metadata: dict | None = None,
    pretty_name: str = "Python execution traces",
    template: str | Path = TEMPLATE,
    license: str = LICENSE,
):
    """The `DatasetCard` for `dsd`: YAML metadata plus a body with the figures, rendered from the template;
    `license`: the Hub's license id of the data (the metadata and the card's License section say it)."""
    try:
        import jinja2
    except ImportError:
        raise HubError(
            "Rendering the dataset card needs Jinja2, which is not installed: run `pip install jinja2`."
        ) from None
    from huggingface_hub import DatasetCard

    figures = dataset_figures(dsd, report)
    data = card_data(dsd, report, hub_metadata or layout.hub_metadata(dsd), pretty_name, license)
    # Rendered once, as `DatasetCard.from_template` does, but with undefined names an error: a template mistake
    # fails here, and a value (a program's code or trace may hold `{{ x }}`) is never read as a template.
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    try:
        text = environment.from_string(Path(template).read_text(encoding="utf-8")).render(
            card_data=data.to_yaml(),
            **data.to_dict(),
            repo_id=repo_id,
            figures=figures,
            columns=COLUMNS,
            histogram_path=HISTOGRAM_PATH,
            default_license=LICENSE,
        )
    except jinja2.UndefinedError as exc:
        raise HubError(f"The dataset card template uses a name the card does not provide ({exc.message}).") from None
    card = DatasetCard(text)
    return card, figures
