"""The one way the exporter reads a file, and the one way it notices that a file changed.

Every file (config, web config, keys, certificates, CA bundles, passwords, receipt secrets)
is opened once, checked on the open descriptor to be a regular file no larger than its
kind's bound, read up to that bound and parsed from the bytes read: never re-opened by path,
so a file swapped for a FIFO, a device or a huge sparse file between a check and a read
cannot hang the process or fill its memory. Symlinks are followed (Kubernetes Secret volumes
are made of them); only what they finally point at must be a regular file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import ssl
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from apns_exporter.errors import FileError

# Bounds per kind: far above any real file of that kind, far below what would hurt the
# process (an RSS budget of 200 MiB). A config with thousands of targets stays far below
# 16 MiB; a PEM bundle of every public root is under 300 KiB.
CONFIG_LIMIT = 16 * 1024 * 1024
CERTIFICATE_LIMIT = 1024 * 1024
SECRET_LIMIT = 64 * 1024

_OPEN_FLAGS = (
    os.O_RDONLY
    # A FIFO opened for reading without a writer would block the opener forever.
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def _fail(reason: str, kind: str, path: str, problem: str) -> FileError:
    return FileError(reason, f"{kind} {path}: {problem}", path=path, problem=problem)


def _open(path: str, kind: str) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise _fail("not_found", kind, path, "file not found (check the path)") from None
    except PermissionError:
        message = "permission denied (let the exporter's user read it)"
        raise _fail("permission_denied", kind, path, message) from None
    except (OSError, ValueError) as exc:
        # ENXIO: a socket; ELOOP, ENAMETOOLONG, ENOTDIR...; ValueError: a NUL in the name.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        message = f"cannot open it: {reason} (point at a regular file)"
        raise _fail("unreadable", kind, path, message) from None


def _check(fd: int, path: str, kind: str, limit: int) -> os.stat_result:
    result = os.fstat(fd)
    if stat.S_ISDIR(result.st_mode):
        message = "is a directory, not a file (point at the file inside it)"
        raise _fail("not_regular", kind, path, message)
    if not stat.S_ISREG(result.st_mode):
        what = next((name for test, name in _NOT_REGULAR if test(result.st_mode)), "not a file")
        message = f"is {what}, not a regular file (point at a regular file)"
        raise _fail("not_regular", kind, path, message)
    if result.st_size > limit:
        raise _too_large(path, kind, limit)
    return result


def _too_large(path: str, kind: str, limit: int) -> FileError:
    message = f"larger than {_size(limit)}, the bound for a {kind} (is it the right file?)"
    return _fail("too_large", kind, path, message)


def read_bytes(path: str | os.PathLike[str], *, kind: str, limit: int) -> bytes:
    """The content of a regular file of at most ``limit`` bytes; FileError otherwise.

    ``kind`` names the file in messages ("signing key", "config file"...).
    """
    name = os.fspath(path)
    fd = _open(name, kind)
    try:
        _check(fd, name, kind, limit)
        chunks: list[bytes] = []
        left = limit + 1  # one byte more than allowed shows a file that grew since fstat
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 1024 * 1024))
            except OSError as exc:
                message = f"cannot read it: {exc.strerror or exc} (check the file)"
                raise _fail("unreadable", kind, name, message) from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise _too_large(name, kind, limit)
    return data


async def read_bytes_async(path: str | os.PathLike[str], *, kind: str, limit: int) -> bytes:
    """:func:`read_bytes` in a worker thread, for reads while the event loop serves."""
    return await asyncio.to_thread(read_bytes, path, kind=kind, limit=limit)


def check(path: str | os.PathLike[str], *, kind: str, limit: int) -> None:
    """Raise FileError unless :func:`read_bytes` would read the file (without reading it)."""
    name = os.fspath(path)
    fd = _open(name, kind)
    try:
        _check(fd, name, kind, limit)
    finally:
        os.close(fd)


def digest(path: str | os.PathLike[str], *, kind: str, limit: int) -> str:
    """SHA-256 of the file's content, or why it cannot be read (a distinct state per problem)."""
    # A FIFO swapped for /dev/zero is then a change; the same problem again is not.
    try:
        return hashlib.sha256(read_bytes(path, kind=kind, limit=limit)).hexdigest()
    except FileError as exc:
        return f"unreadable: {exc}"


def ca_data(data: bytes, *, path: str, kind: str = "CA file") -> str | bytes:
    """Trust anchors from a CA file's bytes, PEM or DER, as ``load_verify_locations`` takes them.

    Apple ships its roots as DER ``.cer`` files, so both are accepted; anything else is a
    FileError (``malformed``), raised here rather than from a context built later.
    """
    pem = b"-----BEGIN" in data
    # OpenSSL skips the text around PEM blocks; non-ASCII bytes there are comments.
    cadata: str | bytes = data.decode("ascii", "ignore") if pem else data
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=cadata)
    except (ssl.SSLError, ValueError):
        message = "no PEM or DER certificate could be read from it (check the file's content)"
        raise _fail("malformed", kind, path, message) from None
    return cadata


@contextlib.contextmanager
def private_copy(data: bytes, *, suffix: str = ".pem") -> Iterator[str]:
    """A 0600 temporary file holding ``data``, for APIs that only load from a path.

    ssl loads certificate chains only by name; handing it this copy of the bytes already
    read and checked means OpenSSL never opens the operator's file itself.
    """
    fd, name = tempfile.mkstemp(prefix="apns-exporter-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield name
    finally:
        os.unlink(name)


StatKey = tuple[int, int, int, int, int]
Fingerprint = tuple[tuple[StatKey | None, StatKey | None, StatKey | None], ...]


def _stat(path: Path, *, follow: bool) -> StatKey | None:
    try:
        s = path.stat() if follow else path.lstat()
    except (OSError, ValueError):
        return None
    return (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)


def fingerprint(paths: Iterable[Path | None]) -> Fingerprint:
    """What identifies the files' versions without reading them (stat only; never blocks).

    Per path: the file followed through symlinks, the link itself, and a sibling ``..data``
    link: Kubernetes swaps a Secret by re-pointing ``..data``, certbot by re-pointing
    live/*.pem. A missing file is None rather than an error, so a vanished file is a change.
    """
    return tuple(
        (None, None, None)
        if path is None
        else (
            _stat(path, follow=True),
            _stat(path, follow=False),
            _stat(path.parent / "..data", follow=False),
        )
        for path in paths
    )


class Watch:
    """Notices when any of some files changes: content, symlink swap, removal, appearance."""

    def __init__(self, paths: Iterable[Path | None]) -> None:
        self.paths = tuple(paths)
        self._seen: Fingerprint | None = None

    def changed(self) -> bool:
        """Whether any file differs from when :meth:`mark` was last called (True before)."""
        return fingerprint(self.paths) != self._seen

    def mark(self) -> None:
        """Remember the files as they are now (before reading them: a change mid-read shows)."""
        self._seen = fingerprint(self.paths)


__all__ = [
    "CERTIFICATE_LIMIT",
    "CONFIG_LIMIT",
    "SECRET_LIMIT",
    "FileError",
    "Watch",
    "ca_data",
    "check",
    "digest",
    "fingerprint",
    "private_copy",
    "read_bytes",
    "read_bytes_async",
]
