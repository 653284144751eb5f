"""Policy files: the YAML format, its validation, and the merged `Policy`."""

from reconciler.policy._load import (
    GroupDef,
    Policy,
    ResourceDef,
    Rule,
    TargetKind,
    TargetName,
    UserDef,
    load_policy,
    policy_files,
)
from reconciler.policy._model import NEVER, Rolling

__all__ = [
    "NEVER",
    "GroupDef",
    "Policy",
    "ResourceDef",
    "Rolling",
    "Rule",
    "TargetKind",
    "TargetName",
    "UserDef",
    "load_policy",
    "policy_files",
]
