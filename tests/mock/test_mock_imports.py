"""The mock is an independent server implementation: it never imports the exporter's client."""

from __future__ import annotations

import ast
from pathlib import Path

import apns_exporter.mock

CLIENT_SIDE = {
    "protocol",
    "connection",
    "probes",
    "tokens",
    "scheduler",
    "exporter",
    "config",
    "certificates",
    "metrics",
    "web",
    "cli",
    "receipts",
    "receiptserver",
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_mock_never_imports_client_side_modules():
    """No module under apns_exporter/mock imports protocol, connection, probes, tokens & co."""
    package = Path(apns_exporter.mock.__file__).parent
    offenders = {
        f"{path.name}: {name}"
        for path in package.glob("*.py")
        for name in imported_modules(path)
        if name.startswith("apns_exporter.") and name.split(".")[1] in CLIENT_SIDE
    }
    assert offenders == set()
    assert len(list(package.glob("*.py"))) >= 10  # the walk really saw the package
