"""Tests never reach the network beyond loopback: every connection to another address fails loudly.

conftest.py applies this to the test process and puts this folder first on PYTHONPATH, so every Python process a
test starts (the real CLIs, torchrun's workers, the Hub clients in them) imports it at start-up as `sitecustomize`
and is guarded the same way. (Sandboxed tracing workers run `python -S`, without it: they have no network.)
"""

import ipaddress
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_loopback(address) -> None:
    if isinstance(address, tuple):
        host = address[0]
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise OSError(f"tests may not reach the network: connection to {host!r} refused by tests/loopback_guard")


def _guarded_connect(self, address):
    _check_loopback(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check_loopback(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
