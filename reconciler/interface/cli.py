"""The `reconciler` command line (reference: README and docs/reference.md)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from reconciler.adapters.dataarts import DataArtsError
from reconciler.adapters.policy_repo import Commit, PolicyRepo
from reconciler.adapters.quickbi import QuickBIError, TransportFailure
from reconciler.api import issue_ticket_async
from reconciler.application import starter, usecases
from reconciler.application.config import Config, config_changes, load_config, use_limits
from reconciler.application.workspace import open_insight, open_target
from reconciler.core.access import AccessLine
from reconciler.core.diff import DiffOptions
from reconciler.core.drift import DriftReport
from reconciler.core.importer import Imported
from reconciler.core.plan import Plan
from reconciler.core.policy import Policy, format_policy, load_policy, policy_files
from reconciler.core.snapshot import Snapshot
from reconciler.core.state import AppliedCommit, read_applied
from reconciler.core.ticket_audit import AuditReport
from reconciler.interface import render
from reconciler.interface.progress import progress
from reconciler.interface.schema import schemas
from reconciler.vocabulary import limits
from reconciler.vocabulary.base import plural, run
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.files import read_regular_file, write_text_file
from reconciler.vocabulary.redaction import configure_logging, one_line, redact

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
FC = TypeVar("FC", bound=Callable[..., Any])
MAX_PRINTED_PROBLEMS = 100


def _say(line: str) -> None:
    """One line on stderr, whatever the names inside it hold."""
    click.echo(one_line(line), err=True)


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class _Context:
    def __init__(self, config_path: Path, target: str | None) -> None:
        self.config_path = config_path
        self.target = target
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            use_limits(self._config)
        return self._config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quickbi-reconciler", message="%(prog)s %(version)s")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("reconciler.yaml"),
    show_default=True,
    help="Configuration file.",
)
@click.option("--target", default=None, help="Target name (default: the config's default_target).")
@click.option("-v", "--verbose", is_flag=True, help="Log each API call (never its secrets).")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, target: str | None, verbose: bool) -> None:
    """Access-as-code for Quick BI Smart Q: plan and apply SmartqAuthorize grants from YAML policy."""
    configure_logging(verbose)
    ctx.obj = _Context(config_path, target)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "github"]),
    default="text",
    show_default=True,
    help="github: errors and warnings as GitHub annotations, shown on the pull request's lines.",
)
@click.pass_obj
def validate(obj: _Context, paths: tuple[Path, ...], fmt: str) -> None:
    """Load and check policies offline, and run their tests against an emulator target's directory."""
    if fmt == "text":
        _validate(obj, paths, _warn)
        return
    try:
        _validate(obj, paths, lambda problem: click.echo(github_annotation("warning", problem)))
    except ReconcilerError as exc:
        for problem in exc.problems:
            click.echo(github_annotation("error", problem))
        sys.exit(EXIT_ERROR)


def _validate(obj: _Context, paths: tuple[Path, ...], warn: Callable[[Problem], None]) -> None:
    policy = (
        _load_policy(list(paths), warn=warn) if paths else _load_policy(obj.config.policy_paths(), obj.config, warn)
    )
    click.echo(
        f"{plural(len(policy.files), 'policy file')} OK: {plural(len(policy.rules), 'grant')}, "
        f"{plural(len(policy.groups), 'group')}."
    )
    if not policy.tests and not policy.embeds:
        return
    name, target = obj.config.target(obj.target)
    if target.emulator is None:
        click.echo(f"{len(policy.tests)} policy tests not run offline: target '{name}' is live (plan runs them).")
        return

    async def run_tests() -> tuple[list[Problem], list[Problem]]:
        async with open_target(obj.config, obj.target) as session:
            return await usecases.check_policy(session, policy, _today())

    failures, warnings = run(run_tests())
    for warning in warnings:
        warn(warning)
    if failures:
        raise ReconcilerError(failures)
    if policy.tests:
        click.echo(f"{len(policy.tests)} policy tests passed against target '{name}'.")


def github_annotation(level: str, problem: Problem) -> str:
    """A GitHub Actions workflow command (`::error file=…,line=…::message`), escaped as GitHub documents, so
    that the problem is shown on the pull request's line."""

    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    where = f" file={prop(problem.location.file)},line={problem.location.line}" if problem.location else ""
    message = problem.message if not problem.hint else f"{problem.message} ({problem.hint})"
    return f"::{level}{where}::{data(message)}"


@cli.command("refresh")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Snapshot file to write.")
@click.pass_obj
def refresh_command(obj: _Context, out: Path) -> None:
    """Read live grants of every user into a snapshot file."""

    async def go() -> Snapshot:
        async with open_target(obj.config, obj.target) as session:
            return await usecases.take_snapshot(session, progress)

    snapshot = run(go())
    write_text_file(out, snapshot.to_json())
    cells = sum(1 for _ in snapshot.cells())
    click.echo(f"Wrote {out}: {plural(len(snapshot.grants), 'user')}, {plural(cells, 'live grant')}.")


