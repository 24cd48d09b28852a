"""Reading the web config and its TLS files: regular files only, of a bounded size."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# Far above any real web.yml or PEM bundle, far below what would hurt the process.
MAX_FILE_BYTES = 1024 * 1024

FileState = tuple[int, int, int, int, int]


def check_regular(path: Path) -> os.stat_result:
    """The file's stat if it is a regular file; OSError with a plain ``strerror`` otherwise."""
    result = path.stat()
    if stat.S_ISDIR(result.st_mode):
        raise OSError(errno.EISDIR, "is a directory; point at the file inside it")
    if not stat.S_ISREG(result.st_mode):
        # A FIFO would block the reader forever, /dev/zero would never end.
        raise OSError(errno.EINVAL, "not a regular file")
    if result.st_size > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES // 1024} KiB")
    return result


def read_regular(path: Path) -> bytes:
    """The content of a regular file of at most MAX_FILE_BYTES; OSError otherwise."""
    # O_NONBLOCK: opening a FIFO that was swapped in after a stat must not hang.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES // 1024} KiB")
    return data


def file_state(path: Path | None) -> FileState | None:
    """What identifies a file's version without reading it; None if it cannot be stat'ed.

    Following symlinks, so a Kubernetes Secret's symlink swap shows as a new inode.
    """
    if path is None:
        return None
    try:
        s = path.stat()
    except OSError:
        return None
    return (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
