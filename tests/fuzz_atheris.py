"""Coverage-guided fuzzing of the policy loader with atheris (libFuzzer), beyond the hypothesis properties in
test_fuzz.py. Not part of the suite; run for as long as you like:

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python -m tests.fuzz_atheris -atheris_runs=200000

Any input that raises something other than ReconcilerError is a finding: save it and add it as a test.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from reconciler.core.policy import load_policy
    from reconciler.vocabulary.errors import ReconcilerError

FOLDER = Path(tempfile.mkdtemp(prefix="reconciler-fuzz-"))


def one_input(data: bytes) -> None:
    path = FOLDER / "policy.yaml"
    path.write_bytes(data)
    with contextlib.suppress(ReconcilerError):
        load_policy([path])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
