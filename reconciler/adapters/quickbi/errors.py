"""Typed failures of Quick BI calls. Every one carries Code, Message and RequestId when the server sent them."""

from __future__ import annotations


class QuickBIError(Exception):
    """The server answered with an error envelope."""

    def __init__(self, action: str, status: int, code: str, message: str, request_id: str) -> None:
        super().__init__(f"{action} failed: {code}: {message} (HTTP {status}, RequestId {request_id or '-'})")
        self.action = action
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        transient = ("ServiceUnavailable", "InvalidResponse")
        return self.status >= 500 or self.code.startswith("Throttling") or self.code in transient


class ThrottledError(QuickBIError):
    """Refused by flow control; `retry_after` is the server's hint in seconds, if it gave one."""

    def __init__(self, action: str, status: int, code: str, message: str, request_id: str, retry_after: float | None):
        super().__init__(action, status, code, message, request_id)
        self.retry_after = retry_after


class TransportFailure(Exception):
    """The call did not get an answer: connection refused or dropped, or a timeout."""

    def __init__(self, action: str, cause: Exception, may_have_reached_server: bool) -> None:
        super().__init__(f"{action} failed: {type(cause).__name__}: {cause or 'no answer'}")
        self.action = action
        self.may_have_reached_server = may_have_reached_server
