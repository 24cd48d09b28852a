"""The import layering of DESIGN.md §2, checked over the package's ``ast`` imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "apns_exporter"

# A module may import only modules of a strictly lower rank.
RANKS = {
    "apns_exporter": 0,
    "apns_exporter.__main__": 11,
    "apns_exporter.errors": 0,
    "apns_exporter.apns": 0,
    "apns_exporter.durations": 0,
    "apns_exporter.logs": 0,
    "apns_exporter.yamlsource": 0,
    "apns_exporter.diagnostics": 1,
    "apns_exporter.fields": 1,
    "apns_exporter.certificates": 1,
    "apns_exporter.webconfig": 1,
    "apns_exporter.chain": 2,
    "apns_exporter.protocol": 1,
    "apns_exporter.tokens": 1,
    "apns_exporter.config": 2,
    "apns_exporter.connection": 2,
    "apns_exporter.channel": 3,
    "apns_exporter.credentials": 3,
    "apns_exporter.receipts": 0,
    "apns_exporter.receiptserver": 1,
    "apns_exporter.probes": 4,
    "apns_exporter.scheduler": 5,
    "apns_exporter.metrics": 5,
    "apns_exporter.exporter": 6,
    "apns_exporter.pages": 7,
    "apns_exporter.web": 8,
    "apns_exporter.check": 8,
    "apns_exporter.demo": 9,
    "apns_exporter.cli": 10,
}
# The mock is a second, independent implementation: it may use the shared vocabulary only.
MOCK_ALLOWED = ("apns_exporter.mock", "apns_exporter.apns", "apns_exporter.errors")


def _mock_may_import(name: str) -> bool:
    return name in ("apns_exporter", "apns_exporter.__version__") or any(
        name == m or name.startswith(m + ".") for m in MOCK_ALLOWED
    )


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] == "apns_exporter"}


def _rank(name: str) -> int | None:
    # Sub-packages share their package's rank: probes.canary ranks as probes.
    while name:
        if name in RANKS:
            return RANKS[name]
        name = name.rpartition(".")[0]
    return None


MODULES = sorted(PACKAGE.rglob("*.py"))


# Only the entry points may start the mock (demo, mock-apns).
MOCK_USER_RANK = RANKS["apns_exporter.demo"]


def _violations(name: str, imports: set[str]) -> set[str]:
    own = _rank(name)
    assert own is not None, f"{name} has no rank in tests/test_layering.py: add it"
    bad = set()
    for imported in imports:
        package = name.rpartition(".")[0]
        sibling = package != "apns_exporter" and imported.startswith(package + ".")
        related = imported.startswith(name + ".") or name.startswith(imported + ".")
        if imported == name or related or sibling:
            continue  # a package and its own modules
        if imported.startswith("apns_exporter.mock"):
            if own < MOCK_USER_RANK:
                bad.add(imported)
        elif (rank := _rank(imported)) is not None and rank >= own:
            bad.add(imported)
    return bad


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_module_imports_only_lower_layers(path: Path) -> None:
    """Every package module imports only modules below it in the layering."""
    name = _module_name(path)
    imports = _imports(path)
    if name.startswith("apns_exporter.mock"):
        bad = {i for i in imports if not _mock_may_import(i)}
        assert not bad, f"the mock must not import client code: {sorted(bad)}"
    else:
        assert not _violations(name, imports), f"{name} imports a module at or above its layer"


def test_mock_check_catches_client_imports() -> None:
    """The mock may use the APNs vocabulary but not the client's protocol or tokens."""
    assert _mock_may_import("apns_exporter.apns.Reason")
    assert not _mock_may_import("apns_exporter.protocol")
    assert not _mock_may_import("apns_exporter.tokens.ProviderToken")


def test_layering_check_catches_an_upward_import() -> None:
    """The checker itself flags protocol importing connection, so it can fail."""
    assert _violations("apns_exporter.protocol", {"apns_exporter.connection"}) == {
        "apns_exporter.connection"
    }


def test_every_module_has_a_rank() -> None:
    """A new module must be placed in the layering before it can land."""
    unranked = [
        _module_name(p)
        for p in MODULES
        if not _module_name(p).startswith("apns_exporter.mock") and _rank(_module_name(p)) is None
    ]
    assert unranked == []
