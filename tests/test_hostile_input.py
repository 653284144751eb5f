"""Hostile and huge input: bounded time and memory, one clean line, exit status 1, nothing applied."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.vocabulary import limits
from tests.conftest import ROOT, CliResult

Run = Callable[..., CliResult]


def _bomb() -> str:
    lines = ["version: 1", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias bomb": (_bomb(), "aliases expand to more than 100,000 values"),
    "20,000 nested [": ("version: 1\nx: " + "[" * 20000 + "]" * 20000 + "\n", "nested more than 64 levels deep"),
    "recursive anchor": ("version: 1\nx: &a [*a]\n", "recursive YAML alias"),
    "3,000-deep mapping": (
        "version: 1\n" + "\n".join(" " * i + f"k{i}:" for i in range(3000)) + " 1\n",
        "nested more than 64 levels deep",
    ),
    "complex key": ("version: 1\n? [a, b]\n: 1\n", "mapping keys must be plain scalars"),
    # found by atheris (tests/fuzz_atheris.py): `=` is YAML's value tag, which has no constructor
    "value-tag key": ("=: 1\n", "invalid mapping key '='"),
    "bad timestamp key": ("version: 1\n2027-02-30: x\n", "invalid mapping key '2027-02-30'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_one_line_fast(workspace: Path, run_cli: Run, case: str) -> None:
    text, message = HOSTILE[case]
    (workspace / "policies" / "hostile.yaml").write_text(text)
    start = time.monotonic()
    for command in (("validate",), ("plan",)):
        result = run_cli(*command)
        assert result.code == 1 and message in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert time.monotonic() - start < 10
    assert not (workspace / ".reconciler" / "audit.jsonl").exists()


def test_the_config_file_has_the_same_limits(workspace: Path, run_cli: Run) -> None:
    (workspace / "reconciler.yaml").write_text(_bomb().replace("version: 1\n", "default_target: demo\n"))
    result = run_cli("plan")
    assert result.code == 1 and "reconciler.yaml:" in result.err and "alias bomb" in result.err


def test_a_diamond_of_nested_groups_is_expanded_once(workspace: Path, run_cli: Run) -> None:
    groups = []
    for level in range(24):
        members = f"[g{level + 1}_0, g{level + 1}_1]" if level < 23 else "[account:alice]"
        groups += [f"  g{level}_{j}: {{members: {members}}}" for j in (0, 1)]
    (workspace / "policies" / "diamond.yaml").write_text(
        "version: 1\ngroups:\n" + "\n".join(groups) + "\ngrants:\n  - {to: [g0_0], themes: [id:t-q4]}\n"
    )
    start = time.monotonic()
    assert run_cli("validate").code == 0
    plan = run_cli("plan")
    assert plan.code == 0 and "u-alice (alice)  theme:t-q4" in plan.out
    assert time.monotonic() - start < 10


def test_a_long_group_chain_is_refused(workspace: Path, run_cli: Run) -> None:
    chain = [f"  g{i}: {{members: [g{i + 1}]}}" for i in range(3000)] + ["  g3000: {members: [account:alice]}"]
    (workspace / "policies" / "chain.yaml").write_text("version: 1\ngroups:\n" + "\n".join(chain) + "\n")
    result = run_cli("validate")
    assert result.code == 1 and "nests groups more than 64 levels deep" in result.err


def test_a_huge_file_of_unknown_keys_is_bounded(tmp_path: Path) -> None:
    policy = tmp_path / "unknown.yaml"
    with policy.open("w") as stream:
        stream.write("version: 1\n")
        stream.writelines(f"unknown_key_{i}: value {i}\n" for i in range(150_000))
    probe = (
        "import resource, sys, time\n"
        "from reconciler.interface.cli import main\n"
        f"sys.argv = ['reconciler', 'validate', {str(policy)!r}]\n"
        "start = time.monotonic()\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(code, round(time.monotonic() - start, 1), peak, file=sys.__stdout__)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    code, seconds, peak_kib = result.stdout.split()
    assert code == "1" and float(seconds) < 30 and int(peak_kib) < 1024 * 1024
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 101 and "… and 149,950 more problems in this file" in lines[-1]


def test_not_a_regular_file_is_refused(workspace: Path, run_cli: Run) -> None:
    big = workspace / "big.yaml"
    with big.open("wb") as stream:
        stream.truncate(17 * 1024 * 1024)
    assert "larger than 16 MiB" in run_cli("validate", str(big)).err
    assert "not a regular file" in run_cli("validate", "/dev/zero").err
    folder = workspace / "policies"
    os.mkfifo(folder / "pipe.yaml")
    result = run_cli("validate")
    assert result.code == 1 and "pipe.yaml: not a regular file" in result.err
    (folder / "pipe.yaml").unlink()
    (folder / "loop.yaml").symlink_to(folder / "loop.yaml")
    assert "loop.yaml: not a regular file" in run_cli("validate").err
    (folder / "loop.yaml").unlink()
    (folder / "dangling.yml").symlink_to(folder / "nowhere.yml")
    assert "dangling.yml: not a regular file" in run_cli("validate").err


def test_subfolders_are_read_only_when_configured_and_hidden_files_never(workspace: Path, run_cli: Run) -> None:
    granting = "version: 1\ngrants:\n  - {to: [account:mallory], llm_cubes: [id:c-budget]}\n"
    (workspace / "policies" / "archive").mkdir()
    (workspace / "policies" / "archive" / "old.yaml").write_text(granting)
    (workspace / "policies" / ".hidden").mkdir()
    (workspace / "policies" / ".hidden" / "x.yml").write_text(granting)
    (workspace / "policies" / ".draft.yaml").write_text(granting)
    plan = run_cli("plan")
    assert plan.code == 0 and "u-mallory (mallory)  llm_cube:c-budget" not in plan.out
    assert "1 policy files in subfolders of" in plan.err and "policies_recursive: true" in plan.err
    config = workspace / "reconciler.yaml"
    config.write_text(config.read_text() + "policies_recursive: true\n")
    recursive = run_cli("plan")
    assert "+ u-mallory (mallory)  llm_cube:c-budget (Budget)" in recursive.out
    assert recursive.out.count("u-mallory (mallory)  llm_cube:c-budget") == 1  # .hidden/ and .draft never


def test_plain_http_to_another_host_is_refused(workspace: Path, run_cli: Run) -> None:
    config = workspace / "reconciler.yaml"
    base = config.read_text()
    config.write_text(base + "  remote:\n    quickbi: {endpoint: 'http://10.1.2.3:8080'}\n")
    result = run_cli("--target", "remote", "plan")
    assert result.code == 1 and "plain http://" in result.err and "allow_insecure_http" in result.err
    assert "Value error" not in result.err
    config.write_text(base + "  local:\n    quickbi: {endpoint: 'http://127.0.0.1:9'}\n")
    assert "plain http://" not in run_cli("--target", "local", "validate").err


def test_mixed_script_names_are_warned_about(workspace: Path, run_cli: Run) -> None:
    (workspace / "policies" / "homoglyph.yaml").write_text(
        "version: 1\nusers:\n  twin: {account: \u0430lice}\nprotected_users: [twin]\n", encoding="utf-8"
    )
    result = run_cli("validate")
    assert "homoglyph.yaml:3: '\u0430lice' mixes Cyrillic and Latin letters" in result.err


def test_outputs_and_state_files_fail_in_one_line(workspace: Path, run_cli: Run) -> None:
    (workspace / "out").mkdir()
    for args in (("plan", "--out", "out"), ("drift", "--out", "out"), ("refresh", "--out", "out")):
        result = run_cli(*args)
        assert result.code == 1 and "cannot write: it is a folder" in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1
    if os.geteuid() != 0:
        locked = workspace / "locked"
        locked.mkdir(mode=0o500)
        assert "cannot write" in run_cli("plan", "--out", "locked/plan.json").err
    assert run_cli("apply", "--auto-approve").code == 0
    (workspace / ".reconciler" / "expiry-ledger.tsv").write_bytes(b"u1\t2099-12-31\t\xff\xfe\n")
    result = run_cli("plan")
    assert result.code == 1 and "not UTF-8 text" in result.err
    org = workspace / "examples" / "demo-org.yaml"
    (workspace / ".reconciler" / "demo-state.json").unlink()
    org.write_bytes(org.read_bytes() + b"\xff\n")
    result = run_cli("drift")
    assert result.code == 1 and "not UTF-8 text" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("option", "message"),
    [(("--qps", "0"), "'--qps': 0.0 is not in the range x>0"), (("--latency-ms", "-5"), "'--latency-ms'")],
)
def test_emulator_options_are_checked(run_cli: Run, option: tuple[str, str], message: str) -> None:
    result = run_cli("emulator", "serve", "--org", str(ROOT / "examples" / "demo-org.yaml"), *option)
    assert result.code == 1 and message in result.err and len(result.err.strip().splitlines()) == 1


# every JSON file the product reads, where a run finds it, and what to run
_STATE = ".reconciler"
JSON_FILES = {
    "snapshot": ("snap.json", ("plan", "--snapshot", "snap.json")),
    "managed-target record": (f"{_STATE}/managed-targets.json", ("plan",)),
    "saved plan": ("plan.json", ("apply", "plan.json", "--auto-approve")),
}
_KINDS = {  # what the one line must say (one of)
    "fifo": ("not a regular file",),
    "a symlink to /dev/zero": ("not a regular file", "a symbolic link"),
    "nested 5,000 deep": ("nested more than 200 levels deep",),
    "5,001-digit number": ("number out of range",),
    "not UTF-8": ("not UTF-8 text",),
}


def _plant(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "a symlink to /dev/zero":
        os.symlink("/dev/zero", path)
    elif kind == "nested 5,000 deep":
        path.write_text('{"format_version": 1, "users": ' + "[" * 5000 + "]" * 5000 + "}")
    elif kind == "5,001-digit number":
        path.write_text('{"format_version": ' + "9" * 5001 + "}")
    else:
        path.write_bytes(b'{"format_version": 1, "users": {"\xff": []}}')


@pytest.mark.parametrize("kind", sorted(_KINDS))
@pytest.mark.parametrize("name", sorted(JSON_FILES))
def test_every_json_file_is_bounded_and_one_line(workspace: Path, name: str, kind: str) -> None:
    """Each case in a process of its own, killed after 60 s and at 1 GiB: a hang or a blow-up fails."""
    relative, command = JSON_FILES[name]
    _plant(workspace / relative, kind)
    started = time.monotonic()
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
    done = subprocess.run(
        [sys.executable, "-c", limit + "from reconciler.interface.cli import main; main()", *command],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 60
    errors = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert relative.split("/")[-1] in errors[0] and any(said in errors[0] for said in _KINDS[kind]), errors[0]
    assert "internal error" not in errors[0] and "Traceback" not in done.stderr


def test_a_fifo_as_the_lock_does_not_hang_apply(workspace: Path) -> None:
    lock = workspace / _STATE / "apply.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(lock)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "apply.lock: the state holds not a regular file" in done.stderr, done.stderr


def test_a_policy_past_the_size_limit_is_refused_until_the_config_raises_it(workspace: Path, run_cli: Run) -> None:
    big = workspace / "policies" / "big.yaml"
    big.write_text("version: 1\n" + "# padding\n" * (17 * 1024 * 1024 // 10))
    refused = run_cli("validate")
    assert refused.code == 1 and len(refused.err.strip().splitlines()) == 1
    assert "big.yaml" in refused.err and "larger than 16 MiB" in refused.err and "raise limits:" in refused.err
    assert _validates_with_limits(workspace, run_cli, "{policy_file_mib: 32}")


def test_group_nesting_past_the_limit_is_refused_until_the_config_raises_it(workspace: Path, run_cli: Run) -> None:
    chain = {f"g{i}": {"members": [f"g{i + 1}"]} for i in range(70)}
    chain["g70"] = {"members": ["alice"]}
    (workspace / "policies" / "chain.yaml").write_text(yaml.safe_dump({"version": 1, "groups": chain}))
    assert "nests groups more than 64 levels deep" in run_cli("validate").err
    assert _validates_with_limits(workspace, run_cli, "{group_nesting: 100}")


def _validates_with_limits(workspace: Path, run_cli: Run, raised: str) -> bool:
    """`validate` passes once the config raises the limits (restored for the other tests afterwards)."""
    config = workspace / "reconciler.yaml"
    config.write_text(config.read_text() + f"limits: {raised}\n")
    try:
        return run_cli("validate").code == 0
    finally:
        limits.use(limits.DEFAULTS)
