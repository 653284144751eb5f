"""Keep secrets out of every line the process writes: log records are scrubbed before any handler sees them."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

SECRET_PARAMETERS = frozenset({"AccessKeySecret", "SecurityToken", "Signature", "AccessKeyId"})
_SECRET_IN_TEXT = re.compile(
    r"(?i)(?<![a-z])(AccessKeySecret|SecurityToken|Signature|x-acs-security-token|authorization|ticket)"
    r"([\"']?\s*(?:[=:]|%3D|%253D|%3A|%253A)\s*[\"']?)([^&\s\"',;]+)"
)


def mask(secret: str) -> str:
    """Enough of a ticket or token to tell two apart in an audit log, never enough to use it."""
    return f"{secret[:6]}****" if len(secret) > 12 else "****"


def one_line(text: str) -> str:
    """`text` with control characters (newlines, terminal escapes) shown escaped: a name from Quick BI or the
    policy must never start a line of its own in a plan, report, error or log."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


MIN_SCRUBBED_LENGTH = 6  # shorter values would scrub ordinary words; real secrets and tokens are far longer


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` replaced by ***, as it is or percent-encoded once or twice (in either
    case of hex digits): a server echoing a request quotes its parameters in whatever encoding it signed."""
    for secret in secrets:
        if len(secret) >= MIN_SCRUBBED_LENGTH:
            text = _encodings_of(secret).sub("***", text)
    return text


def _encodings_of(secret: str) -> re.Pattern[str]:
    parts = []
    for char in secret:
        octets = char.encode()
        once = "".join(f"%{octet:02X}" for octet in octets)
        twice = "".join(f"%25{octet:02X}" for octet in octets)
        plus = "|\\+" if char == " " else ""
        parts.append(f"(?:{re.escape(char)}|{once}|{twice}{plus})")
    return re.compile("".join(parts), re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the value of every secret-bearing parameter or header replaced by ***."""
    return _SECRET_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


class RedactingFilter(logging.Filter):
    """A handler filter: formats the record's message, scrubs it, and drops the arguments it came from."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = one_line(redact(record.getMessage()))  # one record, one line: no forged log lines
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(verbose: bool) -> None:
    """Warnings from everything; with `verbose`, the project's own debug lines too, never library noise."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("reconciler").setLevel(logging.DEBUG if verbose else logging.WARNING)
