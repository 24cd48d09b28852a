"""The one safe reader and the one change fingerprint: regular files only, bounded, one line."""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from apns_exporter import files
from apns_exporter.errors import FileError
from apns_exporter.mock.pki import CertificateAuthority

TWO_GIB = 2 * 1024**3


def _refused(path: Path, limit: int = files.CERTIFICATE_LIMIT) -> FileError:
    started = time.monotonic()
    with pytest.raises(FileError) as caught:
        files.read_bytes(path, kind="signing key", limit=limit)
    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert message.startswith(f"signing key {path}: ")
    assert "\n" not in message
    assert message.endswith(")")  # what to do, in parentheses
    return caught.value


def test_reads_a_regular_file_through_a_symlink(tmp_path: Path) -> None:
    """A regular file is read whole, also through a symlink (as in a Kubernetes Secret)."""
    target = tmp_path / "real.pem"
    target.write_bytes(b"x" * 1000)
    link = tmp_path / "link.pem"
    link.symlink_to(target)
    assert files.read_bytes(link, kind="certificate", limit=1000) == b"x" * 1000


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO is refused as not a regular file, without waiting for a writer."""
    fifo = tmp_path / "AuthKey.p8"
    os.mkfifo(fifo)
    error = _refused(fifo)
    assert error.reason == "not_regular"
    assert "FIFO" in str(error)


def test_dev_zero_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    """A symlink to /dev/zero is refused as a character device, reading nothing."""
    link = tmp_path / "AuthKey.p8"
    link.symlink_to("/dev/zero")
    error = _refused(link)
    assert error.reason == "not_regular"
    assert "character device" in str(error)


def test_sparse_file_above_the_bound_is_refused_unread(tmp_path: Path) -> None:
    """A 2 GiB sparse file is refused by its size, and the process does not grow by it."""
    sparse = tmp_path / "AuthKey.p8"
    with sparse.open("wb") as handle:
        handle.truncate(TWO_GIB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = _refused(sparse)
    assert error.reason == "too_large"
    assert "larger than 1 MiB" in str(error)
    # ru_maxrss is in KiB: the peak grew by far less than one bound.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024


def test_a_file_just_above_the_bound_is_too_large(tmp_path: Path) -> None:
    """The bound is exact: limit bytes are read, limit + 1 are refused."""
    path = tmp_path / "secret"
    path.write_bytes(b"s" * 65)
    assert files.read_bytes(path, kind="secret", limit=65) == b"s" * 65
    assert _refused(path, limit=64).reason == "too_large"


def test_directory_and_missing_file(tmp_path: Path) -> None:
    """A directory and a missing file each get their own reason and advice."""
    assert _refused(tmp_path).reason == "not_regular"
    assert "directory" in str(_refused(tmp_path))
    missing = _refused(tmp_path / "nope.p8")
    assert missing.reason == "not_found"
    assert "check the path" in str(missing)


async def test_async_read_leaves_the_loop_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_bytes_async reads in a worker thread: the loop runs other tasks meanwhile."""
    path = tmp_path / "config.yml"
    path.write_bytes(b"a: 1\n")
    threads: list[int] = []
    real = files.read_bytes

    def spy(*args: object, **kwargs: object) -> bytes:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "read_bytes", spy)
    data = await files.read_bytes_async(path, kind="config file", limit=files.CONFIG_LIMIT)
    assert data == b"a: 1\n"
    assert threads
    assert threads[0] != threading.get_ident()


def test_ca_data_takes_pem_and_der_and_refuses_junk(ca: CertificateAuthority) -> None:
    """ca_data accepts a CA as PEM or DER and refuses anything else as malformed, in one line."""
    assert files.ca_data(ca.cert_pem, path="ca.pem") == ca.cert_pem.decode()
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    assert files.ca_data(der, path="ca.der") == der
    with pytest.raises(FileError) as caught:
        files.ca_data(b"not a certificate", path="ca.der")
    assert caught.value.reason == "malformed"
    assert str(caught.value).startswith("CA file ca.der: ")


def test_private_copy_is_private_and_removed() -> None:
    """private_copy holds the bytes in a 0600 file that is gone after the block."""
    with files.private_copy(b"secret") as name:
        assert Path(name).read_bytes() == b"secret"
        assert os.stat(name).st_mode & 0o777 == 0o600
    assert not Path(name).exists()


# --- fingerprints ----------------------------------------------------------------------------


def _same_stat(new: Path, old: Path) -> None:
    """Give ``new`` the size and mtime of ``old``, so only the inode can tell them apart."""
    stat = old.stat()
    os.utime(new, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_fingerprint_stable_and_sees_edits(tmp_path: Path) -> None:
    """Unchanged files fingerprint equal; an edit or a deletion changes the fingerprint."""
    path = tmp_path / "push.pem"
    path.write_bytes(b"one")
    before = files.fingerprint([path])
    assert files.fingerprint([path]) == before
    path.write_bytes(b"two!")
    assert files.fingerprint([path]) != before
    path.unlink()
    assert files.fingerprint([path]) == ((None, None, None),)


def test_kubernetes_secret_symlink_swap_changes_fingerprint(tmp_path: Path) -> None:
    """Re-pointing ``..data`` to a new timestamped directory is noticed, even with equal stats."""
    old, new = tmp_path / "..2025_01_01_00_00_00.1", tmp_path / "..2025_01_02_00_00_00.2"
    for directory in (old, new):
        directory.mkdir()
        (directory / "tls.crt").write_bytes(b"same-size")
    _same_stat(new / "tls.crt", old / "tls.crt")
    (tmp_path / "..data").symlink_to(old.name)
    path = tmp_path / "tls.crt"
    path.symlink_to("..data/tls.crt")
    before = files.fingerprint([path])
    assert before[0][2] is not None  # the ..data link is part of it
    staging = tmp_path / "..data_tmp"
    staging.symlink_to(new.name)
    os.replace(staging, tmp_path / "..data")  # what kubelet's atomic writer does
    assert files.fingerprint([path]) != before


def test_certbot_live_symlink_swap_changes_fingerprint(tmp_path: Path) -> None:
    """Re-pointing ``live/cert.pem`` from archive/cert1.pem to cert2.pem is noticed."""
    archive, live = tmp_path / "archive", tmp_path / "live"
    archive.mkdir()
    live.mkdir()
    (archive / "cert1.pem").write_bytes(b"same-size")
    (archive / "cert2.pem").write_bytes(b"same-size")
    _same_stat(archive / "cert2.pem", archive / "cert1.pem")
    path = live / "cert.pem"
    path.symlink_to("../archive/cert1.pem")
    before = files.fingerprint([path])
    staging = live / "cert.pem.new"
    staging.symlink_to("../archive/cert2.pem")
    os.replace(staging, path)
    after = files.fingerprint([path])
    assert after != before
    assert after[0][0] != before[0][0]  # the followed stat sees the new inode


def test_watch_reports_a_change_once_marked(tmp_path: Path) -> None:
    """A Watch is changed before its first mark, quiet after it, and changed by a swap to a FIFO."""
    path = tmp_path / "AuthKey.p8"
    path.write_bytes(b"key")
    watch = files.Watch([path])
    assert watch.changed()
    watch.mark()
    assert not watch.changed()
    path.unlink()
    os.mkfifo(path)
    assert watch.changed()
