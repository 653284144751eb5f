"""The limits on what the product reads, in one place, with the defaults documented in docs/reference.md.

A real tenant may need more than the defaults in three places, which the config raises (`limits:` in
`reconciler.yaml`): the size of a policy file, the size of state, plan and snapshot files, and how deep groups
nest. The rest (YAML nesting, alias expansion, JSON nesting) guard against hostile files, and no real policy
comes near them.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass
class Limits:
    policy_file_mib: int = 16  # each policy (and config) YAML file
    state_file_mib: int = 512  # plans, snapshots, the ledger, the managed-target record
    group_nesting: int = 64  # groups of groups

    @property
    def policy_file_bytes(self) -> int:
        return self.policy_file_mib * MIB

    @property
    def state_file_bytes(self) -> int:
        return self.state_file_mib * MIB


DEFAULTS = Limits()
# what this process reads under: the defaults, or what the config it loaded says
current = Limits()


def use(limits: Limits) -> None:
    """Read under `limits` from now on (the config sets them when it is loaded)."""
    current.policy_file_mib = limits.policy_file_mib
    current.state_file_mib = limits.state_file_mib
    current.group_nesting = limits.group_nesting
