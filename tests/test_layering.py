"""The import layering of the package by subpackage, and the single-dialer rule, over ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "apns_exporter"

# A unit may import only units of a strictly lower rank; modules inside one unit may
# import each other. A unit is a subpackage or a top-level module.
RANKS: dict[str, float] = {
    "apns_exporter": 0,
    "apns_exporter.errors": 0,
    "apns_exporter.apns": 0,
    "apns_exporter.logs": 0,
    # The safe file reader: above the exception tree it raises, below everything that reads.
    "apns_exporter.files": 0.5,
    "apns_exporter.config": 1,
    # Generates the shipped rules, dashboards and examples: pure, the APNs vocabulary only.
    "apns_exporter.assets": 1,
    "apns_exporter.client": 1,
    "apns_exporter.creds": 2,
    "apns_exporter.receipts": 2,
    "apns_exporter.probes": 3,
    "apns_exporter.service": 4,
    "apns_exporter.web": 5,
    "apns_exporter.commands": 6,
    "apns_exporter.cli": 7,
    "apns_exporter.__main__": 8,
}
# The mock is a second, independent implementation: it may use the shared vocabulary only.
MOCK_ALLOWED = ("apns_exporter.mock", "apns_exporter.apns", "apns_exporter.errors")
# Only the entry points may start the mock (demo, mock-apns).
MOCK_USER_RANK = RANKS["apns_exporter.commands"]

# Outgoing connections are made in client/ only (DESIGN §2: one dialer, so a DNS or
# network fault injected there reaches every probe). The mock, the web app and the receipt
# listener open listening sockets through aiohttp or asyncio servers, not these calls.
DIAL_CALLS = {"open_connection", "create_connection", "socket", "getaddrinfo"}
DIAL_ALLOWED = ("apns_exporter.client", "apns_exporter.mock")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] == "apns_exporter"}


def _unit(name: str) -> str | None:
    """The ranked unit a dotted name belongs to: its subpackage or top-level module."""
    while name:
        if name in RANKS:
            return name
        name = name.rpartition(".")[0]
    return None


def _mock_may_import(name: str) -> bool:
    return name in ("apns_exporter", "apns_exporter.__version__") or any(
        name == m or name.startswith(m + ".") for m in MOCK_ALLOWED
    )


def _violations(name: str, imports: set[str]) -> set[str]:
    own = _unit(name)
    assert own is not None, f"{name} has no rank in tests/test_layering.py: add it"
    bad = set()
    for imported in imports:
        if imported.startswith("apns_exporter.mock"):
            if RANKS[own] < MOCK_USER_RANK:
                bad.add(imported)
            continue
        unit = _unit(imported)
        if unit is None or unit == own or unit == "apns_exporter":
            continue
        if RANKS[unit] >= RANKS[own]:
            bad.add(imported)
    return bad


def _dials(tree: ast.AST) -> set[str]:
    """Calls that open or resolve an outgoing connection: asyncio, loop or socket."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in DIAL_CALLS:
                found.add(node.func.attr)
        elif isinstance(node, ast.ImportFrom) and node.module in ("asyncio", "socket"):
            found.update(a.name for a in node.names if a.name in DIAL_CALLS)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_module_imports_only_lower_layers(path: Path) -> None:
    """Every package module imports only subpackages below its own in the layering."""
    name = _module_name(path)
    imports = _imports(ast.parse(path.read_text(), str(path)))
    if name.startswith("apns_exporter.mock"):
        bad = {i for i in imports if not _mock_may_import(i)}
        assert not bad, f"the mock must not import client code: {sorted(bad)}"
    else:
        assert not _violations(name, imports), f"{name} imports a unit at or above its layer"


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_only_the_client_dials(path: Path) -> None:
    """No module outside client/ and mock/ opens or resolves a connection itself."""
    name = _module_name(path)
    if name.startswith(DIAL_ALLOWED):
        return
    assert not _dials(ast.parse(path.read_text(), str(path))), f"{name} dials; use client/"


def test_dial_check_catches_open_connection() -> None:
    """The dial checker flags asyncio.open_connection and loop.create_connection."""
    tree = ast.parse(
        "async def f(loop):\n"
        "    await asyncio.open_connection('h', 1)\n"
        "    await loop.create_connection(p, 'h', 1)\n"
        "    socket.socket()\n"
    )
    assert _dials(tree) == {"open_connection", "create_connection", "socket"}


def test_mock_check_catches_client_imports() -> None:
    """The mock may use the APNs vocabulary but not the client's protocol or tokens."""
    assert _mock_may_import("apns_exporter.apns.Reason")
    assert not _mock_may_import("apns_exporter.client.protocol")
    assert not _mock_may_import("apns_exporter.creds.tokens.ProviderToken")


def test_layering_check_catches_an_upward_import() -> None:
    """The checker flags the client importing a probe, and allows siblings in one unit."""
    assert _violations("apns_exporter.client.protocol", {"apns_exporter.probes.ping"}) == {
        "apns_exporter.probes.ping"
    }
    assert not _violations("apns_exporter.client.channel", {"apns_exporter.client.connection"})
    assert _violations("apns_exporter.config.models", {"apns_exporter.client.tls"}) == {
        "apns_exporter.client.tls"
    }


def test_every_module_has_a_rank() -> None:
    """A new subpackage or top-level module must be placed in the layering before it lands."""
    unranked = [
        _module_name(p)
        for p in MODULES
        if not _module_name(p).startswith("apns_exporter.mock") and _unit(_module_name(p)) is None
    ]
    assert unranked == []


def _service_writes(tree: ast.AST) -> set[str]:
    """Assignments to an attribute of the exporter (the service's state), as source text."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and "exporter" in ast.unparse(target.value).lower()
            ):
                found.add(ast.unparse(target))
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if _module_name(p).startswith("apns_exporter.web")],
    ids=_module_name,
)
def test_web_never_writes_service_state(path: Path) -> None:
    """Web modules read the exporter's state to serve pages; they never assign to it."""
    assert _service_writes(ast.parse(path.read_text(), str(path))) == set()


def test_service_write_check_catches_an_assignment() -> None:
    """The checker flags ``exporter.receipt_url = url`` and the app-key lookup form."""
    tree = ast.parse("exporter.receipt_url = url\nrequest.app[EXPORTER_KEY].config = c\nx.y = 1\n")
    assert _service_writes(tree) == {"exporter.receipt_url", "request.app[EXPORTER_KEY].config"}