def _load_policy(
    paths: list[Path], config: Config | None = None, warn: Callable[[Problem], None] | None = None
) -> Policy:
    """Load the policies and say each warning (e.g. a grant whose date has passed) on stderr, with its line;
    warnings about DataArts Insight embeds only where a DataArts Insight target is configured."""
    policy = load_policy(paths, _today(), recursive=config is not None and config.policies_recursive)
    dataarts = config is None or any(target.dataarts is not None for target in config.targets.values())
    for warning in [*policy.warnings, *(policy.dataarts_warnings if dataarts else ())]:
        (warn or _warn)(warning)
    return policy


def _warn(problem: Problem) -> None:
    _say(f"warning: {problem}")


def _plan_options(
    additive: bool,
    allow_regrant: bool,
    unrecorded: str,
    only_user: tuple[str, ...] = (),
    only_group: tuple[str, ...] = (),
    only_resource: tuple[str, ...] = (),
) -> usecases.PlanOptions:
    return usecases.PlanOptions(
        DiffOptions(additive, unrecorded),  # type: ignore[arg-type]
        allow_regrant,
        only_user,
        only_group,
        only_resource,
    )


def _format_plan(plan: Plan, fmt: str, max_chars: int | None = None) -> str:
    text = render.PLAN[fmt](plan, render.Options(max_chars=max_chars))
    return _coloured(text) if fmt == "text" else text


def _format_option(registry: Mapping[str, object], name: str = "fmt") -> Callable[[FC], FC]:
    """`--format`, offering exactly the formats `render` has for the report kind."""
    return click.option("--format", name, type=click.Choice(list(registry)), default="text", show_default=True)


_LINE_COLOURS = {"+": "green", "-": "red", "~": "yellow"}


