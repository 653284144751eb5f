"""Serving the emulator over loopback HTTP with uvicorn, in the foreground or on a background thread."""

from __future__ import annotations

import signal
import threading
import time
from types import TracebackType
from typing import Any

try:
    import uvicorn
except ImportError:  # an extra: the in-process emulator and every Quick BI run do without it
    from reconciler.vocabulary.errors import Problem, ReconcilerError

    raise ReconcilerError(
        Problem(
            "serving the emulator needs uvicorn, which is not installed",
            hint="pip install 'quickbi-reconciler[serve]'",
        )
    ) from None


def serve_forever(app: Any, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then return normally (so that the caller can save the state).

    uvicorn shuts down gracefully on either signal and then raises it again under the handler that was there
    before it started; without one of ours, a re-raised SIGTERM would end the process before anything is saved.
    """
    previous = signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


class BackgroundServer:
    """Runs an emulator's ASGI app on 127.0.0.1 on a free port for the length of a `with` block."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="critical", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="emulator-server", daemon=True)
        self.host = host
        self.port = port

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
