"""Loading a config file: strict YAML to a frozen Config, or a ConfigError naming every problem."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from apns_exporter import files
from apns_exporter.config import diagnostics
from apns_exporter.config.models import Config, Target
from apns_exporter.config.yamlsource import KeyPath, Position, YamlSource
from apns_exporter.errors import ConfigError, ConfigIssue, FileError

# A problem found while parsing: where, which key, what.
_Found = tuple[Position, KeyPath, str]


def load_main(path: str | os.PathLike[str]) -> Config:
    """Read and validate the main config file alone (not its target_files); ConfigError."""
    source = os.fspath(path)
    try:
        raw = files.read_bytes(path, kind="config file", limit=files.CONFIG_LIMIT)
    except FileError as exc:
        message = (
            "config file not found (check the path)"
            if exc.reason == "not_found"
            else f"cannot read config file: {exc.problem}"
        )
        raise ConfigError([ConfigIssue(source, message)]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = "config file is not UTF-8 text; re-save it as UTF-8"
        raise ConfigError([ConfigIssue(f"{source}:{line}", message)]) from None
    return parse(text, source=source, base_dir=Path(path).parent.absolute())


def parse(text: str, *, source: str, base_dir: Path) -> Config:
    """Validate config text; ``source`` names it in messages, relative paths start at base_dir."""
    document = YamlSource(text)
    if document.empty:
        message = "config file is empty; it needs a targets: list (see examples/config.yaml)"
        raise ConfigError([ConfigIssue(f"{source}:1:1", message)])
    found: list[_Found] = [(p.position, p.path, p.message) for p in document.problems]
    config = None
    if isinstance(document.data, dict):
        found += _duplicate_names(document)
        # As in docker-compose, top-level x- keys are a home for YAML anchors, not settings.
        data = {k: v for k, v in document.data.items() if not k.startswith("x-")}
        try:
            config = Config.model_validate(data, context={"base_dir": base_dir})
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                if not any(error["loc"][: len(p)] == p for p in document.unreadable):
                    path, message = diagnostics.describe(error, Config)
                    found.append((document.position(error["loc"]), path, message))
    elif not found:
        kind = diagnostics.kind(document.data)
        message = f"the top level must be a mapping with a targets: list, not {kind}"
        found.append((document.position(()), (), message))
    if found or config is None:
        found.sort(key=lambda item: (item[0].line, item[0].column))
        raise ConfigError([located(source, *item) for item in found])
    return config


def located(source: str, where: Position, path: Sequence[str | int], message: str) -> ConfigIssue:
    """A problem at ``where`` in ``source``, about the key ``path``."""
    key = diagnostics.dotted(path)
    return ConfigIssue(
        f"{source}:{where.line}:{where.column}", f"{key}: {message}" if key else message
    )


def _duplicate_names(document: YamlSource) -> list[_Found]:
    return duplicate_names(document, document.data.get("targets"), ("targets",))


def duplicate_names(document: YamlSource, targets: object, prefix: KeyPath) -> list[_Found]:
    """Targets in one list (written at ``prefix``) that share a name."""
    found: list[_Found] = []
    first: dict[str, int] = {}
    for index, target in enumerate(targets if isinstance(targets, list) else []):
        name = target.get("name") if isinstance(target, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            path = (*prefix, index, "name")
            found.append(
                (
                    document.position(path),
                    path,
                    f"duplicate target name {name!r} "
                    f"(also {diagnostics.dotted((*prefix, first[name]))}); give each target "
                    "its own name",
                )
            )
        first.setdefault(name, index)
    return found


def locate(path: str | os.PathLike[str], keys: KeyPath, message: str) -> ConfigIssue:
    """A problem found after loading (an unreadable key, say), placed at ``keys`` in the file."""
    source = os.fspath(path)
    try:
        raw = files.read_bytes(path, kind="config file", limit=files.CONFIG_LIMIT)
        where = YamlSource(raw.decode("utf-8-sig")).position(keys)
    except (FileError, UnicodeDecodeError):
        return ConfigIssue(source, message)
    return located(source, where, keys, message)


def credential_key(index: int, target: Target, reason: str) -> KeyPath:
    """The config key a credential problem of ``reason`` is about, for :func:`locate`."""
    auth: KeyPath = ("targets", index, "auth", target.auth.method)
    cert = target.auth.certificate
    if cert is None:
        return (*auth, "key_file")
    if reason == "bad_passphrase" and (cert.password_file or cert.password_env):
        return (*auth, "password_file" if cert.password_file else "password_env")
    if reason in ("key_mismatch", "bad_passphrase") and cert.key_file is not None:
        return (*auth, "key_file")
    return (*auth, "cert_file")
