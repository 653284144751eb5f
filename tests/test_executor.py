"""Apply under faults, resumption from live state, precise failure reports, and a real kill mid-run."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.adapters.quickbi import ClientSettings, QuickBIAccess
from reconciler.application import usecases
from reconciler.application.workspace import Session
from reconciler.core.apply import Executor, outstanding
from reconciler.core.policy import load_policy
from reconciler.core.snapshot import Snapshot
from reconciler.emulator import Emulator, FaultSettings
from reconciler.emulator.orgfile import OrgFile
from tests.orgs import org_and_policy, write_target

TODAY = dt.datetime.now(dt.UTC).date()
FAULTY = ClientSettings(max_backoff=0.2, timeout=1.0, max_attempts=10, max_concurrency=8)


def _policy(tmp_path: Path, policy: dict) -> object:
    import yaml

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return load_policy([path], TODAY)


async def _converge(emulator: Emulator, endpoint: str | None, policy: object, folder: Path) -> usecases.ApplyResult:  # type: ignore[name-defined]
    async with emulator.client(FAULTY, endpoint=endpoint) as client:
        session = Session("t", QuickBIAccess(client), folder)
        desired, snapshot = await usecases.desired_and_snapshot(session, policy, TODAY)  # type: ignore[arg-type]
        ledger = usecases.ledger_for(session)
        plan, _ = usecases.plan_from(session, desired, snapshot, ledger, TODAY, usecases.PlanOptions())
        assert not plan.empty
        result, mismatches, _ = await usecases.execute_and_verify(session, outstanding(plan, snapshot, ledger), ledger)
        assert not mismatches
        _, after = await usecases.desired_and_snapshot(session, policy, TODAY)  # type: ignore[arg-type]
        replan, _ = usecases.plan_from(session, desired, after, ledger, TODAY, usecases.PlanOptions())
        assert replan.empty, replan.summary
        wanted = {(u, t.kind, t.id) for u, t in desired.cells}
        assert wanted <= set(emulator.backend.live_grants())
        return result


@pytest.mark.parametrize("seed", [0, *(pytest.param(seed, marks=pytest.mark.slow) for seed in range(1, 6))])
def test_seeded_faulty_runs_converge_exactly(tmp_path: Path, seed: int) -> None:
    org, policy_data = org_and_policy(users=90, cubes=14, themes=5, seed=seed)
    faults = FaultSettings(
        qps=60, error_rate=0.1, drop_rate=0.08, slow_rate=0.02, slow_seconds=2, partial_rate=0.05, seed=seed
    )
    emulator = Emulator(OrgFile.model_validate(org), faults=faults)
    before = set(emulator.backend.live_grants())
    policy = _policy(tmp_path, policy_data)
    with emulator.serve() as server:
        result = asyncio.run(_converge(emulator, server.endpoint, policy, tmp_path))
    assert result.ok
    # the protected admin's live grants were not in policy and are still there
    admin = {k for k in before if k[0] == "u00000"}
    assert admin <= set(emulator.backend.live_grants())


def test_failures_are_reported_per_cell(tmp_path: Path) -> None:
    org, policy_data = org_and_policy(users=12, cubes=3, themes=1, seed=1, teams=2)
    emulator = Emulator(OrgFile.model_validate(org), faults=FaultSettings(partial_rate=1.0))
    policy = _policy(tmp_path, policy_data)

    async def go() -> usecases.ApplyResult:  # type: ignore[name-defined]
        async with emulator.client(FAULTY) as client:
            session = Session("t", QuickBIAccess(client), tmp_path)
            desired, snapshot = await usecases.desired_and_snapshot(session, policy, TODAY)  # type: ignore[arg-type]
            ledger = usecases.ledger_for(session)
            plan, changes = usecases.plan_from(session, desired, snapshot, ledger, TODAY, usecases.PlanOptions())
            result, mismatches, _ = await usecases.execute_and_verify(
                session, outstanding(plan, snapshot, ledger), ledger
            )
            assert len(result.failures) == changes.grant_cells + len(changes.revokes)
            assert len(mismatches) == len(result.failures)
            assert not ledger  # nothing succeeded, so nothing is recorded
            return result

    result = asyncio.run(go())
    failure = result.failures[0]
    assert failure.code == "CellFailed" and failure.message == "INTERNAL_ERROR" and failure.user.startswith("u")


def test_resume_is_judged_from_live_state(tmp_path: Path) -> None:
    org, policy_data = org_and_policy(users=60, cubes=8, themes=3, seed=2)
    emulator = Emulator(OrgFile.model_validate(org))
    policy = _policy(tmp_path, policy_data)

    async def go() -> None:
        async with emulator.client() as client:
            session = Session("t", QuickBIAccess(client), tmp_path)
            desired, snapshot = await usecases.desired_and_snapshot(session, policy, TODAY)  # type: ignore[arg-type]
            ledger = usecases.ledger_for(session)
            plan, _ = usecases.plan_from(session, desired, snapshot, ledger, TODAY, usecases.PlanOptions())
            work = outstanding(plan, snapshot, ledger)
            assert work.already_done == 0 and work.batches == plan.batches
            half = [b for b in plan.batches if b.operation == "grant"][:3] + [
                b for b in plan.batches if b.operation == "revoke"
            ][:1]
            # as if an earlier run sent these, then died: live state alone shows them done
            await Executor(QuickBIAccess(client), ledger=ledger).run(replace(work, batches=half))
            _, now = await usecases.desired_and_snapshot(session, policy, TODAY)  # type: ignore[arg-type]
            resumed = outstanding(plan, now, ledger)
            assert resumed.already_done == len(half)
            # batches may overlap: one that shares a cell with a batch sent is planned again for the rest
            sent = {c for b in half if b.operation == "grant" for c in b.cells()}
            untouched = [
                b for b in plan.batches if b not in half and not (b.operation == "grant" and sent & {*b.cells()})
            ]
            assert [b for b in resumed.batches if b in plan.batches] == untouched
            left = {c for b in plan.batches if b not in half and b.operation == "grant" for c in b.cells()} - sent
            assert {c for b in resumed.batches if b.operation == "grant" for c in b.cells()} == left
            # a grant that is live but unrecorded (killed between the call and the ledger) is not done
            user, target = next(iter(half[0].cells()))
            del ledger[(user, target)]
            assert outstanding(plan, now, ledger).already_done == len(half) - 1
            # a revoke undone behind our back (granted again) is work again
            revoked_user, revoked_target = next(c for c in half[-1].cells() if c in work.revoked)
            regranted = dict(now.grants)
            regranted[revoked_user] = regranted[revoked_user] | {revoked_target}
            assert outstanding(plan, Snapshot(regranted), ledger).already_done == len(half) - 2
            calls_before = emulator.backend.authorize_calls
            result, mismatches, _ = await usecases.execute_and_verify(session, outstanding(plan, now, ledger), ledger)
            assert result.ok and not mismatches
            assert emulator.backend.authorize_calls - calls_before == len(plan.batches) - len(half) + 1

    asyncio.run(go())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError("emulator did not start")


@pytest.mark.slow  # a real process killed mid-apply, against a served emulator at a real quota
def test_killed_apply_resumes_and_converges(tmp_path: Path) -> None:
    org, policy_data = org_and_policy(users=400, cubes=30, themes=8, seed=4, teams=20)
    port = _free_port()
    config = write_target(
        tmp_path,
        org,
        policy_data,
        {"quickbi": {"endpoint": f"http://127.0.0.1:{port}"}, "qps": 40, "max_concurrency": 4},
    )
    env = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "test-ak",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "test-secret",
        "HOME": str(tmp_path),
    }
    reconciler = [sys.executable, "-m", "reconciler", "--config", str(config)]
    server = subprocess.Popen(
        [
            *reconciler,
            "emulator",
            "serve",
            "--org",
            str(tmp_path / "org.yaml"),
            "--port",
            str(port),
            "--latency-ms",
            "30",
            "--qps",
            "40",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, server)
        audit = tmp_path / ".reconciler" / "t" / "audit.jsonl"
        victim = subprocess.Popen(
            [*reconciler, "apply", "--auto-approve"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if audit.exists() and audit.read_text().count("SmartqAuthorize") >= 10:
                break
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert victim.returncode == -signal.SIGKILL
        assert (tmp_path / ".reconciler" / "t" / "apply.lock").exists()  # it died holding the lock
        rerun = subprocess.run(
            [*reconciler, "apply", "--auto-approve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert rerun.returncode == 0, rerun.stderr
        final = subprocess.run(
            [*reconciler, "plan", "--detailed-exitcode"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert final.returncode == 0, final.stdout + final.stderr
        assert "No changes" in final.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow  # a real process killed mid-revoke, against a served emulator at a real quota
def test_killed_revoke_is_finished_by_the_next_run(tmp_path: Path) -> None:
    """A kill -9 in the middle of revoking: nothing recorded can make the next run skip an undone revoke."""
    org, policy_data = org_and_policy(users=300, cubes=20, themes=6, seed=5)
    policy_data["grants"] = []  # everyone's managed access ends: a revoke-only apply
    port = _free_port()
    config = write_target(tmp_path, org, policy_data, {"quickbi": {"endpoint": f"http://127.0.0.1:{port}"}, "qps": 40})
    env = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "test-ak",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "test-secret",
        "HOME": str(tmp_path),
    }
    reconciler = [sys.executable, "-m", "reconciler", "--config", str(config)]
    serve = [*reconciler, "emulator", "serve", "--org", str(tmp_path / "org.yaml"), "--port", str(port)]
    serve += ["--latency-ms", "30"]
    server = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, server)
        audit = tmp_path / ".reconciler" / "t" / "audit.jsonl"
        victim = subprocess.Popen(
            [*reconciler, "apply", "--auto-approve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and victim.poll() is None:
            if audit.exists() and audit.read_text().count('"SmartqAuthorize"') >= 3:
                break
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert victim.returncode == -signal.SIGKILL, "the apply finished before it could be killed"
        planned = subprocess.run([*reconciler, "plan"], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert "to revoke" in planned.stdout and " 0 to revoke" not in planned.stdout
        rerun = subprocess.run(
            [*reconciler, "apply", "--auto-approve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert rerun.returncode == 0, rerun.stderr
        final = subprocess.run(
            [*reconciler, "plan", "--detailed-exitcode"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert final.returncode == 0 and "No changes" in final.stdout, final.stdout + final.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
