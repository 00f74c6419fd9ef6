"""Publish datasets and adapters to the Hugging Face Hub.

- `hub.publish.push_dataset(folder, repo_id, *, token=None, private=False)`: what `push-dataset` runs.
- `hub.publish.upload_model_folder(folder, repo_id, *, token=None, private=False, commit_message=...)`: an adapter
  folder (with its model card) to a model repo; returns the repo URL.
- `hub.auth.resolve_token(token)`: `token`, else HF_TOKEN, else the cached login.
- `hub.card.render_card(dsd, report, repo_id)`: the dataset card from `dataset_card.md`.
- `hub.layout.write_parquet_shards(dsd, folder)` and `hub.layout.hub_metadata(dsd, files)`: the repo's parquet
  shards and the README's `configs`/`dataset_info`, in the layout `datasets.push_to_hub` writes.
- Every user-facing failure is a `hub.errors.HubError` holding one sentence.
"""
