"""The exception tree: one argument order and closed reason sets, checked when raised."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from apns_exporter import errors

PACKAGE = Path(__file__).resolve().parent.parent / "apns_exporter"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (errors.ConnectFailed, "dns"),
        (errors.ConnectionLost, "goaway"),
        (errors.RequestFailed, "stream_reset"),
        (errors.CredentialError, "bad_p8"),
        (errors.ReceiptRejected, "replay"),
    ],
)
def test_reason_comes_first_and_message_second(
    kind: type[errors.ReasonedError], reason: str
) -> None:
    """Every reasoned error takes (reason, message) and exposes both."""
    error = kind(reason, "what happened")
    assert (error.reason, str(error)) == (reason, "what happened")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (errors.ConnectionLost, "closed"),
        (errors.ConnectFailed, "stream_reset"),
        (errors.CredentialError, "dns"),
        (errors.ReceiptRejected, "nope"),
    ],
)
def test_a_reason_outside_the_closed_set_is_refused(
    kind: type[errors.ReasonedError], reason: str
) -> None:
    """A reason outside a class's documented set fails where it is raised, not when counted."""
    with pytest.raises(ValueError, match="is not one of"):
        kind(reason, "message")


def test_every_subclass_reason_is_a_probe_reason() -> None:
    """ProbeError's set is its subclasses' plus a crashed probe and a missing credential."""
    union = errors.ConnectFailed.REASONS | errors.ConnectionLost.REASONS
    own = {"internal", "credential"}
    assert union | errors.RequestFailed.REASONS | own == errors.ProbeError.REASONS


def test_expired_credential_carries_what_loaded() -> None:
    """An expired certificate is a CredentialError 'expired' that still carries its material."""
    error = errors.ExpiredCredential("cert.pem: expired", loaded="material")
    assert (error.reason, error.loaded) == ("expired", "material")


def _is_exception_base(base: ast.expr) -> bool:
    name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
    return name.endswith(("Error", "Exception", "Rejected"))


def test_every_exception_class_lives_in_errors() -> None:
    """No module outside errors.py (and the independent mock) defines an exception class."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py" or "mock" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(map(_is_exception_base, node.bases)):
                found.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert found == []
