"""The local Hub server against the real `huggingface_hub` client, and `hub.publish.upload_model_folder`
(the trainer's way to publish an adapter) against the server."""

import hashlib

import pytest

from hub.errors import HubError
from hub.publish import upload_model_folder


def _api(token):
    from huggingface_hub import HfApi

    return HfApi(token=token)


def test_real_client_round_trip(hub_server, tmp_path):
    """create (409 carries url), whoami, regular + LFS commit, tree, paths-info, download with ranges, commits."""
    from huggingface_hub import HfFileSystem
    from huggingface_hub.errors import HfHubHTTPError

    token = hub_server.add_user("alice")
    api = _api(token)
    assert api.whoami()["name"] == "alice"
    url = api.create_repo("alice/thing", repo_type="dataset")
    assert url.endswith("/datasets/alice/thing")
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo("alice/thing", repo_type="dataset")
    assert info.value.response.status_code == 409 and info.value.response.json()["url"] == url
    assert api.create_repo("alice/thing", repo_type="dataset", exist_ok=True) == url

    blob = bytes(range(256)) * 64
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "weights.bin").write_bytes(blob)
    api.upload_folder(folder_path=tmp_path, repo_id="alice/thing", repo_type="dataset", commit_message="add")

    files = hub_server.files("alice/thing")
    assert files["sub/weights.bin"]["lfs"] and not files["notes.txt"]["lfs"]
    assert files["sub/weights.bin"]["sha256"] == hashlib.sha256(blob).hexdigest()
    tree = {e.path for e in api.list_repo_tree("alice/thing", repo_type="dataset", recursive=True)}
    assert tree == {".gitattributes", "notes.txt", "sub", "sub/weights.bin"}
    info = api.get_paths_info("alice/thing", ["sub/weights.bin", "sub", "nope"], repo_type="dataset")
    assert [type(e).__name__ for e in info] == ["RepoFile", "RepoFolder"]
    assert info[0].lfs.sha256 == hashlib.sha256(blob).hexdigest()

    path = api.hf_hub_download("alice/thing", "sub/weights.bin", repo_type="dataset", cache_dir=tmp_path / "cache")
    assert open(path, "rb").read() == blob
    fs = HfFileSystem(token=token)
    with fs.open("datasets/alice/thing/sub/weights.bin", "rb", block_size=1000) as f:
        f.seek(5000)
        assert f.read(300) == blob[5000:5300]
    assert [c.title for c in api.list_repo_commits("alice/thing", repo_type="dataset")] == ["add", "initial commit"]


def test_private_repos_and_namespaces(hub_server):
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    alice, bob = hub_server.add_user("alice"), hub_server.add_user("bob")
    _api(alice).create_repo("alice/secret", private=True)
    assert hub_server.repo_private("alice/secret", "model")
    with pytest.raises(RepositoryNotFoundError):
        _api(bob).model_info("alice/secret")
    assert _api(alice).model_info("alice/secret").private
    with pytest.raises(HfHubHTTPError) as info:
        _api(bob).create_repo("alice/other")
    assert info.value.response.status_code == 403


def test_upload_model_folder_replaces_stale_files(hub_server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub_server.add_user("alice"))
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# adapter\n")
    (folder / "adapter_model.safetensors").write_bytes(b"\x00weights" * 100)
    (folder / "old.json").write_text("{}")
    url = upload_model_folder(folder, "alice/adapter")
    assert url == f"{hub_server.url}/alice/adapter"
    assert set(hub_server.files("alice/adapter", "model")) == {
        ".gitattributes",
        "README.md",
        "adapter_model.safetensors",
        "old.json",
    }
    upload_model_folder(folder, "alice/adapter", commit_message="unchanged")  # the same files: no commit
    (folder / "old.json").unlink()
    (folder / "adapter_config.json").write_text('{"r": 64}')
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# adapter, retrained\n")
    upload_model_folder(folder, "alice/adapter", commit_message="second")
    assert set(hub_server.files("alice/adapter", "model")) == {
        ".gitattributes",
        "README.md",
        "adapter_model.safetensors",
        "adapter_config.json",
    }
    assert hub_server.read("alice/adapter", "adapter_config.json", "model") == b'{"r": 64}'
    # the new file, the new card and the deletion landed together, in one commit
    commits = _api(None).list_repo_commits("alice/adapter")
    assert [c.title for c in commits] == ["second", "Upload adapter with its model card", "initial commit"]


def test_upload_model_folder_errors_are_one_sentence(hub_server, tmp_path, monkeypatch):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 1000)
    token = hub_server.add_user("alice")
    hub_server.add_user("bob")

    def message(**kwargs):
        with pytest.raises(HubError) as info:
            upload_model_folder(kwargs.pop("folder", folder), kwargs.pop("repo_id", "alice/adapter"), **kwargs)
        text = str(info.value)
        assert "\n" not in text and token not in text
        return text

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert "No Hugging Face token" in message()
    assert "Malformed repo id" in message(repo_id="not a repo", token=token)
    assert "no folder" in message(folder=tmp_path / "missing", token=token)
    assert "rejected the token" in message(token="hf_wrong")
    assert "cannot write to the namespace 'bob'" in message(repo_id="bob/adapter", token=token)

    hub_server.fail("commit", status=500)
    failed = message(token=token)
    assert "HTTP 500" in failed and "run the same command again" in failed
    hub_server.stop()
    assert "Cannot reach the Hub" in message(token=token)
    hub_server.start()
    hub_server.stop_after("info")  # a new repo's existence check answered (404), then the Hub is gone
    assert "Cannot reach the Hub" in message(repo_id="alice/fresh", token=token)
    hub_server.start()
    upload_model_folder(folder, "alice/adapter", token=token)
    assert "adapter_model.safetensors" in hub_server.files("alice/adapter", "model")
