"""The documentation is for users: every repository path it names exists, and it does not speak of how the
work was organised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
TOP = ("reconciler", "docs", "examples", "benchmarks", "tests", "policies", ".github", ".ci")
_TOPS = "|".join(re.escape(t) for t in TOP)
PATH = re.compile(rf"(?<![\w./-])((?:{_TOPS})/[\w./{{}},*-]*)")


def _expand(path: str) -> list[str]:
    """`reconciler/core/{plan,diff}` names two paths."""
    found = re.search(r"\{([^}]*)\}", path)
    if not found:
        return [path]
    head, tail = path[: found.start()], path[found.end() :]
    return [p for part in found.group(1).split(",") for p in _expand(head + part + tail)]


def _named_paths(text: str) -> set[str]:
    names = set()
    for match in PATH.finditer(text):
        for path in _expand(match.group(1).rstrip(".,:)")):
            if "*" not in path and "<" not in path:
                names.add(path.rstrip("/"))
    return names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    assert doc.exists(), f"{doc.name} is missing"
    names = _named_paths(doc.read_text())
    missing = sorted(p for p in names if not (ROOT / p).exists() and not (ROOT / f"{p}.py").exists())
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_do_not_speak_of_how_the_work_was_organised(doc: Path) -> None:
    text = doc.read_text().lower()
    for phrase in ("this wave", "this session", "this issue", "issue #", "the case this issue"):
        assert phrase not in text, f"{doc.name} says {phrase!r}"


def test_the_path_finder_reads_braces_and_suffixes() -> None:
    assert _named_paths("see `reconciler/core/{plan,diff}.py`, and docs/gitops.md.") == {
        "reconciler/core/plan.py",
        "reconciler/core/diff.py",
        "docs/gitops.md",
    }
