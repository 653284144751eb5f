"""The policy language: valid files load and merge; every class of mistake is reported with file:line."""

from __future__ import annotations

import datetime as dt
import gc
from pathlib import Path
from textwrap import dedent

import pytest

from reconciler.core.policy import NEVER, Rolling, load_policy
from reconciler.core.policy import _load as policy_loading
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.yamlfile import LocatedDocument, read_yaml

TODAY = dt.date(2026, 11, 23)
ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text).lstrip())
    return path


def errors_of(*paths: Path) -> list[str]:
    with pytest.raises(ReconcilerError) as info:
        load_policy(list(paths), TODAY)
    return [str(p) for p in info.value.problems]


def test_repository_policies_load() -> None:
    policy = load_policy([ROOT / "policies"], TODAY)
    assert {"sales", "finance", "leadership"} <= set(policy.groups)
    assert policy.digest.startswith("sha256:")
    assert len(policy.files) == 5 and len(policy.tests) == 4


def test_defaults_and_expiry_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        defaults: {expires: 2027-01-31}
        manage_all_targets: true
        users: {a: {account: a}}
        grants:
          - {to: [a], llm_cubes: [id:c1]}
          - {to: [a], themes: [id:t1], expires: never}
          - {to: [a], themes: [id:t2], expires: {ttl: 30d, renew_within: 7d}}
        """,
    )
    rules = load_policy([path], TODAY).rules
    assert [r.expires for r in rules] == [dt.date(2027, 1, 31), NEVER, Rolling(ttl=30, renew_within=7)]


def test_files_merge_and_identical_redefinitions_are_fine(tmp_path: Path) -> None:
    a = write(tmp_path, "version: 1\nusers: {a: {account: a}}\nresources: {llm_cubes: {c: {id: c}}}\n", "a.yaml")
    a.write_text(a.read_text() + "grants: [{to: [a], llm_cubes: [id:c]}]\n")
    b = write(
        tmp_path,
        "version: 1\nusers: {a: {account: a}}\nmanage_all_targets: true\ngrants: [{to: [a], themes: [id:t]}]\n",
        "b.yaml",
    )
    policy = load_policy([a, b], TODAY)
    assert len(policy.rules) == 2


CASES = [
    ("syntax", "version: 1\ngrants: [\n  - to: [a\n", "policy.yaml:3:", "YAML syntax error"),
    (
        "duplicate key",
        "version: 1\nusers:\n  a: {account: a}\n  a: {account: b}\n",
        "policy.yaml:4:",
        "duplicate key 'a'",
    ),
    ("wrong type", "version: 1\ngrants:\n  - to: alice\n    llm_cubes: [id:c]\n", "policy.yaml:3:", "grants.0.to"),
    ("unknown key", "version: 1\nusers:\n  a: {acount: a}\n", "policy.yaml:3:", "unknown key 'acount'"),
    (
        "unknown alias",
        "version: 1\nusers: {a: {account: a}}\ngrants:\n  - to: [a, bob]\n    llm_cubes: [id:c]\n",
        "policy.yaml:4:",
        "unknown user or group 'bob'",
    ),
    (
        "group cycle",
        "version: 1\ngroups:\n  x: {members: [y]}\n  y: {members: [x]}\n",
        "policy.yaml:3:",
        "group cycle: x -> y -> x",
    ),
    (
        "empty group",
        "version: 1\ngroups:\n  ghosts: {members: []}\n",
        "policy.yaml:3:",
        "group 'ghosts' expands to nobody",
    ),
    (
        "invalid date",
        "version: 1\nusers: {a: {id: u}}\ngrants:\n  - to: [a]\n    themes: [id:t]\n    expires: 2027-02-30\n",
        "policy.yaml:6:",
        "invalid value '2027-02-30'",
    ),
    (
        "released by alias",
        "version: 1\nreleased: {llm_cubes: [old]}\n",
        "policy.yaml:2:",
        "released llm_cube 'old' must be written id:<ID>",
    ),
    (
        "released and declared",
        "version: 1\nresources: {llm_cubes: {sales: {id: c-s}}}\nreleased:\n  llm_cubes: [id:c-s]\n",
        "policy.yaml:4:",
        "llm_cube 'id:c-s' is both released and declared under resources as 'sales'",
    ),
    ("no targets", "version: 1\nusers: {a: {id: u}}\ngrants:\n  - to: [a]\n", "policy.yaml:4:", "grant has no targets"),
    (
        "target twice",
        "version: 1\nusers: {a: {id: u}}\ngrants:\n  - to: [a]\n    llm_cubes: [id:c, id:c]\n",
        "policy.yaml:5:",
        "target 'id:c' is listed twice",
    ),
    (
        "user and group",
        "version: 1\nusers: {ops: {id: u}}\ngroups:\n  ops: {members: [id:v]}\n",
        "policy.yaml:4:",
        "'ops' is both a user alias",
    ),
    ("bad version", "version: 2\n", "policy.yaml:1:", "unsupported policy version"),
    (
        "not a date",
        "version: 1\nusers: {a: {id: u}}\ngrants:\n  - to: [a]\n    themes: [id:t]\n    expires: soon\n",
        "policy.yaml:6:",
        "expected 'never', a date",
    ),
    (
        "unknown resource",
        "version: 1\nusers: {a: {id: u}}\ngrants:\n  - to: [a]\n    themes: [q9]\n",
        "policy.yaml:5:",
        "unknown theme 'q9'",
    ),
    (
        "two user refs",
        "version: 1\nusers:\n  a: {account: a, id: u}\n",
        "policy.yaml:3:",
        "exactly one of 'account' or 'id'",
    ),
    (
        "bad ttl",
        "version: 1\ndefaults:\n  expires: {ttl: 7d, renew_within: 30d}\n",
        "policy.yaml:3:",
        "renew_within must be shorter than ttl",
    ),
]


@pytest.mark.parametrize(("text", "where", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_reported_with_its_line(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = write(tmp_path, text)
    problems = errors_of(path)
    assert any(p.startswith(str(tmp_path / where)) and message in p for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_every_error_in_every_file_is_reported(tmp_path: Path) -> None:
    a = write(tmp_path, "version: 1\nusers:\n  a: {acount: a}\n", "a.yaml")
    b = write(tmp_path, "version: 1\ngroups:\n  g: {members: []}\n  h: {members: []}\n", "b.yaml")
    problems = errors_of(a, b)
    # one run reports both files: a.yaml's unknown key, and b.yaml's two empty groups
    assert [p.split(": ", 1)[0] for p in problems] == [f"{a}:3", f"{b}:3", f"{b}:4"]
    fixed = write(tmp_path, "version: 1\nusers:\n  a: {account: a}\n", "a.yaml")
    problems = errors_of(fixed, b)
    assert [p.split(": ", 1)[0] for p in problems] == [f"{b}:3", f"{b}:4"]


def test_conflicting_definitions_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, "version: 1\nusers: {a: {account: a}}\n", "a.yaml")
    b = write(tmp_path, "version: 1\nusers:\n  a: {account: z}\n", "b.yaml")
    (problem,) = errors_of(a, b)
    assert problem.startswith(f"{b}:3:") and "defined differently at" in problem


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    assert "no such file or folder" in errors_of(tmp_path / "nope.yaml")[0]
    (tmp_path / "empty").mkdir()
    assert "no policy files" in errors_of(tmp_path / "empty")[0]


def test_every_error_in_every_file_comes_out_in_one_run(tmp_path: Path) -> None:
    """A file that does not validate leaves the others checked, across files too, without false alarms about
    names it defines."""
    a = write(tmp_path, "version: 1\nusres: {}\n", "a.yaml")  # unknown key
    b = write(
        tmp_path,
        "version: 1\nusers: {carol: {account: carol}}\n"
        "grants:\n  - {to: [carol], themes: [id:t], expires: 2027-02-30}\n",
        "b.yaml",
    )  # a bad date
    c = write(
        tmp_path,
        "version: 1\nmanage_all_targets: true\ngrants:\n  - {to: [nobody, carol], themes: [id:t]}\n",
        "c.yaml",
    )  # an unknown user; carol is defined in b.yaml, which did not validate
    with pytest.raises(ReconcilerError) as caught:
        load_policy([a, b, c], TODAY)
    messages = [str(problem) for problem in caught.value.problems]
    assert any("a.yaml:2: unknown key 'usres'" in m for m in messages)
    assert any("b.yaml:4:" in m and "date" in m for m in messages)
    assert any("c.yaml:4: unknown user or group 'nobody'" in m for m in messages)
    assert not any("'carol'" in m for m in messages)


def test_loading_pauses_the_collector_and_switches_it_back_on_even_when_the_files_are_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector_during_reads: list[bool] = []

    def watched_read(path: Path) -> tuple[LocatedDocument | None, list[Problem]]:
        collector_during_reads.append(gc.isenabled())
        return read_yaml(path)

    monkeypatch.setattr(policy_loading, "read_yaml", watched_read)
    good = write(tmp_path, "version: 1\ngroups: {team: {members: [id:u-1]}}\n")
    bad = write(tmp_path, "version: 1\ngroups: {team: {members: 3}}\n", "bad.yaml")
    assert gc.isenabled()
    load_policy([good], TODAY)
    assert gc.isenabled()
    with pytest.raises(ReconcilerError):
        load_policy([bad], TODAY)
    assert gc.isenabled()
    assert collector_during_reads == [False, False]
    gc.unfreeze()
