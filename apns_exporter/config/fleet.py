"""Targets from many files: the main config plus its ``target_files``, merged into one Config.

Each target file is a YAML list of targets, or a mapping with ``labels:`` (for every target
in it) and ``targets:``. A broken target file is reported at file:line:column like the main
file; :func:`load` refuses it, while a running exporter keeps that file's previous targets
(:func:`merge` with ``previous``) so one customer's typo never stops the rest of the fleet.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

from pydantic import Field, ValidationError

from apns_exporter import files
from apns_exporter.config import diagnostics
from apns_exporter.config.fields import Labels, Model
from apns_exporter.config.loader import duplicate_names, load_main, located
from apns_exporter.config.models import Config, Target
from apns_exporter.config.yamlsource import KeyPath, Position, YamlSource
from apns_exporter.errors import ConfigError, ConfigIssue, FileError

_KIND = "target file"


class TargetFile(Model):
    """One target file written as a mapping: labels for all its targets, and the targets."""

    labels: Labels = Field(default_factory=dict)
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True)
class Origin:
    """Where a target is written: the file, the key path to its entry, and the name's place."""

    file: str
    keys: KeyPath
    where: str = ""  # file:line:column of the target's name, for duplicate messages


@dataclass(frozen=True)
class Part:
    """One target file as read now: its targets, or the problems that keep it out."""

    file: str
    targets: tuple[Target, ...] = ()
    origins: tuple[Origin, ...] = ()
    issues: tuple[ConfigIssue, ...] = ()


@dataclass(frozen=True)
class Fleet:
    """Every target of a config, where each was written, and the files that were refused."""

    config: Config
    origins: Mapping[str, Origin] = field(default_factory=dict)
    # Each target file's targets as in use (a refused file: its previous ones).
    files: Mapping[str, tuple[Target, ...]] = field(default_factory=dict)
    broken: Mapping[str, tuple[ConfigIssue, ...]] = field(default_factory=dict)
    # Each readable target file as parsed, by the SHA-256 of its bytes: a reload parses
    # only the files whose bytes changed (parsing is what costs at a thousand files).
    parsed: Mapping[str, tuple[str, Part]] = field(default_factory=dict)

    @property
    def issues(self) -> tuple[ConfigIssue, ...]:
        """Every problem of every refused target file."""
        return tuple(i for issues in self.broken.values() for i in issues)


def expand(patterns: Iterable[str]) -> list[str]:
    """The files the globs name, sorted; a directory stands for its *.yaml and *.yml files."""
    found: set[str] = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            matches = [*glob.glob(os.path.join(pattern, "*.yaml")), *glob.glob(f"{pattern}/*.yml")]
        else:
            matches = glob.glob(pattern, recursive=True)
        # Hidden names are skipped by glob: a ConfigMap's ..data and ..2024_... directories.
        found.update(m for m in matches if not os.path.isdir(m))
    return sorted(found)


def read_part(path: str, cached: tuple[str, Part] | None = None) -> tuple[str, Part]:
    """Read and validate one target file (unless its bytes are ``cached``'s): (digest, part).

    Its problems are located at file:line:column.
    """
    try:
        raw = files.read_bytes(path, kind=_KIND, limit=files.CONFIG_LIMIT)
    except FileError as exc:
        issue = ConfigIssue(path, f"cannot read target file: {exc.problem}")
        return "", Part(path, issues=(issue,))
    digest = hashlib.sha256(raw).hexdigest()
    if cached is not None and cached[0] == digest and not cached[1].issues:
        return cached
    return digest, _parse_part(path, raw)


def _parse_part(path: str, raw: bytes) -> Part:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Part(path, issues=(ConfigIssue(path, "not UTF-8 text; re-save it as UTF-8"),))
    document = YamlSource(text)
    found = [(p.position, p.path, p.message) for p in document.problems]
    data, prefix = document.data, cast(KeyPath, ("targets",))
    if isinstance(data, list):
        data, prefix = {"targets": data}, ()
    elif data is None and not found:
        return Part(path)  # an empty file: no targets (yet)
    elif not isinstance(data, dict) and not found:
        message = (
            f"a target file must be a list of targets (or a mapping with labels: and "
            f"targets:), not {diagnostics.kind(data)}"
        )
        found.append((document.position(()), (), message))
    parsed = None
    if isinstance(data, dict) and not document.problems:
        found += duplicate_names(document, data.get("targets"), prefix)
        try:
            context = {"base_dir": Path(path).parent.absolute()}
            parsed = TargetFile.model_validate(data, context=context)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                keys, message = diagnostics.describe(error, TargetFile)
                at = document.position(_written(tuple(error["loc"]), prefix))
                found.append((at, _written(keys, prefix), message))
    if found or parsed is None:
        found.sort(key=lambda item: (item[0].line, item[0].column))
        return Part(path, issues=tuple(located(path, *item) for item in found))
    targets, origins = [], []
    for index, target in enumerate(parsed.targets):
        # Labels set on the target win over the file's.
        targets.append(target.model_copy(update={"labels": parsed.labels | target.labels}))
        keys = (*prefix, index)
        origins.append(Origin(path, keys, _where(path, document.position((*keys, "name")))))
    return Part(path, tuple(targets), tuple(origins))


