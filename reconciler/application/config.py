"""The configuration file (`reconciler.yaml`): where policies live and which Quick BI targets exist."""

from __future__ import annotations

import difflib
import ipaddress
import os
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from reconciler.adapters.state_backend import GitState, LocalState, StateBackend
from reconciler.vocabulary import limits
from reconciler.vocabulary.base import StrictModel, changed_paths
from reconciler.vocabulary.cells import CubeReadback
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.fault_settings import FaultSettings
from reconciler.vocabulary.yamlfile import read_yaml

MAX_NAMED_PATHS = 5
# the regions of Quick BI's OpenAPI endpoints (quickbi-public.<region>.aliyuncs.com), as documented
QUICKBI_REGIONS = (
    "cn-hangzhou",
    "cn-shanghai-finance-1",
    "cn-hongkong",
    "ap-southeast-1",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-northeast-1",
    "eu-central-1",
    "us-east-1",
    "me-central-1",
)


class EmulatorTarget(StrictModel):
    org: Path
    state: Path
    # to rehearse apply against a flaky Quick BI
    faults: FaultSettings = Field(default_factory=FaultSettings)


class QuickBITarget(StrictModel):
    region: str | None = None
    endpoint: str | None = None
    signature: Literal["v3", "v1"] = "v3"
    # plain HTTP exposes every request (and with signature v1 its STS token) on the network
    allow_insecure_http: bool = False

    @model_validator(mode="after")
    def _where(self) -> QuickBITarget:
        _check_where(self.region, self.endpoint, self.allow_insecure_http)
        if self.region is not None and self.region not in QUICKBI_REGIONS:
            close = difflib.get_close_matches(self.region, QUICKBI_REGIONS, n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            raise ValueError(
                f"Quick BI's OpenAPI has no region '{self.region}' ({guess}it serves {', '.join(QUICKBI_REGIONS)}); "
                "for another, give endpoint: https://quickbi-public.<region>.aliyuncs.com"
            )
        return self

    @property
    def url(self) -> str:
        return self.endpoint or f"https://quickbi-public.{self.region}.aliyuncs.com"


class DataArtsEmulator(StrictModel):
    org: Path
    state: Path
    faults: FaultSettings = Field(default_factory=FaultSettings)


class DataArtsTarget(StrictModel):
    """Huawei Cloud DataArts Insight (embed tickets only): a region or endpoint, or the built-in emulator."""

    project_id: str = Field(min_length=1)
    region: str | None = None
    endpoint: str | None = None
    emulator: DataArtsEmulator | None = None
    # plain HTTP exposes every request (and an IAM token) on the network
    allow_insecure_http: bool = False

    @model_validator(mode="after")
    def _where(self) -> DataArtsTarget:
        if self.emulator is not None:
            if self.region is not None or self.endpoint is not None:
                raise ValueError("an emulated DataArts Insight takes no region or endpoint")
            return self
        _check_where(self.region, self.endpoint, self.allow_insecure_http)
        return self

    @property
    def url(self) -> str:
        return self.endpoint or f"https://dataartsinsight.{self.region}.myhuaweicloud.com"


def _check_where(region: str | None, endpoint: str | None, allow_insecure_http: bool) -> None:
    if (region is None) == (endpoint is None):
        raise ValueError("give exactly one of region or endpoint")
    if endpoint is not None:
        parsed = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("endpoint must be an https:// URL")
        if parsed.scheme == "http" and not _loopback(parsed.hostname) and not allow_insecure_http:
            raise ValueError(
                "endpoint uses plain http:// to a host that is not this machine; use https://, or set "
                "allow_insecure_http: true if you really mean it"
            )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StateRepo(StrictModel):
    """State on a branch of a git repository: for CI runners, whose disks do not outlive a run."""

    url: str = Field(min_length=1)  # anything `git fetch` takes; a relative path is relative to the config
    branch: str = Field(default="reconciler-state", pattern=r"^[A-Za-z0-9._/-]+$")
    lock_timeout: float = Field(default=300, ge=0)  # seconds a second apply waits for the first


class TargetConfig(StrictModel):
    emulator: EmulatorTarget | None = None
    quickbi: QuickBITarget | None = None
    dataarts: DataArtsTarget | None = None
    qps: float | None = Field(default=None, gt=0)
    directory_qps: float | None = Field(default=None, gt=0)
    max_concurrency: int = Field(default=16, ge=1, le=256)
    # what QueryLlmCubeWithThemeListByUserId's CubeIds keys are (UNCONFIRMED upstream): LlmCube or dataset IDs
    cube_readback: CubeReadback = "llm_cube"
    state_dir: Path | None = None
    state_repo: StateRepo | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TargetConfig:
        if sum(kind is not None for kind in (self.emulator, self.quickbi, self.dataarts)) != 1:
            raise ValueError("a target is one of 'emulator', 'quickbi' or 'dataarts'")
        if self.state_dir is not None and self.state_repo is not None:
            raise ValueError("give state_dir or state_repo, not both")
        return self


class LimitsConfig(StrictModel):
    """Where a real tenant may need more than the defaults (docs/reference.md, "Limits on input")."""

    policy_file_mib: int = Field(default=limits.DEFAULTS.policy_file_mib, ge=1, le=1024)
    state_file_mib: int = Field(default=limits.DEFAULTS.state_file_mib, ge=1, le=8192)
    group_nesting: int = Field(default=limits.DEFAULTS.group_nesting, ge=1, le=1024)


class Config(StrictModel):
    policies: list[Path] | Path = Path("policies")
    policies_recursive: bool = False  # read policy files in subfolders too (hidden ones never)
    default_target: str | None = None
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    base: Path = Field(default=Path("."), exclude=True)

    def policy_paths(self) -> list[Path]:
        paths = self.policies if isinstance(self.policies, list) else [self.policies]
        return [self.resolve(p) for p in paths]

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.base / path

    def dataarts_target(self, name: str | None) -> tuple[str, TargetConfig]:
        """The DataArts Insight target named, or the only one configured when none is named."""
        if name is not None:
            chosen, target = self.target(name)
            if target.dataarts is None:
                raise ReconcilerError(
                    Problem(f"target '{chosen}' is not a DataArts Insight target", hint=self._dataarts_hint())
                )
            return chosen, target
        found = sorted(n for n, t in self.targets.items() if t.dataarts is not None)
        if len(found) != 1:
            what = "no DataArts Insight target is configured" if not found else "several DataArts Insight targets"
            raise ReconcilerError(Problem(what, hint=self._dataarts_hint()))
        return found[0], self.targets[found[0]]

    def _dataarts_hint(self) -> str:
        found = sorted(n for n, t in self.targets.items() if t.dataarts is not None)
        if not found:
            return "add a target with dataarts: {region, project_id} (docs/reference.md)"
        return "choose one with --target (" + ", ".join(found) + ")"

    def target(self, name: str | None) -> tuple[str, TargetConfig]:
        chosen = name or self.default_target
        if chosen is None:
            raise ReconcilerError("no target given and the config has no default_target (use --target NAME)")
        if chosen not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            raise ReconcilerError(f"unknown target '{chosen}' (configured targets: {known})")
        return chosen, self.targets[chosen]

    def state_backend(self, name: str, target: TargetConfig) -> StateBackend:
        if target.state_repo is None:
            return LocalState(self.state_dir(name, target), name)
        url = os.path.expandvars(target.state_repo.url)
        if "$" in url:
            raise ReconcilerError(
                Problem(
                    f"targets.{name}.state_repo.url names an unset environment variable: {url}",
                    hint="set it (the GitOps workflow sets RECONCILER_STATE_URL) or write the URL",
                )
            )
        if "://" not in url and not _scp_like(url):
            # relative to the config file, made absolute: git runs in a folder of its own
            url = str(self.resolve(Path(url)).absolute())
        return GitState(url, target.state_repo.branch, name, target.state_repo.lock_timeout)

    def state_dir(self, name: str, target: TargetConfig) -> Path:
        """Where the ledger, journals, audit log and lock of a target live: next to its state."""
        if target.state_dir is not None:
            return self.resolve(target.state_dir)
        if target.emulator is not None:
            return self.resolve(target.emulator.state).parent
        if target.dataarts is not None and target.dataarts.emulator is not None:
            return self.resolve(target.dataarts.emulator.state).parent
        return self.base / ".reconciler" / name


def _config_view(config: Config, target: str) -> dict[str, Any]:
    """What of a configuration decides a plan of `target`: where policies are read from, and the target."""
    chosen = config.targets.get(target)
    return {
        "policies": [str(p) for p in (config.policies if isinstance(config.policies, list) else [config.policies])],
        "policies_recursive": config.policies_recursive,
        f"targets.{target}": None if chosen is None else chosen.model_dump(mode="json"),
    }


def config_changes(base: Config, head: Config, target: str) -> list[str]:
    """The configuration settings of `target` that differ between base and head, dotted, sorted."""
    paths = sorted(path for _, path in changed_paths(_config_view(base, target), _config_view(head, target)))
    return paths[:MAX_NAMED_PATHS] + ([f"{len(paths) - MAX_NAMED_PATHS} more"] if len(paths) > MAX_NAMED_PATHS else [])


def _scp_like(url: str) -> bool:
    """git's user@host:path form."""
    head = url.split(":", 1)[0]
    return ":" in url and "@" in head and "/" not in head


def load_config(path: Path) -> Config:
    if not path.exists():
        raise ReconcilerError(
            Problem(f"{path}: config file not found", hint="run from the repository root or pass --config FILE")
        )
    document, problems = read_yaml(path)
    if document is None or problems:
        raise ReconcilerError(problems)
    try:
        config = Config.model_validate(document.data or {})
    except ValidationError as exc:
        found = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
            message = message.removeprefix("Value error, ")
            where = ".".join(str(p) for p in loc)
            found.append(Problem(f"{where}: {message}", document.locate(loc)))
        raise ReconcilerError(found) from None
    config.base = path.parent
    return config


def use_limits(config: Config) -> None:
    """Read what the run reads under `config`'s limits (its own file was read under the defaults)."""
    limits.use(limits.Limits(**config.limits.model_dump()))
