"""YAML text to plain data that remembers where every value came from, for error messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KeyPath = tuple[str | int, ...]

# Aliases can expand a small file into billions of values ("billion laughs"), and deep
# nesting exhausts the interpreter stack; no real config comes near either limit. Only
# values added by aliases count: a config with thousands of targets written out is fine.
MAX_VALUES = 100_000
MAX_DEPTH = 64

_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the source text."""

    line: int
    column: int


@dataclass(frozen=True)
class Problem:
    """A YAML-level problem: where it is, the key path to it, and what is wrong."""

    position: Position
    path: KeyPath
    message: str


class YamlSource:
    """One YAML document as plain data (``data``) plus the positions of its keys and items."""

    def __init__(self, text: str) -> None:
        self.data: Any = None
        self.problems: list[Problem] = []
        # Paths whose value could not be read and stands as None: not worth a second message.
        self.unreadable: set[KeyPath] = set()
        self._root: Node | None = None
        try:
            self._root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            self.problems.append(_syntax_problem(exc, text))
            return
        except RecursionError:
            self._fail(Position(1, 1), f"nested too deeply (more than {MAX_DEPTH} levels)")
            return
        if self._root is None:
            return
        written = _written_size(self._root)
        if _expanded_size(self._root, {}, set()) - written > MAX_VALUES:
            self._fail(_position(self._root), f"aliases expand to more than {MAX_VALUES} values")
            return
        self._constructor = SafeConstructor()
        self._built: dict[int, Any] = {}
        self._building: set[int] = set()
        self.data = self._build(self._root, ())

    @property
    def empty(self) -> bool:
        """Whether the text held no document at all (only blanks and comments)."""
        return self._root is None and not self.problems

    def position(self, path: Sequence[str | int]) -> Position:
        """Where ``path`` is written: its key, its list item, or the deepest existing parent."""
        if self._root is None:
            return Position(1, 1)
        node, here = self._root, _position(self._root)
        for step in path:
            if isinstance(node, MappingNode) and isinstance(step, str):
                pair = next((p for p in _pairs(node) if p[0].value == step), None)
                if pair is None:
                    break
                here, node = _position(pair[0]), pair[1]
            elif isinstance(node, SequenceNode) and isinstance(step, int):
                if not 0 <= step < len(node.value):
                    break
                node = node.value[step]
                here = _position(node)
            else:
                break
        return here

    def _fail(self, where: Position, message: str, path: KeyPath = ()) -> None:
        self.problems.append(Problem(where, path, message))

    def _unreadable(self, node: Node, path: KeyPath, message: str) -> None:
        self._fail(_position(node), message, path)
        self.unreadable.add(path)

    def _build(self, node: Node, path: KeyPath) -> Any:
        # Aliased nodes are built once and shared, as PyYAML does, so problems are reported once.
        if id(node) in self._built:
            return self._built[id(node)]
        if id(node) in self._building:
            return self._unreadable(node, path, "recursive alias (an anchor cannot contain itself)")
        if len(path) > MAX_DEPTH:
            return self._unreadable(node, path, f"nested more than {MAX_DEPTH} levels deep")
        self._building.add(id(node))
        try:
            value = self._build_node(node, path)
        finally:
            self._building.discard(id(node))
        self._built[id(node)] = value
        return value

    def _build_node(self, node: Node, path: KeyPath) -> Any:
        if isinstance(node, ScalarNode):
            try:
                return self._constructor.construct_object(node, deep=True)
            except yaml.constructor.ConstructorError as exc:
                problem = str(exc.problem)
                if problem.startswith("could not determine a constructor"):
                    problem = f"unsupported tag {node.tag} (write a plain value)"
                return self._unreadable(node, path, f"cannot read value: {problem}")
            # PyYAML's scalar constructors raise bare IndexError, ValueError and the like on
            # malformed input such as an empty "!!int" or the date 2024-13-01.
            except Exception as exc:
                tag = node.tag.replace("tag:yaml.org,2002:", "!!")
                detail = f": {exc}" if isinstance(exc, ValueError) else ""
                message = f"cannot read {node.value!r} as {tag}{detail}"
                return self._unreadable(node, path, f"{message} (quote it if it is meant as text)")
        if node.tag not in _PLAIN_TAGS:
            return self._unreadable(node, path, f"unsupported tag {node.tag} (remove it)")
        if isinstance(node, SequenceNode):
            return [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        return self._build_mapping(node, path)

    def _build_mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                if not _is_merge_source(value):
                    self._fail(
                        _position(key),
                        "'<<' needs an alias to a mapping, or a list of them (e.g. <<: *defaults)",
                        path,
                    )
                continue
            if not isinstance(key, ScalarNode):
                self._fail(_position(key), "mapping keys must be plain strings", path)
                continue
            name = str(key.value)
            if name in first_seen:
                self._fail(
                    _position(key),
                    f"duplicate key {name!r} (first defined on line "
                    f"{first_seen[name].line}); keep only one",
                    path,
                )
                continue
            first_seen[name] = _position(key)
            result[name] = self._build(value, (*path, name))
        for key, value in _merged_pairs(node, {id(node)}):
            if isinstance(key, ScalarNode) and str(key.value) not in result:
                result[str(key.value)] = self._build(value, (*path, str(key.value)))
        return result


def _pairs(node: MappingNode) -> Iterator[tuple[Node, Node]]:
    """Key/value node pairs in lookup order: explicit keys first, then ``<<`` merges."""
    yield from ((k, v) for k, v in node.value if k.tag != _MERGE_TAG)
    yield from _merged_pairs(node, {id(node)})


def _merged_pairs(node: MappingNode, seen: set[int]) -> Iterator[tuple[Node, Node]]:
    for key, value in node.value:
        if key.tag != _MERGE_TAG:
            continue
        sources = value.value if isinstance(value, SequenceNode) else [value]
        for source in sources:
            if isinstance(source, MappingNode) and id(source) not in seen:
                seen.add(id(source))
                yield from ((k, v) for k, v in source.value if k.tag != _MERGE_TAG)
                yield from _merged_pairs(source, seen)


def _is_merge_source(node: Node) -> bool:
    items = node.value if isinstance(node, SequenceNode) else [node]
    return all(isinstance(item, MappingNode) for item in items)


def _expanded_size(node: Node, sizes: dict[int, int], stack: set[int]) -> int:
    """How many values the document has once aliases are expanded (memoised, so linear)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in stack or not isinstance(node.value, list):
        return 1
    stack.add(id(node))
    total = 1
    for child in node.value:
        for part in child if isinstance(child, tuple) else (child,):
            total += _expanded_size(part, sizes, stack)
    stack.discard(id(node))
    sizes[id(node)] = total
    return total


def _written_size(root: Node) -> int:
    """How many distinct values the text itself holds (each alias target counted once)."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.value, list):
            for child in node.value:
                pending.extend(child if isinstance(child, tuple) else (child,))
    return len(seen)


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _syntax_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        detail = exc.problem or "unreadable"
        if exc.context:
            detail = f"{exc.context}, {detail}"
        where = Position(mark.line + 1, mark.column + 1)
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        where = Position(before.count("\n") + 1, len(before) - before.rfind("\n"))
        detail = f"character {exc.character!r} is not allowed"
    else:
        where, detail = Position(1, 1), str(exc).splitlines()[0]
    hint = "check indentation and quoting"
    if "'\\t'" in detail:
        hint = "indent with spaces, not tabs"
    elif "another document" in detail:
        hint = "keep one document per file: remove the extra ---"
    return Problem(where, (), f"invalid YAML: {detail} ({hint})")