def _written(keys: KeyPath, prefix: KeyPath) -> KeyPath:
    """A key path of the validated mapping as written in the file (a list has no targets:)."""
    return keys[1:] if not prefix and keys[:1] == ("targets",) else keys


def _where(path: str, position: Position) -> str:
    return f"{path}:{position.line}:{position.column}"


def read_parts(config: Config, previous: Fleet | None = None) -> dict[str, tuple[str, Part]]:
    """Every target file the config's globs name, read now (parsed if changed): by path."""
    cache = previous.parsed if previous is not None else {}
    return {path: read_part(path, cache.get(path)) for path in expand(config.target_files)}


def merge(
    config: Config,
    main_file: str,
    parts: Sequence[Part],
    previous: Fleet | None = None,
) -> Fleet:
    """The main file's targets plus every readable part's; a refused part keeps ``previous``.

    A target whose name is already taken (by the main file or an earlier file) refuses the
    later file, with a message naming both places.
    """
    targets: list[Target] = []
    origins: dict[str, Origin] = {}
    for index, target in enumerate(config.targets):
        targets.append(target)
        origins[target.name] = Origin(main_file, ("targets", index))
    in_use: dict[str, tuple[Target, ...]] = {}
    broken: dict[str, tuple[ConfigIssue, ...]] = {}
    for part in parts:
        issues = list(part.issues)
        if not issues:
            for target, origin in zip(part.targets, part.origins, strict=True):
                other = origins.get(target.name)
                if other is not None:
                    where = origin.where or part.file
                    issues.append(
                        ConfigIssue(
                            where,
                            f"duplicate target name {target.name!r} (also at "
                            f"{other.where or other.file}); give each target its own name",
                        )
                    )
        chosen = part.targets
        if issues:
            broken[part.file] = tuple(issues)
            # Refused: the targets this file had before, if any (and if still free).
            before = previous.files.get(part.file, ()) if previous is not None else ()
            chosen = tuple(t for t in before if t.name not in origins)
            kept = previous.origins if previous is not None else {}
            part_origins = tuple(kept.get(t.name, Origin(part.file, ())) for t in chosen)
        else:
            part_origins = part.origins
        in_use[part.file] = chosen
        for target, origin in zip(chosen, part_origins, strict=True):
            targets.append(target)
            origins[target.name] = origin
    merged = config.model_copy(update={"targets": tuple(targets)})
    return Fleet(merged, origins, in_use, broken)


def refuse(
    fleet: Fleet, refused: Mapping[str, Sequence[ConfigIssue]], previous: Fleet | None
) -> Fleet:
    """``fleet`` with the target files in ``refused`` put back as they were in ``previous``."""
    if not refused:
        return fleet
    parts = [
        Part(
            file,
            targets,
            tuple(fleet.origins[t.name] for t in targets),
            tuple(refused.get(file, ())),
        )
        for file, targets in fleet.files.items()
    ]
    main_targets = tuple(
        t for t in fleet.config.targets if fleet.origins[t.name].file not in fleet.files
    )
    base = fleet.config.model_copy(update={"targets": main_targets})
    main_file = next((o.file for o in fleet.origins.values() if o.file not in fleet.files), "")
    merged = merge(base, main_file, parts, previous)
    broken = {**fleet.broken, **merged.broken}
    # A refused file is parsed again next time (only clean parts are reused anyway).
    parsed = {f: p for f, p in fleet.parsed.items() if f not in refused}
    return replace(merged, broken=broken, parsed=parsed)


def load_fleet(path: str | os.PathLike[str], previous: Fleet | None = None) -> Fleet:
    """The main file (ConfigError if it is broken) and its target files, merged."""
    config = load_main(path)
    parsed = read_parts(config, previous)
    fleet = merge(config, os.fspath(path), [part for _, part in parsed.values()], previous)
    return replace(fleet, parsed=parsed)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file and every target file; ConfigError lists every problem."""
    fleet = load_fleet(path)
    if fleet.broken:
        raise ConfigError(list(fleet.issues))
    _require_targets(fleet, os.fspath(path))
    return fleet.config


def _require_targets(fleet: Fleet, path: str) -> None:
    config = fleet.config
    if not config.targets and not config.discover:
        message = "target_files: no targets found in the files it names (check the globs)"
        raise ConfigError([ConfigIssue(path, message)])


def digest(path: str | os.PathLike[str]) -> str:
    """What changes when the main file, or any target file, is changed, added or removed."""
    main = files.digest(path, kind="config file", limit=files.CONFIG_LIMIT)
    try:
        config = load_main(path)
    except ConfigError:
        return main
    parts = [main]
    for name in expand(config.target_files):
        parts += [name, files.digest(name, kind=_KIND, limit=files.CONFIG_LIMIT)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
