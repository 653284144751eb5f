"""Policy files: the YAML format, its validation, and the merged `Policy`."""

from reconciler.core.policy._format import format_policy
from reconciler.core.policy._load import (
    DataArtsEmbedDef,
    EmbedDef,
    GroupDef,
    Policy,
    PolicyTest,
    ResourceDef,
    Rule,
    TargetName,
    UserDef,
    load_policy,
    policy_files,
    undeclared_grant_problem,
)
from reconciler.core.policy._model import NEVER, CubeRef, Expiry, PolicyFile, Rolling, ThemeRef, latest_day

__all__ = [
    "NEVER",
    "CubeRef",
    "DataArtsEmbedDef",
    "EmbedDef",
    "Expiry",
    "GroupDef",
    "Policy",
    "PolicyFile",
    "PolicyTest",
    "ResourceDef",
    "Rolling",
    "Rule",
    "TargetName",
    "ThemeRef",
    "UserDef",
    "format_policy",
    "latest_day",
    "load_policy",
    "policy_files",
    "undeclared_grant_problem",
]
