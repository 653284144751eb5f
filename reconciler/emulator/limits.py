"""What the emulator accepts from a client, in one place: sizes, nesting, and how long a request may take.

A client's mistake beyond these gets a 4xx with a Code (the documented list is in docs/reference.md), never a
500; a client too slow to finish its request loses the connection.
"""

from __future__ import annotations

from reconciler.vocabulary.files import MAX_JSON_DEPTH

MAX_BODY_BYTES = 1024 * 1024  # a request body; larger is 413 without reading the rest
MAX_PARAMETER_JSON_DEPTH = MAX_JSON_DEPTH  # JSON inside a parameter (DataRange), parsed by pydantic-core
# from a connection's first byte (or the end of its previous answer) until its request, headers and body, is in
REQUEST_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5.0  # an idle kept-alive connection