def _coloured(text: str) -> str:
    """Plan lines in colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return "".join(
        click.style(line, fg=_LINE_COLOURS[line[0]]) if line[:1] in _LINE_COLOURS else line
        for line in text.splitlines(keepends=True)
    )


_max_chars = click.option(
    "--max-chars",
    type=click.IntRange(min=1000),
    help="Markdown only: a bounded summary of at most this many characters (GitHub comments take 65,536).",
)


_plan_flags = [
    click.option("--additive", is_flag=True, help="Never revoke; only grant."),
    click.option(
        "--allow-regrant",
        is_flag=True,
        help="Let grant batches re-grant live cells whose recorded expiry equals the batch's.",
    ),
    click.option(
        "--unrecorded",
        type=click.Choice(["trust", "regrant"]),
        default="trust",
        show_default=True,
        help="A live desired grant with no ledger record: trust its expiry, or re-grant to pin it.",
    ),
    click.option("--user", "only_user", multiple=True, help="Limit to this user (alias, account, id:…); repeatable."),
    click.option("--group", "only_group", multiple=True, help="Limit to this group's members; repeatable."),
    click.option("--resource", "only_resource", multiple=True, help="Limit to this target (alias, name, id:…)."),
]


def _with_plan_flags(function: Callable[..., None]) -> Callable[..., None]:
    """The flags that shape a plan, handed to the command as one `options: PlanOptions`."""

    @functools.wraps(function)
    def command(
        *args: Any,
        additive: bool,
        allow_regrant: bool,
        unrecorded: str,
        only_user: tuple[str, ...],
        only_group: tuple[str, ...],
        only_resource: tuple[str, ...],
        **kwargs: Any,
    ) -> None:
        options = _plan_options(additive, allow_regrant, unrecorded, only_user, only_group, only_resource)
        function(*args, options=options, **kwargs)

    wrapped: Callable[..., None] = command
    for flag in reversed(_plan_flags):
        wrapped = flag(wrapped)
    return wrapped


@cli.command()
@click.option("--snapshot", "snapshot_path", type=click.Path(path_type=Path), help="Plan offline from a snapshot.")
@click.option("--out", type=click.Path(path_type=Path), help="Also save the plan (JSON) here.")
@_format_option(render.PLAN)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes.")
@click.option(
    "--changed-from",
    "changed_from",
    type=click.Path(path_type=Path, exists=True),
    help="A checkout of the base (e.g. a pull request's target branch): read live only the users the change "
    "touches, or everyone when the change needs it (configuration, managed targets).",
)
@_max_chars
@_with_plan_flags
@click.pass_obj
def plan(
    obj: _Context,
    snapshot_path: Path | None,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    changed_from: Path | None,
    max_chars: int | None,
    options: usecases.PlanOptions,
) -> None:
    """Diff policy against live grants and show the batched plan."""
    if changed_from is not None and snapshot_path is not None:
        raise ReconcilerError("--changed-from reads the users it needs: it does not take --snapshot")
    result = run(_make_plan(obj, options, snapshot_path, changed_from))
    click.echo(_format_plan(result, fmt, max_chars), nl=False)
    if result.failed_tests:
        for failure in result.failed_tests:
            _say(f"error: {failure}")
        sys.exit(EXIT_ERROR)  # and no plan file: a plan that breaks the policy's own tests is not to be applied
    if out is not None:
        result.write(out)
    if detailed_exitcode and not result.empty:
        sys.exit(EXIT_CHANGES)


def _base_of_change(folder: Path, obj: _Context) -> tuple[Policy | None, str | None]:
    """The base of a pull request (a checkout of its target branch), loaded with its own configuration (None
    when it cannot be), and why a plan of the change must read everyone, if it must (None: reading the touched
    users is exact).

    The base's config is the file at the same path as `--config`, inside `folder`. A folder without one (the
    base's policy folder alone, or a branch before the first config) cannot show a change of configuration,
    so its plan is a full one."""
    relative = obj.config_path if not obj.config_path.is_absolute() else Path(obj.config_path.name)
    return _base_of_config(folder / relative, obj)


def _base_of_config(base_config_path: Path, obj: _Context) -> tuple[Policy | None, str | None]:
    """The base policy loaded with the configuration at `base_config_path` (see `_base_of_change`)."""
    if not base_config_path.is_file():
        return None, f"the base has no configuration to compare with ({base_config_path} does not exist)"
    try:
        base_config = load_config(base_config_path)
    except ReconcilerError as exc:
        return None, f"the base's configuration does not load ({exc.problems[0]})"
    try:
        base = load_policy(base_config.policy_paths(), _today(), base_config.policies_recursive)
    except ReconcilerError as exc:
        if "no policy files" not in exc.problems[0].message:  # else: the pull request that adds the first policy
            return None, f"the base's policies do not load ({exc.problems[0]})"
        base = Policy()
    target = obj.target or obj.config.default_target or ""
    changes = config_changes(base_config, obj.config, target)
    if obj.target is None and base_config.default_target != obj.config.default_target:
        changes.insert(0, "default_target")
    return base, f"the configuration changed ({', '.join(changes)})" if changes else None


async def _make_plan(
    obj: _Context, options: usecases.PlanOptions, snapshot_path: Path | None, changed_from: Path | None
) -> Plan:
    policy = _load_policy(obj.config.policy_paths(), obj.config)
    snapshot = Snapshot.read(snapshot_path) if snapshot_path else None
    base, why_full = _base_of_change(changed_from, obj) if changed_from else (None, None)
    async with open_target(obj.config, obj.target) as session:
        if base is not None:
            return await usecases.make_changed_plan(session, policy, base, _today(), options, progress, why_full)
        notes = [usecases.full_plan_note(why_full)] if why_full else []
        return await usecases.make_plan(session, policy, _today(), options, snapshot, progress, notes)


@cli.command()
@click.argument("plan_file", type=click.Path(path_type=Path))
@_format_option(render.PLAN)
@_max_chars
def show(plan_file: Path, fmt: str, max_chars: int | None) -> None:
    """Render a saved plan."""
    click.echo(_format_plan(Plan.read(plan_file), fmt, max_chars), nl=False)


@cli.command()
@click.argument("plan_file", required=False, type=click.Path(path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking (required without a terminal).")
@click.option("--max-revokes", type=click.IntRange(min=0), help="Stop if the plan revokes more cells than this.")
@click.option(
    "--max-revoke-ratio",
    type=click.FloatRange(0, 1),
    help="Stop if the plan revokes more than this share of currently granted managed cells.",
)
@click.option("--break-lock", is_flag=True, help="Remove a stale lock left by a dead apply.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 (not 1) when a saved plan was applied but lacks changes today's policy requires.",
)
@click.option(
    "--incremental",
    is_flag=True,
    help="Read live only the users whose access changed since the commit the last complete apply recorded "
    "(the apply on merge); a full apply, saying why, when that would not be exact.",
)
@click.option(
    "--verify",
    type=click.Choice(["sampled", "full"]),
    default="sampled",
    show_default=True,
    help="Read back everyone touched (full), or everyone revoked from or failed plus a sample of clean grants.",
)
@_with_plan_flags
@click.pass_obj
def apply(
    obj: _Context,
    plan_file: Path | None,
    auto_approve: bool,
    max_revokes: int | None,
    max_revoke_ratio: float | None,
    break_lock: bool,
    detailed_exitcode: bool,
    verify: str,
    incremental: bool,
    options: usecases.PlanOptions,
) -> None:
    """Apply a saved plan (refused if stale), or plan, confirm and apply."""
    if plan_file is None and not auto_approve and not sys.stdin.isatty():
        raise ReconcilerError("no terminal to confirm on: pass --auto-approve, or apply a saved plan file")
    breakers = usecases.Breakers(max_revokes, max_revoke_ratio)
    if plan_file is not None:
        _refuse_plan_flags(options, incremental)
    elif incremental and options.limited:
        raise ReconcilerError(
            Problem("--incremental applies the whole change: it does not take --user, --group or --resource")
        )
    saved = Plan.read(plan_file) if plan_file else None
    flags = _ApplyFlags(auto_approve, break_lock, verify == "full", detailed_exitcode, incremental)
    sys.exit(run(_apply(obj, saved, options, breakers, flags)))


@dataclass(frozen=True)
class _ApplyFlags:
    auto_approve: bool
    break_lock: bool
    verify_all: bool
    detailed_exitcode: bool
    incremental: bool


def _refuse_plan_flags(options: usecases.PlanOptions, incremental: bool) -> None:
    """A saved plan decides what is sent: a flag that would change it has no effect, so it is refused."""
    given = [
        flag
        for flag, on in (
            ("--user", bool(options.only_users)),
            ("--group", bool(options.only_groups)),
            ("--resource", bool(options.only_resources)),
            ("--additive", options.diff.additive),
            ("--allow-regrant", options.allow_regrant),
            ("--unrecorded regrant", options.diff.unrecorded != "trust"),
            ("--incremental", incremental),
        )
        if on
    ]
    if given:
        raise ReconcilerError(
            Problem(
                f"apply PLAN does not take {', '.join(given)}: the saved plan decides what is sent",
                hint=f"make the plan with them (plan {given[0].split()[0]} … --out PLAN), or apply without a plan",
            )
        )


async def _apply(
    obj: _Context,
    saved: Plan | None,
    options: usecases.PlanOptions,
    breakers: usecases.Breakers,
    flags: _ApplyFlags,
) -> int:
    repo = PolicyRepo(obj.config_path)
    head = repo.head(obj.config.policy_paths())
    policy = _load_policy(obj.config.policy_paths(), obj.config)
    if head.commit is not None and repo.head(obj.config.policy_paths()) != head:
        head = Commit(None, "the policy repository changed while the policies were read")  # not that commit

    def confirm(plan: Plan) -> bool:
        if saved is not None:
            return True  # reviewed when it was saved, and admitted against today's policy and live state
        click.echo(render.plan_text(plan), nl=False)
        return flags.auto_approve or click.confirm("Apply this plan?", default=False)

    async with open_target(obj.config, obj.target, exclusive=True, break_lock=flags.break_lock) as session:
        increment = _increment(obj, session.state_dir, session.name, repo, head) if flags.incremental else None
        outcome = await usecases.apply(
            session,
            policy,
            _today(),
            confirm,
            saved,
            options,
            breakers,
            progress,
            flags.verify_all,
            increment,
            head.commit,
        )
    if outcome.full_reason:
        _say(f"note: {outcome.full_reason}")
    status = _report_apply(outcome, saved, flags.detailed_exitcode)
    if outcome.recorded:  # after the summary, which it qualifies
        _say(f"state: commit {outcome.recorded[:12]} recorded as applied (an --incremental apply starts from it)")
    return status


def _report_apply(outcome: usecases.ApplyOutcome, saved: Plan | None, detailed_exitcode: bool) -> int:
    """What the apply did, and its exit status."""
    if outcome.unread and saved is not None:
        _say(
            f"note: the plan is partial: live grants were read only for the users it touches; changes today's "
            f"policy requires for the other {plural(outcome.unread, 'user')} were not looked for"
        )
    if outcome.nothing_to_do:
        done = outcome.result.resumed
        if done:
            click.echo(
                f"Nothing to do: {'the' if done == 1 else 'all'} {plural(done, 'batch', 'batches')} of the plan "
                f"{'is' if done == 1 else 'are'} already in place."
            )
        elif not outcome.lacking:
            click.echo(render.nothing_to_do(outcome.plan))
            skipped = outcome.plan.summary.skipped_revokes
            if skipped:
                click.echo(f"{plural(skipped, 'revoke')} skipped by --additive.")
        return _lacking_exit(outcome, detailed_exitcode) or EXIT_OK
    if outcome.cancelled:
        click.echo("Apply cancelled.")
        return EXIT_ERROR
    result = outcome.result
    for problem in outcome.embed_failures:
        _say(f"failed: {problem}")
    for failure in result.failures:
        _say(f"failed: {failure}")
    reported = {(f.user, f.target) for f in result.failures}
    for (user, target), problem in sorted(outcome.mismatches.items()):
        if (user, target) not in reported:
            _say(f"verify: {user} {target}: {problem}")
    resumed = f", {result.resumed:,} already in place" if result.resumed else ""
    click.echo(
        f"Apply {'complete' if outcome.ok else 'incomplete'}: {plural(result.calls, 'call')} for "
        f"{plural(result.planned_calls, 'planned batch', 'planned batches')}{resumed}; "
        f"{plural(len(result.failures), 'cell')} failed"
        + (
            f"; {len(outcome.plan.embed_changes) - len(outcome.embed_failures)} of {len(outcome.plan.embed_changes)} "
            "embed data ranges set."
            if outcome.plan.embed_changes
            else "."
        )
        + (
            f" Verified: {outcome.verification.describe()}."
            if outcome.verification and outcome.verification.touched
            else ""
        )
    )
    return EXIT_ERROR if not outcome.ok else _lacking_exit(outcome, detailed_exitcode) or EXIT_OK


def _increment(obj: _Context, state_dir: Path, target: str, repo: PolicyRepo, head: Commit) -> usecases.Increment:
    """What an incremental apply plans from (the policies at the commit the last complete apply recorded), or
    why it must be a full apply."""
    if head.commit is None:
        return usecases.Increment(None, why_full=head.why_not)
    applied = read_applied(state_dir, target)
    if not isinstance(applied, AppliedCommit):
        return usecases.Increment(None, why_full=applied)
    since = applied.commit
    if not repo.is_ancestor(since, head.commit):
        return usecases.Increment(
            None,
            since,
            f"the last applied commit {since[:12]} is not an ancestor of {head.commit[:12]} in this checkout "
            "(history rewritten, or a shallow clone: check out with the full history)",
        )
    try:
        with repo.files_at(since, obj.config.policy_paths()) as base_config:
            base, why_full = _base_of_config(base_config, obj)
    except LookupError as exc:
        return usecases.Increment(None, since, str(exc))
    return usecases.Increment(base, since, why_full)


def _lacking_exit(outcome: usecases.ApplyOutcome, detailed_exitcode: bool) -> int | None:
    """A saved plan that leaves out changes today's policy requires: say how many, and do not exit 0."""
    if not outcome.lacking:
        return None
    partial = f" (it is partial: {outcome.plan.partial})" if outcome.plan.partial else ""
    _say(
        f"error: the plan lacks {plural(outcome.lacking, 'change')} that today's policy requires{partial}; "
        "they were not made (run apply without a plan file, or make a new plan)"
    )
    return EXIT_CHANGES if detailed_exitcode else EXIT_ERROR


