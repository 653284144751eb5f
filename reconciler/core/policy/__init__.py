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
from reconciler.core.policy._model import (
    NEVER,
    UNKNOWN,
    CubeRef,
    Expiry,
    PolicyFile,
    Rolling,
    ThemeRef,
    UnknownExpiry,
    latest_day,
)

__all__ = [
    "NEVER",
    "UNKNOWN",
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
    "UnknownExpiry",
    "UserDef",
    "format_policy",
    "latest_day",
    "load_policy",
    "policy_files",
    "undeclared_grant_problem",
]
