import socket
import subprocess
import sys

import pytest


def test_non_loopback_connections_are_refused():
    with socket.socket() as sock, pytest.raises(OSError, match="may not reach the network"):
        sock.connect(("93.184.215.14", 443))


def test_loopback_connections_are_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())


def test_a_python_process_a_test_starts_is_guarded_too():
    """The real CLIs run in processes of their own: they get the same guard (tests/loopback_guard/sitecustomize.py
    on PYTHONPATH), so a test that drives them cannot reach the network either."""
    code = "import socket\ntry:\n    socket.create_connection(('93.184.215.14', 443), timeout=5)\nexcept OSError as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "tests may not reach the network" in done.stdout, done.stdout + done.stderr
