"""Embed tickets under policy: issued only to whom copilot_embeds lists, within its limits, never twice."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.api import issue_ticket
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import CliResult, console_edit, with_faults

Run = Callable[..., CliResult]
TICKET = re.compile(r"^[0-9a-f-]{36}\n$")


def _tickets(workspace: Path) -> dict[str, dict[str, object]]:
    state = workspace / ".reconciler" / "demo-state.json"
    if not state.exists():
        return {}
    return {t["ticket"]: t for t in json.loads(state.read_text()).get("tickets", [])}


def test_a_listed_user_gets_a_ticket_on_stdout_only(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0  # the module's data range as the policy says
    result = run_cli("-v", "ticket", "issue", "sales-bot", "--user", "alice", "--uses", "3", "--minutes", "30")
    assert result.code == 0 and TICKET.match(result.out), result.err
    ticket = result.out.strip()
    minted = _tickets(workspace)[ticket]
    assert minted["user"] == "u-alice" and minted["uses_left"] == 3
    assert ticket not in result.err
    audit = (workspace / ".reconciler" / "audit.jsonl").read_text()
    assert ticket not in audit and f'"outcome": "ticket {ticket[:6]}****"' in audit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--user", "judy"), "'judy' may not be issued tickets for 'sales-bot'"),
        (("--user", "bob", "--uses", "11"), "11 uses for 60 minutes is more than copilot_embeds.sales-bot"),
        (("--user", "bob", "--minutes", "61"), "1 uses for 61 minutes is more than"),
        (("--user", "nobody"), "no user named 'nobody'"),
    ],
)
def test_anything_the_policy_does_not_allow_is_refused_before_any_call(
    workspace: Path, run_cli: Run, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("ticket", "issue", "sales-bot", *args)
    assert result.code == 1 and message in result.err and len(result.err.strip().splitlines()) == 1
    assert not _tickets(workspace)
    audit = workspace / ".reconciler" / "audit.jsonl"
    assert not audit.exists() or "CreateTicket4Copilot" not in audit.read_text()


def test_an_unknown_embed_names_the_known_ones(workspace: Path, run_cli: Run) -> None:
    result = run_cli("ticket", "issue", "hr-bot", "--user", "alice")
    assert result.code == 1 and "no embed 'hr-bot' in the policy" in result.err
    assert "(embeds: sales-bot, sales-dashboard)" in result.err  # both kinds
    typo = run_cli("ticket", "issue", "sales-dashbaord", "--user", "alice")
    assert typo.code == 1 and "did you mean 'sales-dashboard'?" in typo.err  # a DataArts Insight embed
    assert not (workspace / ".reconciler" / "audit.jsonl").exists()  # refused before any target was opened


def test_an_ambiguous_failure_is_not_retried(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    with_faults(workspace, "{drop_rate: 1.0, actions: [CreateTicket4Copilot]}")
    result = run_cli("ticket", "issue", "sales-bot", "--user", "alice")
    assert result.code == 1 and "Traceback" not in result.err
    assert len(_tickets(workspace)) == 1  # the server minted one; the client did not ask for a second


def test_the_python_api(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    ticket = issue_ticket("sales-bot", user="frank", minutes=5)
    assert TICKET.match(ticket + "\n") and _tickets(workspace)[ticket]["user"] == "u-frank"
    with pytest.raises(ReconcilerError, match="may not be issued tickets"):
        issue_ticket("sales-bot", user="carol")


def test_an_embed_wider_than_its_holders_grants_is_warned_about(workspace: Path, run_cli: Run) -> None:
    sales = workspace / "policies" / "sales.yaml"
    sales.write_text(sales.read_text().replace("data_range: {llm_cubes: [sales, pipeline]}", "data_range: all"))
    validate = run_cli("validate")
    assert validate.code == 0
    assert "copilot embed 'sales-bot' lets 3 ticket holders reach targets their grants do not give them" in (
        validate.err
    )
    assert "copilot embed 'sales-bot' lets" in run_cli("plan").out
    sales.write_text(
        sales.read_text().replace("    max_minutes: 60\n", "    max_minutes: 60\n    widens_access: true\n")
    )
    assert "copilot embed" not in run_cli("validate").err


def test_embed_policy_errors_name_their_line(workspace: Path, run_cli: Run) -> None:
    (workspace / "policies" / "bad-embed.yaml").write_text(
        "version: 1\ncopilot_embeds:\n  x:\n    copilot_id: c\n    to: [ghost]\n    data_range: {llm_cubes: [nope]}\n"
        "    max_uses: 100000\n"
    )
    result = run_cli("validate")
    assert result.code == 1 and "bad-embed.yaml:7: copilot_embeds.x.max_uses" in result.err


def test_no_ticket_while_the_modules_live_data_range_is_not_the_policys(workspace: Path, run_cli: Run) -> None:
    """A ticket reaches what the module reaches live: wider than policy (a console edit) means no ticket."""
    first = run_cli("ticket", "issue", "sales-bot", "--user", "alice")  # the demo module starts at every cube
    assert first.code == 1 and len(first.err.strip().splitlines()) == 1
    assert "refusing: the module's live data range is all LlmCubes, not what copilot_embeds.sales-bot" in first.err
    assert "run apply to set it as the policy says" in first.err
    assert run_cli("apply", "--auto-approve").code == 0
    assert run_cli("ticket", "issue", "sales-bot", "--user", "alice").code == 0
    console_edit(workspace, all_cubes=True)
    widened = run_cli("ticket", "issue", "sales-bot", "--user", "alice")
    assert widened.code == 1 and "live data range is all LlmCubes" in widened.err
    assert len(_tickets(workspace)) == 1  # only the one issued while the module matched policy
