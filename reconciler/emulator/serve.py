"""Serving the emulator over loopback HTTP with uvicorn, in the foreground or on a background thread."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from types import TracebackType
from typing import Any

from reconciler.emulator.limits import KEEP_ALIVE_SECONDS, REQUEST_SECONDS

try:
    import h11
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError:  # an extra: the in-process emulator and every Quick BI run do without it
    from reconciler.vocabulary.errors import Problem, ReconcilerError

    raise ReconcilerError(
        Problem(
            "serving the emulator needs uvicorn, which is not installed",
            hint="pip install 'quickbi-reconciler[serve]'",
        )
    ) from None


class _Deadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request: from the connection's first byte (or the
    end of its previous answer) the request, headers and body, must be in within `request_seconds`, or the
    connection is closed. uvicorn itself waits for ever for headers sent one byte a second."""

    request_seconds = REQUEST_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._start_deadline()  # a connection that never sends a byte is as slow as one that sends one

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._start_deadline()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
            self._stop_deadline()  # the request is in: how long the answer takes is not the client's doing

    def on_response_complete(self) -> None:
        self._stop_deadline()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._deadline = self.loop.call_later(self.request_seconds, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def _protocol(request_seconds: float) -> type[H11Protocol]:
    return type("Deadline", (_Deadline,), {"request_seconds": request_seconds})


def serve_forever(app: Any, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then return normally (so that the caller can save the state).

    uvicorn shuts down gracefully on either signal and then raises it again under the handler that was there
    before it started; without one of ours, a re-raised SIGTERM would end the process before anything is saved.
    """
    previous = signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            http=_protocol(REQUEST_SECONDS),
            timeout_keep_alive=int(KEEP_ALIVE_SECONDS),
        )
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


class BackgroundServer:
    """Runs an emulator's ASGI app on 127.0.0.1 on a free port for the length of a `with` block."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, request_seconds: float = REQUEST_SECONDS
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="critical",
            access_log=False,
            lifespan="off",
            http=_protocol(request_seconds),
            timeout_keep_alive=int(KEEP_ALIVE_SECONDS),
        )
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
