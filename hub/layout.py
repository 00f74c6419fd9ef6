"""The dataset repo's data files, written here rather than by `datasets.push_to_hub`, so that shards, card and
histogram can land in one commit. The layout is the one `push_to_hub` writes, which the Hub viewer and
`load_dataset` read: each split as parquet shards `data/{split}-{i:05d}-of-{n:05d}.parquet`, and in the README's
YAML `configs` (one `default` config, `data/{split}-*` per split) and `dataset_info` (features, split sizes)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = "data"
MAX_SHARD_BYTES = 500_000_000  # push_to_hub's default max_shard_size ("500MB" of Arrow data per shard)


def shard_count(split) -> int:
    """How many shards push_to_hub would cut this split into (at least 1, at most one per row)."""
    return max(1, min(len(split), int(split.data.nbytes / MAX_SHARD_BYTES) + 1))


def write_parquet_shards(dsd, folder: str | Path) -> dict[str, Path]:
    """Write every split of `dsd` as parquet shards under `folder`; returns {path in the repo: local file}.
    Same rows, row groups and schema metadata as push_to_hub, so the same data gives the same bytes."""
    from datasets.arrow_writer import get_writer_batch_size_from_data_size, get_writer_batch_size_from_features

    files = {}
    for name in dsd:
        split = dsd[name]
        count = shard_count(split)
        # small row groups for wide rows: the viewer reads one row group to show a page
        batch_size = get_writer_batch_size_from_features(split.features) or get_writer_batch_size_from_data_size(
            len(split), split.data.nbytes
        )
        for index in range(count):
            shard = split if count == 1 else split.shard(num_shards=count, index=index, contiguous=True)
            path = f"{DATA_DIR}/{name}-{index:05d}-of-{count:05d}.parquet"
            local = Path(folder) / path
            local.parent.mkdir(parents=True, exist_ok=True)
            shard.to_parquet(str(local), batch_size=batch_size)
            files[path] = local
    return files


def hub_metadata(dsd, files: dict[str, Path] | None = None) -> dict:
    """The README's `configs` and `dataset_info` for `dsd`. With the written shards (`files`), the sizes too, as
    push_to_hub records them: `num_bytes` of Arrow data per split, `download_size` of parquet in all."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    splits = SplitDict()
    for name in dsd:
        splits.add(SplitInfo(name=name, num_bytes=dsd[name].data.nbytes if files else 0, num_examples=len(dsd[name])))
    info = DatasetInfo(features=next(iter(dsd.values())).features, splits=splits)
    if files:
        info.download_size = sum(Path(f).stat().st_size for f in files.values())
        info.dataset_size = sum(s.num_bytes for s in splits.values())
    data = DatasetCardData()
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    patterns = [{"split": name, "path": f"{DATA_DIR}/{name}-*"} for name in dsd]
    MetadataConfigs({"default": {"data_files": patterns}}).to_dataset_card_data(data)
    return {"configs": data["configs"], "dataset_info": data["dataset_info"]}