@cli.command()
@_format_option(render.DRIFT)
@click.option("--out", type=click.Path(path_type=Path), help="Write the report here instead of stdout.")
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path),
    help="Also write the access map (HTML) here, from the same reads.",
)
@click.pass_obj
def drift(obj: _Context, fmt: str, out: Path | None, html_out: Path | None) -> None:
    """Report how live grants differ from policy (exit 2 on drift)."""

    async def go() -> DriftReport:
        policy = _load_policy(obj.config.policy_paths(), obj.config)
        async with open_target(obj.config, obj.target) as session:
            return await usecases.make_drift(session, policy, _today(), progress)

    report = run(go())
    text = render.DRIFT[fmt](report, render.Options())
    if html_out is not None:
        write_text_file(html_out, render.DRIFT["html"](report, render.Options()))
    if out is not None:
        write_text_file(out, text)
    else:
        click.echo(text, nl=False)
    sys.exit(EXIT_OK if report.clean else EXIT_CHANGES)


@cli.command()
@click.argument("user")
@_format_option(render.ACCESS)
@click.pass_obj
def explain(obj: _Context, user: str, fmt: str) -> None:
    """Why USER has access: policy file:line, group path and expiry of each grant, and live grants unexplained."""

    async def go() -> list[AccessLine]:
        policy = _load_policy(obj.config.policy_paths(), obj.config)
        async with open_target(obj.config, obj.target) as session:
            return await usecases.explain(session, policy, _today(), user)

    lines = run(go())
    click.echo(_access_output(lines, fmt, f"Access of {user}:", obj.config.target(obj.target)[0]), nl=False)


