"""`reconciler fmt`: canonical order, comments kept with what they describe, meaning unchanged, idempotent,
and nothing written when any file cannot be read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.policy import format_policy
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import ROOT, CliResult

Run = Callable[..., CliResult]

MESSY = """\
# header: who may ask what
grants:
  # the sales team
  - llm_cubes: [sales]
    to: [sales]   # everyone in it
  - themes: [q4]
    # until the engagement ends
    expires: 2027-06-30
    to: [ivan]
users:
  # the contractor
  ivan: {account: ivan}

  alice:
    dataarts: iam-alice
    account: alice     # her login
version: 1

groups:
  sales:
    members: [alice]
resources:
  themes:
    q4: {name: Q4 review}
  llm_cubes:
    sales: {id: c-sales}
"""

CANONICAL = """\
# header: who may ask what
version: 1
users:
  alice:
    account: alice     # her login
    dataarts: iam-alice
  # the contractor
  ivan: {account: ivan}

groups:
  sales:
    members: [alice]
resources:
  llm_cubes:
    sales: {id: c-sales}
  themes:
    q4: {name: Q4 review}
grants:
  # the sales team
  - to: [sales]   # everyone in it
    llm_cubes: [sales]
  - to: [ivan]
    themes: [q4]
    # until the engagement ends
    expires: 2027-06-30
"""


def test_sections_fields_and_tables_take_canonical_order_with_their_comments() -> None:
    assert format_policy(MESSY, "p.yaml") == CANONICAL
    assert format_policy(CANONICAL, "p.yaml") == CANONICAL


def test_the_repositorys_policies_are_canonical(run_cli: Run) -> None:
    result = run_cli("fmt", "--check")
    assert result.code == 0 and "0 files would be reformatted" in result.err


def test_check_names_each_file_and_exits_2_writing_nothing(workspace: Path, run_cli: Run) -> None:
    (workspace / "policies" / "messy.yaml").write_text(MESSY)
    result = run_cli("fmt", "--check")
    assert result.code == 2 and "would reformat policies/messy.yaml" in result.out
    assert (workspace / "policies" / "messy.yaml").read_text() == MESSY
    assert run_cli("fmt").code == 0
    assert (workspace / "policies" / "messy.yaml").read_text() == CANONICAL
    assert run_cli("fmt", "--check").code == 0


def test_formatting_never_changes_what_the_policy_means(workspace: Path, run_cli: Run) -> None:
    before = run_cli("plan").out
    people = workspace / "policies" / "people.yaml"
    data = yaml.safe_load(people.read_text())
    # the same policy, written in reverse order everywhere a mapping allows it
    people.write_text(yaml.safe_dump(_reversed(data), sort_keys=False))
    assert run_cli("fmt").code == 0
    assert yaml.safe_load(people.read_text()) == data
    assert run_cli("plan").out == before


def _reversed(value: object) -> object:
    if isinstance(value, dict):
        return {k: _reversed(v) for k, v in reversed(value.items())}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


def test_a_broken_file_is_one_line_with_its_line_and_no_file_is_written(workspace: Path, run_cli: Run) -> None:
    (workspace / "policies" / "a-messy.yaml").write_text(MESSY)
    (workspace / "policies" / "b-broken.yaml").write_text("version: 1\nusers:\n  x: {account: a}\n  x: {account: b}\n")
    result = run_cli("fmt")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "b-broken.yaml:4" in result.err and "duplicate" in result.err
    assert (workspace / "policies" / "a-messy.yaml").read_text() == MESSY


def test_anchors_that_reordering_would_break_are_refused() -> None:
    text = "groups:\n  b: {members: [*who]}\n  a: {members: &who [alice]}\nversion: 1\n"
    with pytest.raises(ReconcilerError):
        format_policy(text, "p.yaml")


_names = st.sampled_from(["alice", "bob", "carol", "sales", "ops", "zed"])
_entry = st.fixed_dictionaries({}, optional={"account": _names, "dataarts": _names})


@settings(max_examples=60, deadline=None)
@given(
    users=st.dictionaries(_names, _entry, max_size=4),
    groups=st.dictionaries(_names, st.fixed_dictionaries({"members": st.lists(_names, max_size=3)}), max_size=3),
    order=st.permutations(["version", "users", "groups"]),
    flow=st.booleans(),
    comments=st.booleans(),
)
def test_any_layout_formats_to_the_same_meaning_and_is_stable(
    users: dict[str, object], groups: dict[str, object], order: list[str], flow: bool, comments: bool
) -> None:
    data = {"version": 1, "users": users, "groups": groups}
    text = yaml.safe_dump({key: data[key] for key in order}, sort_keys=False, default_flow_style=flow or None)
    if comments:
        text = "".join(
            f"{line}  # note {n}\n" if line.strip() and ":" in line and "{" not in line else line + "\n"
            for n, line in enumerate(text.splitlines())
        )
    once = format_policy(text, "p.yaml")
    assert yaml.safe_load(once) == yaml.safe_load(text)
    assert format_policy(once, "p.yaml") == once
    assert once.count("# note") == text.count("# note")


def test_the_shipped_pipeline_checks_the_format() -> None:
    workflow = (ROOT / ".github" / "workflows" / "gitops.yml").read_text()
    assert "reconciler fmt --check" in workflow
