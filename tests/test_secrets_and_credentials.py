"""No secret in any output, under both signatures and faults; missing credentials fail fast in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.emulator import Emulator, FaultSettings
from tests.conftest import DEMO_ORG, ROOT, CliResult

SECRET = "demo-secret"
TOKEN = "sts-token-CAIS9g-never-print-me"
# a value after any secret-bearing parameter or header that is not the *** mask
LEAK = re.compile(r"(Signature|SecurityToken|AccessKeySecret)=(?!\*\*\*)|(?i:x-acs-security-token)[\"']?:\s*[\"']?\w")


def _reconciler(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _workspace(tmp_path: Path, endpoint: str, signature: str) -> None:
    (tmp_path / "policies").mkdir()
    for policy in (ROOT / "policies").glob("*.yaml"):
        (tmp_path / "policies" / policy.name).write_text(policy.read_text())
    target = {"quickbi": {"endpoint": endpoint, "signature": signature}, "qps": 40, "state_dir": ".state"}
    config = {"policies": "policies/", "default_target": "live", "targets": {"live": target}}
    (tmp_path / "reconciler.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize("signature", ["v1", "v3"])
def test_no_secret_reaches_any_output_or_file(tmp_path: Path, signature: str) -> None:
    faults = FaultSettings(error_rate=0.1, drop_rate=0.05, seed=3)
    emulator = Emulator.from_file(DEMO_ORG, faults=faults)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "demo-ak",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
        "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN,
    }
    outputs = []
    with emulator.serve() as server:
        _workspace(tmp_path, server.endpoint, signature)
        for args in (
            ["-v", "plan", "--out", "plan.json", "--format", "json"],
            ["-v", "apply", "plan.json"],
            ["-v", "drift", "--format", "json"],
            ["-v", "apply", "--auto-approve"],
            ["-v", "refresh", "--out", "snapshot.json"],
        ):
            result = _reconciler(args, tmp_path, env)
            assert "Traceback" not in result.stderr, result.stderr
            outputs += [result.stdout, result.stderr]
        assert any("reconciler.quickbi: SmartqAuthorize" in text for text in outputs)  # -v shows our own lines
    files = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for text in outputs + files:
        assert SECRET not in text and TOKEN not in text
        assert not LEAK.search(text), LEAK.search(text)
    # and -v is the project's lines, not the HTTP libraries' debug noise
    assert not any("httpx" in text or "httpcore" in text for text in outputs)


def test_missing_credentials_fail_fast_in_one_line(tmp_path: Path) -> None:
    _workspace(tmp_path, "http://127.0.0.1:9", "v3")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}  # no keys, no profile; metadata probed
    start = time.monotonic()
    result = _reconciler(["plan"], tmp_path, env)
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert result.stderr.startswith("error: no Alibaba Cloud credentials")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert elapsed < 10, elapsed  # the chain alone spends 11-17 s probing a metadata service that is not there


def test_an_unexpected_error_is_one_redacted_line(
    workspace: Path, run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom at /?AccessKeyId=demo-ak&Signature=c2VjcmV0&SecurityToken=tok")

    monkeypatch.setattr("reconciler.application.usecases.make_plan", broken)
    quiet = run_cli("plan")
    assert quiet.code == 1 and len(quiet.err.strip().splitlines()) == 1
    assert "internal error: RuntimeError" in quiet.err and "c2VjcmV0" not in quiet.err and "tok" not in quiet.err
    loud = run_cli("-v", "plan")
    assert "Traceback" in loud.err and "c2VjcmV0" not in loud.err and "SecurityToken=tok" not in loud.err


def _encoded(secret: str) -> list[str]:
    from urllib.parse import quote

    once = quote(secret, safe="")
    return [secret, once, once.lower(), quote(once, safe=""), quote(once, safe="").lower()]


@pytest.mark.parametrize("signature", ["v1", "v3"])
def test_a_vendor_error_that_echoes_the_request_never_shows_the_token(tmp_path: Path, signature: str) -> None:
    """Quick BI's SignatureDoesNotMatch quotes the string it signed: the STS token, twice percent-encoded under
    v1 and as sent under v3. No output of ours may carry it, in any of those encodings."""
    token = "CAIS+9g/never=print==me"  # base64-like, so each encoding differs
    wrong = "wrong-secret-value-0123"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "demo-ak",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": wrong,
        "ALIBABA_CLOUD_SECURITY_TOKEN": token,
    }
    outputs = []
    with Emulator.from_file(DEMO_ORG).serve() as server:
        _workspace(tmp_path, server.endpoint, signature)
        for args in (["plan"], ["-v", "plan"], ["-v", "drift", "--format", "json"]):
            result = _reconciler(args, tmp_path, env)
            assert result.returncode == 1 and "SignatureDoesNotMatch" in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
            outputs += [result.stdout, result.stderr]
    assert any("server string to sign is:" in text for text in outputs)  # the vendor text is shown, scrubbed
    files = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for text in outputs + files:
        for form in [*_encoded(token), *_encoded(wrong)]:
            assert form not in text, form


def test_a_credentials_file_is_never_echoed(tmp_path: Path) -> None:
    _workspace(tmp_path, "http://127.0.0.1:9", "v3")
    profile = tmp_path / ".alibabacloud" / "credentials.ini"
    profile.parent.mkdir()
    secret_line = "LTAI5tSecretWrittenWithoutAKey0123456789"
    profile.write_text(f"[default]\ntype = access_key\naccess_key_id = AKID\n{secret_line}\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    for args in (["plan"], ["-v", "plan"]):
        result = _reconciler(args, tmp_path, env)
        assert result.returncode == 1 and "no Alibaba Cloud credentials" in result.stderr
        assert secret_line not in result.stdout + result.stderr and "Traceback" not in result.stderr
