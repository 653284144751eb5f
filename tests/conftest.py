from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.emulator import Emulator
from reconciler.interface.cli import main

ROOT = Path(__file__).resolve().parent.parent
DEMO_ORG = ROOT / "examples" / "demo-org.yaml"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's demo target (config, policies, organisation) in a scratch folder."""
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["reconciler", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        return CliResult(int(exit_info.value.code or 0), captured.out, captured.err)

    return run


@pytest.fixture
def demo() -> Emulator:
    return Emulator.from_file(DEMO_ORG)


def with_faults(workspace: Path, faults: str) -> None:
    """Give the demo target's emulator faults (YAML flow mapping), to rehearse a flaky Quick BI from the CLI."""
    config = workspace / "reconciler.yaml"
    text = config.read_text()
    plain = "state: .reconciler/demo-state.json}"
    assert plain in text
    config.write_text(text.replace(plain, f"state: .reconciler/demo-state.json, faults: {faults}}}"))


SALES_BOT = "ccd3428c-dd23-460c-a608-26bae29dffee"


def console_edit(workspace: Path, **module: object) -> None:
    """Someone changes the demo sales-bot module's data range in the Quick BI console."""
    path = workspace / ".reconciler" / "demo-state.json"
    state = json.loads(path.read_text())
    for copilot in state["copilots"]:
        if copilot["id"] == SALES_BOT:
            for key in ("all_cubes", "all_themes", "llm_cubes", "themes"):
                copilot.pop(key, None)
            copilot.update(module)
    path.write_text(json.dumps(state))
