"""Shared test set-up. Tests never reach the network beyond loopback: any other connection fails loudly.

Without the training extra (`pip install -e '.[test]'` only), what needs it is skipped with the reason: tests marked
`training`, and every test that uses the tiny model (the `model_cache` fixture). CI installs everything.
"""

import importlib.util
import os
from pathlib import Path

import pytest

# fixtures every test file can ask for by name: `hub_server` (a local Hub-compatible server, tests/hub_server.py) and
# the trainer's `tiny_dataset`, `model_cache` and `trained_run` (tests/trainer_fixtures.py)
pytest_plugins = ["hub_server", "trainer_fixtures"]

# Nothing in the tests may fetch from the Hub; tests that push point HF_ENDPOINT at the local test server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")

# The loopback-only guard, in this process and in every Python process a test starts (its sitecustomize.py).
GUARD_DIR = Path(__file__).resolve().parent / "loopback_guard"
_spec = importlib.util.spec_from_file_location("loopback_guard", GUARD_DIR / "sitecustomize.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")]))

TRAINING_EXTRA = ("torch", "transformers", "peft", "trl")


def pytest_configure(config):
    config.addinivalue_line("markers", "training: needs the training extra (torch, transformers, peft, trl)")


def pytest_collection_modifyitems(config, items):
    missing = [name for name in TRAINING_EXTRA if importlib.util.find_spec(name) is None]
    if not missing:
        return
    skip = pytest.mark.skip(
        reason=f"needs the training extra ({', '.join(missing)} not installed): pip install -e '.[train]'"
    )
    for item in items:
        if item.get_closest_marker("training") or "model_cache" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_network_env(monkeypatch, tmp_path_factory):
    """A private HF_HOME per test session, so no user cache or token leaks into the tests."""
    if "HF_HOME" not in os.environ or not os.environ["HF_HOME"].startswith(str(tmp_path_factory.getbasetemp())):
        monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
    yield
