"""`reconciler init`: the files a team starts from (a config for its Quick BI target, a policy that manages
nothing yet, the GitOps workflow and its scripts), made as text here and written by the command line."""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from reconciler import __version__
from reconciler.application.config import QUICKBI_REGIONS, Config, QuickBITarget
from reconciler.vocabulary.errors import Problem, ReconcilerError

CONFIG_NAME = "reconciler.yaml"
POLICY_PATH = "policies/access.yaml"
WORKFLOW_PATH = ".github/workflows/gitops.yml"
SCRIPTS = ("drift-issue.sh", "oidc-token.sh", "pr-comment.sh", "state-auth.sh")
# how a team's workflow installs the tool: the version that wrote it, so that a merge applies with what planned
INSTALL = f"pip install 'quickbi-reconciler=={__version__}'"

_POLICY = """\
# Who may ask Smart Q questions of what (a reconciler policy; `reconciler validate` checks it).
# Nothing is declared yet, so nothing is managed: `reconciler plan` reads the live grants and changes none.
# To adopt what is live: `reconciler import --out imported`, review it, and move what you keep here.
# Or declare resources and grant them, for example:
#
# users:
#   alice: {account: alice}          # a Quick BI account name
# groups:
#   sales: {members: [alice]}        # or {quickbi_group: Sales}, a user group of the organisation
# resources:
#   llm_cubes:
#     sales: {alias: Sales}          # a Q&A resource by its alias, or {id: <LlmCubeId>}
# grants:
#   - to: [sales]
#     llm_cubes: [sales]
#     expires: never                 # or a date, or {ttl: 30d, renew_within: 7d}
version: 1
"""


def _config_text(name: str, region: str | None, endpoint: str | None) -> str:
    where = f"region: {region}" if region is not None else f"endpoint: {endpoint}"
    return f"""\
# reconciler configuration: where policies live and which Quick BI organisation they manage.
policies: policies/
default_target: {name}
targets:
  {name}:
    # credentials come from the standard Alibaba Cloud chain (in the pipeline: the OIDC role it assumes)
    quickbi: {{{where}}}
    qps: 40
    # runners keep nothing, so state (expiry ledger, managed targets, audit log, lock) lives on a branch of
    # this repository; the pipeline sets the URL. From a terminal: export RECONCILER_STATE_URL=<clone URL>
    state_repo: {{url: "${{RECONCILER_STATE_URL}}", branch: reconciler-state}}
"""


def starter_files(name: str, region: str | None, endpoint: str | None) -> dict[str, str]:
    """Path (relative to the new repository's root) -> text, for a Quick BI target at `region` or `endpoint`.

    The target is validated as the config loader would (an unknown region is refused with a did-you-mean).
    """
    if region is None and endpoint is None:
        raise ReconcilerError(
            Problem(
                "init needs the organisation's --region or --endpoint",
                hint=f"e.g. --region cn-hangzhou; Quick BI's OpenAPI serves {', '.join(QUICKBI_REGIONS)}",
            )
        )
    try:
        QuickBITarget(region=region, endpoint=endpoint)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ReconcilerError(Problem(f"init: {message}")) from None
    files = {CONFIG_NAME: _config_text(name, region, endpoint), POLICY_PATH: _POLICY}
    files.update(workflow_files(["policies/**", CONFIG_NAME], INSTALL))
    return files


def trigger_paths(config: Config) -> list[str]:
    """What the pipeline must run on: the config file and every policy path the config reads (a folder as
    `folder/**`), relative to the repository root, which is the config's folder."""
    paths = []
    root = config.base.resolve()
    for path in config.policy_paths():
        try:
            relative = PurePosixPath(path.resolve().relative_to(root).as_posix())
        except ValueError:
            raise ReconcilerError(
                Problem(
                    f"the config reads policies from {path}, outside the repository the workflow runs in",
                    hint="keep policies under the config's folder",
                )
            ) from None
        paths.append(f"{relative}/**" if not path.is_file() else str(relative))
    return [*dict.fromkeys(paths), CONFIG_NAME]


def workflow_files(triggers: list[str], install: str) -> dict[str, str]:
    """The workflow, run when anything in `triggers` changes and installing the tool with `install`, and the
    scripts it calls."""
    template = _data("gitops.yml")
    workflow = template.replace("@TRIGGER_PATHS@", ", ".join(triggers)).replace("@INSTALL@", install)
    files = {WORKFLOW_PATH: workflow}
    files.update({f".github/scripts/{script}": _data(f"scripts/{script}") for script in SCRIPTS})
    return files


def write_files(root: Path, files: dict[str, str], overwrite: bool) -> list[Path]:
    """Write `files` under `root`; nothing at all when any exists already and `overwrite` is not set."""
    targets = {root / relative: text for relative, text in files.items()}
    existing = sorted(str(path) for path in targets if path.exists() or path.is_symlink())
    if existing and not overwrite:
        shown = ", ".join(existing[:4]) + (f" and {len(existing) - 4} more" if len(existing) > 4 else "")
        raise ReconcilerError(Problem(f"init: {shown} already exist", hint="remove them, or pass --force to overwrite"))
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text, encoding="utf-8")
        if path.suffix == ".sh":
            path.chmod(0o755)
    return list(targets)


def _data(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