@cli.command("who-can")
@click.argument("target")
@click.option("--snapshot", "snapshot_path", type=click.Path(path_type=Path), help="Live grants from a snapshot.")
@_format_option(render.ACCESS)
@click.pass_obj
def who_can(obj: _Context, target: str, snapshot_path: Path | None, fmt: str) -> None:
    """Who can query TARGET (resource alias, name or id:…), or is meant to, and why."""

    async def go() -> list[AccessLine]:
        policy = _load_policy(obj.config.policy_paths(), obj.config)
        snapshot = Snapshot.read(snapshot_path) if snapshot_path else None
        async with open_target(obj.config, obj.target) as session:
            return await usecases.who_can(session, policy, _today(), target, snapshot, progress)

    lines = run(go())
    click.echo(_access_output(lines, fmt, f"Who can query {target}:", obj.config.target(obj.target)[0]), nl=False)


def _access_output(lines: list[AccessLine], fmt: str, heading: str, target: str = "") -> str:
    return render.ACCESS[fmt](lines, render.Options(heading=heading, target=target))


@cli.command("import")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder for the policy.")
@click.option("--all-targets", is_flag=True, help="Every target, not only those the current policy manages.")
@click.option("--force", is_flag=True, help="Overwrite an earlier imported.yaml there.")
@click.pass_obj
def import_command(obj: _Context, out: Path, all_targets: bool, force: bool) -> None:
    """Write policy that reproduces today's live grants (users, groups, roles, expiries from the ledger)."""
    destination = out / "imported.yaml"
    _refuse_policy_folder(out, obj.config)
    if destination.exists() and not force:
        raise ReconcilerError(Problem(f"{destination} exists", hint="pass --force to overwrite it"))

    async def go() -> Imported:
        policy = None if all_targets else _load_policy(obj.config.policy_paths(), obj.config)
        async with open_target(obj.config, obj.target) as session:
            return await usecases.import_live(session, policy, _today(), progress)

    imported = run(go())
    write_text_file(destination, imported.text)
    click.echo(f"Wrote {destination}.")
    for line in imported.report():
        click.echo(line)


