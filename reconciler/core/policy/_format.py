"""`reconciler fmt`: a policy file in canonical order, every comment kept with what it describes.

Canonical means: the keys of each section and entry in the order the policy model declares them (`version`,
`defaults`, `users`, `groups`, `resources`, `grants`, …; `to`, `llm_cubes`, `themes`, `expires` in a grant),
and named tables (users, groups, resources, embeds) sorted by name. Lists keep their order, flow-style
collections (`{to: [a], llm_cubes: [b]}`) and values are kept as written.

The reordering moves lines, not parsed values, so nothing is re-rendered: a block of lines is an entry's key
line, its value's lines, and the comment and blank lines just above it (a comment describes what follows it).
The result is checked to mean exactly what the input meant before anyone sees it.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel

from reconciler.core.policy._model import PolicyFile
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.yamlfile import LOADER, parse_yaml

_Lines = list[str]


def format_policy(text: str, name: str) -> str:
    """`text` (the policy file `name`) in canonical form; the same text when it is canonical already."""
    _, problems = parse_yaml(text, name)
    if problems:
        first = problems[0]
        raise ReconcilerError(Problem(f"{first.location}: {first.message}", hint="fix it, then run fmt again"))
    root = yaml.compose(text, Loader=LOADER)
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not root.value:
        return text
    lines = [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]
    formatted = "".join(_mapping(lines, root, PolicyFile, 0, len(lines), top=True))
    if yaml.load(formatted, Loader=LOADER) != yaml.load(text, Loader=LOADER):
        raise ReconcilerError(
            Problem(f"{name}: fmt cannot reorder this file without changing it (YAML anchors or aliases?)")
        )
    return formatted


def _mapping(lines: _Lines, node: yaml.MappingNode, model: Any, start: int, end: int, top: bool = False) -> _Lines:
    """The lines `start:end` holding the block mapping `node`, its entries in canonical order."""
    pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
    keys = [key.start_mark.line for key, _ in pairs]
    leads = [start] + [_lead(lines, keys[i], _last_line(pairs[i - 1][1])) for i in range(1, len(pairs))]
    header: _Lines = []
    if top:  # the comments above the first key are the file's header: they stay on top
        header, leads[0] = lines[start : keys[0]], keys[0]
    bounds = [*leads[1:], end]
    fields = _fields(model)
    table = _table_model(model)
    blocks = []
    for index, (key, value) in enumerate(pairs):
        name = key.value if isinstance(key, yaml.ScalarNode) else ""
        child = table if table is not None else fields.get(name)
        body = lines[leads[index] : bounds[index]]
        if child is not None and not getattr(value, "flow_style", True):
            head = lines[leads[index] : keys[index] + 1]
            body = head + _value(lines, value, child, keys[index] + 1, bounds[index])
        rank = (0, name) if table is not None else (list(fields).index(name) if name in fields else len(fields), "")
        blocks.append((rank, index, body))
    ordered = [body for _, _, body in sorted(blocks, key=lambda block: (block[0], block[1]))]
    if not top and ordered:
        ordered[0] = _without_leading_blanks(ordered[0])
    return header + [line for body in ordered for line in body]


def _value(lines: _Lines, value: yaml.Node, annotation: Any, start: int, end: int) -> _Lines:
    model = _model_of(annotation)
    if isinstance(value, yaml.MappingNode) and (model is not None or _table_model(annotation) is not None):
        return _mapping(lines, value, annotation if model is None else model, start, end)
    item_model = _item_model(annotation)
    if isinstance(value, yaml.SequenceNode) and item_model is not None:
        return _sequence(lines, value, item_model, start, end)
    return lines[start:end]


def _sequence(lines: _Lines, node: yaml.SequenceNode, model: type[BaseModel], start: int, end: int) -> _Lines:
    """A block list of entries (grants, tests): the list's order kept, each entry's keys ordered."""
    items: list[yaml.Node] = node.value
    firsts = [item.start_mark.line for item in items]
    leads = [_lead(lines, firsts[i], _last_line(items[i - 1])) for i in range(1, len(items))]
    out = lines[start : firsts[0]] if items else lines[start:end]
    for index, item in enumerate(items):
        stop = leads[index] if index < len(leads) else end
        if isinstance(item, yaml.MappingNode) and not item.flow_style and item.value:
            out += _item(lines, item, model, firsts[index], stop)
        else:
            out += lines[firsts[index] : stop]
        if index < len(leads):
            out += lines[leads[index] : firsts[index + 1]]
    return out


def _item(lines: _Lines, item: yaml.MappingNode, model: type[BaseModel], start: int, end: int) -> _Lines:
    """One `- key: …` entry: the dash is taken off its first line, the keys ordered, the dash put back."""
    column = item.start_mark.column
    dashed = lines[start]
    if dashed[column - 2 : column] != "- ":
        return lines[start:end]
    copy = list(lines)
    copy[start] = dashed[: column - 2] + "  " + dashed[column:]
    ordered = _mapping(copy, item, model, start, end)
    first = next(i for i, line in enumerate(ordered) if line.strip() and not line.lstrip().startswith("#"))
    line = ordered[first]
    ordered[first] = line[: column - 2] + "- " + line[column:]
    return ordered


def _lead(lines: _Lines, key_line: int, floor: int) -> int:
    """Where the block of the entry whose key is on `key_line` starts: the comment and blank lines just above
    it, but none of the previous entry's own lines (which end on `floor`)."""
    lead = key_line
    while lead - 1 > floor and (not lines[lead - 1].strip() or lines[lead - 1].lstrip().startswith("#")):
        lead -= 1
    return lead


def _last_line(node: yaml.Node) -> int:
    """The last line holding part of `node`'s own content."""
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        return _last_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return _last_line(node.value[-1])
    end = node.end_mark
    # a block scalar's end mark is the start of the line after it
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def _without_leading_blanks(block: _Lines) -> _Lines:
    index = 0
    while index < len(block) - 1 and not block[index].strip():
        index += 1
    return block[index:]


def _fields(model: Any) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return {name: info.annotation for name, info in model.model_fields.items()}
    return {}


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    models = [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
    return models[0] if len(models) == 1 else None


def _table_model(annotation: Any) -> type[BaseModel] | None:
    """The entry model of a named table, `dict[str, Model]`."""
    for member in _members(annotation):
        if typing.get_origin(member) is dict:
            return _model_of(typing.get_args(member)[1])
    return None


def _item_model(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if typing.get_origin(member) is list:
            return _model_of(typing.get_args(member)[0])
    return None
