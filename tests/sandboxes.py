"""The sandboxes a test can run workers in: `none` always, `bwrap` where bubblewrap works (CI installs it)."""

import pytest

from dataset_builder.sandbox import Sandbox, probe_bwrap

BWRAP_WORKS, BWRAP_DETAIL = probe_bwrap()
needs_bwrap = pytest.mark.skipif(
    not BWRAP_WORKS, reason=f"the bubblewrap sandbox is not usable here ({BWRAP_DETAIL}): apt-get install bubblewrap"
)
BWRAP = Sandbox("bwrap", BWRAP_DETAIL if BWRAP_WORKS else "")
SANDBOXES = [pytest.param(Sandbox("none"), id="none"), pytest.param(BWRAP, id="bwrap", marks=needs_bwrap)]