def _refuse_policy_folder(out: Path, config: Config) -> None:
    """An imported policy written where the config reads policies would be merged with the policy it was made
    beside: every grant twice, and the next plan broken."""
    target = out.resolve()
    for path in config.policy_paths():
        read = path.resolve()
        if target == read or (config.policies_recursive and read in target.parents):
            raise ReconcilerError(
                Problem(
                    f"import --out {out}: the config reads policies from {path}, so the imported file would be "
                    "merged with the policy it reproduces",
                    hint="write it to another folder, review it, then move what you keep into the policies",
                )
            )


@cli.command("fmt")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Change nothing; exit 2 when a file is not in canonical form (for CI).")
@click.pass_obj
def fmt_command(obj: _Context, paths: tuple[Path, ...], check: bool) -> None:
    """Rewrite policy files (PATHS, or those the config reads) in canonical order, comments kept: sections and
    fields in the documented order, named tables (users, groups, resources, embeds) sorted by name."""
    if paths:
        files, _ = policy_files(paths)
    else:
        files, _ = policy_files(obj.config.policy_paths(), obj.config.policies_recursive)
    formatted = {}
    for path in files:  # every file is read and checked before any is written
        text = read_regular_file(path, "policy file", limits.current.policy_file_bytes)
        canonical = format_policy(text, str(path))
        if canonical != text:
            formatted[path] = canonical
    for path, text in formatted.items():
        if check:
            click.echo(f"would reformat {path}")
        else:
            write_text_file(path, text)
            click.echo(f"reformatted {path}")
    verb = "would be reformatted" if check else "reformatted"
    unchanged = plural(len(files) - len(formatted), "file")
    click.echo(f"{plural(len(formatted), 'file')} {verb}, {unchanged} left unchanged.", err=True)
    if check and formatted:
        sys.exit(2)


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--region", help="The Quick BI organisation's region, e.g. cn-hangzhou.")
@click.option("--endpoint", help="Or its OpenAPI endpoint, https://quickbi-public.<region>.aliyuncs.com.")
@click.option("--name", "target_name", default="prod", show_default=True, help="The target's name in the config.")
@click.option(
    "--workflows",
    is_flag=True,
    help="Only rewrite the workflow and its scripts, run on what DIRECTORY's config reads (after a change to "
    "its policies:).",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init_command(
    directory: Path, region: str | None, endpoint: str | None, target_name: str, workflows: bool, force: bool
) -> None:
    """Write a starter into DIRECTORY (a new repository): a config for one Quick BI target, a policy that
    manages nothing yet, and the GitOps workflow with its scripts."""
    if workflows:
        if region or endpoint:
            raise ReconcilerError(Problem("init --workflows takes its paths from the config", hint="drop --region"))
        config = load_config(directory / starter.CONFIG_NAME)
        files = starter.workflow_files(starter.trigger_paths(config), starter.INSTALL)
        force = True
    else:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", target_name):
            raise ReconcilerError(Problem(f"init: target name {target_name!r}", hint="use letters, digits, - and _"))
        files = starter.starter_files(target_name, region, endpoint)
    written = starter.write_files(directory, files, overwrite=force)
    for path in written:
        click.echo(f"wrote {path}")
    if not workflows:
        click.echo(
            "Next: `reconciler validate`, then `reconciler plan` with credentials for the organisation "
            "(export RECONCILER_STATE_URL=<this repository's clone URL> first). The pipeline needs the OIDC "
            "provider, two RAM roles, repository variables and an apply environment: see reconciler's "
            "docs/gitops.md."
        )


@cli.command("targets")
@click.argument("names", nargs=-1)
@click.option(
    "--kind", "kinds", type=click.Choice(["quickbi", "emulator", "dataarts"]), multiple=True, help="Only these kinds."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def targets_command(obj: _Context, names: tuple[str, ...], kinds: tuple[str, ...], fmt: str) -> None:
    """The configured targets (or NAMES among them): kind, where, state. JSON is a GitHub Actions matrix's
    `include` list, one `{"target": …}` per target."""
    for name in names:
        obj.config.target(name)  # an unknown name is an error, with the configured ones
    listed = [
        entry
        for entry in target_entries(obj.config)
        if (not names or entry["target"] in names) and (not kinds or entry["kind"] in kinds)
    ]
    if fmt == "json":
        click.echo(json.dumps(listed, separators=(",", ":")))
        return
    for entry in listed:
        default = " (default)" if entry["default"] else ""
        click.echo(f"{entry['target']}{default}: {entry['kind']} at {entry['where']}; state {entry['state']}")


def target_entries(config: Config) -> list[dict[str, Any]]:
    """Each configured target as plain data: name, kind, where it is, where its state lives."""
    entries = []
    for name, target in sorted(config.targets.items()):
        if target.quickbi is not None:
            kind, where = "quickbi", target.quickbi.endpoint or target.quickbi.region or ""
        elif target.dataarts is not None:
            kind, where = "dataarts", target.dataarts.endpoint or target.dataarts.region or "the built-in emulator"
        else:
            kind, where = "emulator", f"the built-in emulator ({target.emulator.org if target.emulator else ''})"
        state = (
            f"{target.state_repo.url} branch {target.state_repo.branch}"
            if target.state_repo is not None
            else str(config.state_dir(name, target))
        )
        entries.append(
            {"target": name, "kind": kind, "default": name == config.default_target, "where": where, "state": state}
        )
    return entries


@cli.command("schema")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Write one file per schema here.")
def schema_command(out: Path | None) -> None:
    """JSON Schema of the policy and config formats (for the YAML language server and other editors)."""
    documents = schemas()
    if out is None:
        click.echo(json.dumps({name: json.loads(text) for name, text in documents.items()}, indent=1), nl=True)
        return
    for name, text in documents.items():
        write_text_file(out / name, text)
    click.echo(f"Wrote {', '.join(str(out / name) for name in documents)}")


@cli.group()
def ticket() -> None:
    """Embed tickets, issued only as the policy's copilot_embeds and dataarts_embeds allow."""


@ticket.command("issue")
@click.argument("embed")
@click.option(
    "--user", "user_ref", required=True, help="Who gets it: alias, account name, id:<UserId> or dataarts:<IAM ID>."
)
@click.option("--uses", type=click.IntRange(1, 99999), default=1, show_default=True, help="How many accesses.")
@click.option("--minutes", type=click.IntRange(1, 240), help="Validity (Quick BI; default: the embed's max_minutes).")
@click.pass_obj
def ticket_issue(obj: _Context, embed: str, user_ref: str, uses: int, minutes: int | None) -> None:
    """Issue an embed ticket for EMBED; the ticket goes to stdout and nowhere else.

    A DataArts Insight embed uses the DataArts Insight target (--target, or the only one configured)."""
    policy = _load_policy(obj.config.policy_paths(), obj.config)
    go = issue_ticket_async(obj.config, policy, _today(), obj.target, embed, user_ref, uses, minutes)
    click.echo(run(go))


@ticket.command("audit")
@_format_option(render.AUDIT, "output_format")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Write the report here too.")
@click.pass_obj
def ticket_audit(obj: _Context, output_format: str, out: Path | None) -> None:
    """Every still-valid DataArts Insight ticket against the policy; exit 2 on findings.

    Uses the DataArts Insight target (--target, or the only one configured). Quick BI has no API that lists
    copilot tickets; the report says so."""
    policy = _load_policy(obj.config.policy_paths(), obj.config)

    async def go() -> AuditReport:
        async with open_insight(obj.config, obj.target) as session:
            return await usecases.audit_tickets(session, policy)

    report = run(go())
    text = render.AUDIT[output_format](report, render.Options())
    if out is not None:
        write_text_file(out, text)
    click.echo(text, nl=False)
    sys.exit(EXIT_OK if report.clean else EXIT_CHANGES)


@cli.group()
def emulator() -> None:
    """The built-in Quick BI emulator."""


@emulator.command()
@click.option("--org", "org_file", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--state", type=click.Path(path_type=Path), help="Save the state here on shutdown.")
@click.option(
    "--qps", type=click.FloatRange(min=0, min_open=True), help="Per-API requests per second before throttling."
)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0)
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of 503 answers.")
@click.option("--drop-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of dropped connections.")
@click.option("--slow-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of answers slower than timeouts.")
@click.option(
    "--partial-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of SmartqAuthorize cells that fail in Result.",
)
@click.option("--throttle-status", type=click.Choice(["400", "429"]), default="400", show_default=True)
@click.option("--cube-readback", type=click.Choice(["llm_cube", "dataset"]), default="llm_cube", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dataarts", is_flag=True, help="Serve the DataArts Insight emulator (ticket API) for --org instead.")
def serve(
    org_file: Path,
    host: str,
    port: int,
    state: Path | None,
    qps: float | None,
    latency_ms: float,
    error_rate: float,
    drop_rate: float,
    slow_rate: float,
    partial_rate: float,
    throttle_status: str,
    cube_readback: str,
    seed: int,
    dataarts: bool,
) -> None:
    """Serve the Quick BI emulator (or with --dataarts, DataArts Insight's) over HTTP."""
    from reconciler.emulator import Emulator, FaultSettings
    from reconciler.emulator.dataarts import InsightEmulator
    from reconciler.emulator.serve import serve_forever

    faults = FaultSettings(
        qps=qps,
        latency_ms=latency_ms,
        error_rate=error_rate,
        drop_rate=drop_rate,
        slow_rate=slow_rate,
        partial_rate=partial_rate,
        seed=seed,
    )
    emu: Emulator | InsightEmulator
    if dataarts:
        emu = InsightEmulator.from_file(org_file, faults=faults)
    else:
        emu = Emulator.from_file(org_file, faults=faults, cube_readback=cube_readback)
        emu.app.throttle_status = int(throttle_status)
    service = "DataArts Insight" if dataarts else "Quick BI"
    click.echo(f"{service} emulator for {org_file} on http://{host}:{port}", err=True)
    try:
        serve_forever(emu.app, host, port)
    finally:
        if state is not None:
            emu.save(state)


_VENDOR_HINTS = {  # Quick BI error codes whose cause is known, and what fixes them
    "Throttling": "Quick BI kept throttling after the retries: lower the target's qps / directory_qps, or run when "
    "fewer other clients call the API",
    "InvalidAccessKeyId": "check the credentials, and that the target's region or endpoint is the account's",
    "SignatureDoesNotMatch": "check the access key secret (and the clock, for an expired timestamp)",
    "Forbidden": "the credentials' RAM policy lacks this action (docs/gitops.md lists what each role needs)",
    # the organisation: these answer every call when the credentials reach no usable Quick BI organisation
    "Invalid.Organization": "no Quick BI organisation answers for these credentials here: check that the "
    "target's region or endpoint is the organisation's",
    "Invalid.User.Organization": "the credentials' account is not in the Quick BI organisation of this region: "
    "check the target's region or endpoint, and that the account has logged into Quick BI once",
    "ApiUser.Not.Exists": "Quick BI answers this when the region is not the organisation's: check the target's "
    "region or endpoint",
    "Not.ApiCall.AuthUser": "the credentials' account is neither an administrator nor an API-call user of the "
    "organisation: grant it API calls on Quick BI's Open Platform page (takes about 5 minutes)",
    "Invalid.User.Admin": "the credentials' account is not an administrator of the organisation",
    "Access.Forbidden": "Smart Q's API needs Quick BI Professional edition or higher, and a key allowed to call it",
    "Instance.": "the Quick BI instance of this region has expired or does not exist: check the target's region "
    "and the subscription",
}


def _vendor_hint(exc: Exception) -> str:
    if isinstance(exc, TransportFailure):
        return (
            " (Quick BI did not answer, after retries: check the target's region or endpoint, and that this machine "
            "can reach it through any proxy or firewall)"
        )
    code = exc.code if isinstance(exc, QuickBIError) else ""
    found = [hint for prefix, hint in _VENDOR_HINTS.items() if code.startswith(prefix)]
    return f" ({found[0]})" if found else ""


_GLOBAL_WITH_VALUE = ("--config", "--target")
_GLOBAL_FLAGS = ("-v", "--verbose")


def with_globals_first(args: list[str]) -> list[str]:
    """`args` with the global options (--config, --target, -v) that follow the command moved before it, so that
    `reconciler plan --target prod` means what `reconciler --target prod plan` does."""
    position = 0
    while position < len(args):  # past the options given before the command
        token = args[position]
        if token in _GLOBAL_WITH_VALUE:
            position += 2
        elif token.startswith("-") and token != "--":
            position += 1
        else:
            break
    before, after, moved = args[:position], [], []
    rest = iter(args[position:])
    for token in rest:
        if token == "--":
            after += [token, *rest]
        elif token in _GLOBAL_WITH_VALUE:
            moved += [token, next(rest, "")]
        elif token.startswith(tuple(f"{name}=" for name in _GLOBAL_WITH_VALUE)) or token in _GLOBAL_FLAGS:
            moved.append(token)
        else:
            after.append(token)
    return [*before, *moved, *after]


def main() -> NoReturn:
    try:
        cli.main(args=with_globals_first(sys.argv[1:]), standalone_mode=False, prog_name="reconciler")
    except ReconcilerError as exc:
        for problem in exc.problems[:MAX_PRINTED_PROBLEMS]:
            _say(f"error: {problem}" if problem.location is None else str(problem))
        if len(exc.problems) > MAX_PRINTED_PROBLEMS:
            _say(f"error: … and {len(exc.problems) - MAX_PRINTED_PROBLEMS:,} more problems")
        sys.exit(EXIT_ERROR)
    except (QuickBIError, TransportFailure, DataArtsError) as exc:
        _say(redact(f"error: {exc}{_vendor_hint(exc)}"))
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        command = f" ({exc.ctx.command_path} --help)" if isinstance(exc, click.UsageError) and exc.ctx else ""
        _say(f"error: {exc.format_message()}{command}")
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: still one line by default, and never a secret in it
        if logging.getLogger("reconciler").isEnabledFor(logging.DEBUG):
            click.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)
        _say(f"error: internal error: {type(exc).__name__}: {redact(str(exc))} (-v shows where)")
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK)
