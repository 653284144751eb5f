"""The emulator the whole-command benchmarks run against: served on a free loopback port, as a real endpoint."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def served_emulator(folder: Path, env: dict[str, str], port: int, *options: str) -> Iterator[None]:
    """`reconciler emulator serve` of `folder`/org.json on `port` (with `options`), until the block ends."""
    serve = [sys.executable, "-m", "reconciler", "emulator", "serve", "--org", "org.json", "--port", str(port)]
    server = subprocess.Popen([*serve, *options], cwd=folder, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600  # a tenant of millions of grants takes a while to load
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("emulator did not start")
            time.sleep(0.1)
        yield
    finally:
        server.terminate()
        server.wait(timeout=60)
