"""A YAML reader that remembers the line of every value and refuses duplicate keys, bombs and deep nesting.

PyYAML's loaders silently keep the last of two equal keys and forget where values came from, so we compose
the node graph ourselves and build plain Python data alongside a map from each value's path to its line.
Input is hostile until proven otherwise: the file must be a regular file of bounded size, and building stops
at the first alias expansion past a budget (a "billion laughs" file is a few hundred bytes), at a recursive
alias, and at nesting deeper than any policy needs, each with its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from reconciler.vocabulary import limits
from reconciler.vocabulary.errors import Location, Problem, ReconcilerError
from reconciler.vocabulary.files import read_regular_file

PathKey = tuple[str | int, ...]
MAX_DEPTH = 64
# values built again through aliases: far above any real use of anchors, far below what hurts
MAX_ALIAS_VALUES = 100_000
DEPTH_HINT = "flatten the structure"
STR_TAG = "tag:yaml.org,2002:str"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: fast, and no Python recursion while parsing


class _Stop(Exception):
    """Building cannot go on: the problem is recorded, the rest of the file is not read."""


@dataclass
class LocatedDocument:
    """Plain data from one YAML file plus the line of every mapping key, list item and scalar."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def locate(self, path: PathKey) -> Location:
        """The line of `path`, or of its nearest ancestor that has one."""
        line = self.lines.get(path)
        if line is not None:
            return Location(self.file, line)
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return Location(self.file, line)
        return Location(self.file, 1)


def read_yaml(path: Path, display_name: str | None = None) -> tuple[LocatedDocument | None, list[Problem]]:
    """Parse one YAML file. Returns the document, or None and the problems that stopped it."""
    name = display_name or str(path)
    try:
        text = read_regular_file(path, "YAML file", limits.current.policy_file_bytes)
    except ReconcilerError as exc:
        return None, [
            Problem(problem.message.removeprefix(f"{path}: "), Location(name, 1), problem.hint)
            for problem in exc.problems
        ]
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> tuple[LocatedDocument | None, list[Problem]]:
    try:
        node = yaml.compose(text, Loader=LOADER)
    except RecursionError:
        return None, [Problem("YAML nested too deeply to read", Location(name, 1), DEPTH_HINT)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = exc.problem or exc.context or "invalid YAML"
        if "nesting depth" in reason:  # libyaml's own depth limit (PyYAML 6.0.4 on), deeper than ours
            return None, [Problem(f"nested more than {MAX_DEPTH} levels deep", Location(name, line), DEPTH_HINT)]
        return None, [Problem(f"YAML syntax error: {reason}", Location(name, line), "fix the YAML syntax")]
    except yaml.YAMLError as exc:
        return None, [Problem(f"YAML error: {exc}", Location(name, 1), "fix the YAML syntax")]
    document = LocatedDocument(file=name, data=None)
    problems: list[Problem] = []
    if node is None:
        document.data = {}
        return document, problems
    builder = _Builder(document, problems)
    try:
        document.data = builder.build(node, ())
    except _Stop:
        return None, problems
    return document, problems


class _Builder:
    def __init__(self, document: LocatedDocument, problems: list[Problem]) -> None:
        self.document = document
        self.problems = problems
        self.constructor = yaml.constructor.SafeConstructor()
        self.seen: set[int] = set()
        self.open: set[int] = set()  # collections being built: meeting one again is a recursive alias
        self.alias_values = 0

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.document.lines.setdefault(path, node.start_mark.line + 1)
        if len(path) > MAX_DEPTH:
            self._stop(f"nested more than {MAX_DEPTH} levels deep", path, DEPTH_HINT)
        key = id(node)
        if key in self.seen:
            self.alias_values += 1
            if self.alias_values > MAX_ALIAS_VALUES:
                self._stop(
                    f"aliases expand to more than {MAX_ALIAS_VALUES:,} values (a YAML alias bomb?)",
                    path[:1],  # where the expansion is used; deeper paths carry the anchors' lines
                    "write the values out instead of nesting aliases",
                )
        self.seen.add(key)
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self._scalar(node)
        if key in self.open:
            self._stop("recursive YAML alias (a value that contains itself)", path, "remove the alias")
        self.open.add(key)
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        finally:
            self.open.discard(key)

    def _stop(self, message: str, path: PathKey, hint: str) -> NoReturn:
        self.problems.append(Problem(message, self.document.locate(path), hint))
        raise _Stop

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self._construct(node)
        except yaml.constructor.ConstructorError as exc:
            self.problems.append(Problem(f"invalid value: {exc.problem}", self._loc(node)))
        except ValueError as exc:  # e.g. a timestamp-shaped scalar that is not a real date: 2027-02-30
            self.problems.append(
                Problem(f"invalid value {node.value!r}: {exc}", self._loc(node), "write a real date as yyyy-mm-dd")
            )
        return None

    def _construct(self, node: yaml.Node) -> Any:
        if node.tag == STR_TAG:  # what SafeConstructor makes of it, without its dispatch (a policy has 10^5)
            return node.value
        return self.constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(
                    Problem("YAML merge keys (<<) are not supported", self._loc(key_node), "write the keys out")
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem("mapping keys must be plain scalars", self._loc(key_node)))
                continue
            try:
                key = self._construct(key_node)
            except (yaml.constructor.ConstructorError, ValueError):
                # e.g. `=` (YAML's obscure value tag) or a malformed timestamp used as a key
                self.problems.append(Problem(f"invalid mapping key {key_node.value!r}", self._loc(key_node)))
                continue
            if not isinstance(key, str | int | bool) or key is None:
                self.problems.append(Problem("mapping keys must be plain scalars", self._loc(key_node)))
                continue
            if isinstance(key, bool | int):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                self.problems.append(
                    Problem(
                        f"duplicate key {key!r} (first defined at line {first_seen[key]})",
                        Location(self.document.file, line),
                        "remove one of them or merge their contents",
                    )
                )
                continue
            first_seen[key] = line
            child = (*path, key)
            self.document.lines[child] = line
            result[key] = self.build(value_node, child)
        return result

    def _loc(self, node: yaml.Node) -> Location:
        return Location(self.document.file, node.start_mark.line + 1)
