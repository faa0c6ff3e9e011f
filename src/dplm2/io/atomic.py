"""Atomic file writes: write to a temporary sibling, fsync, then ``os.replace``.

A reader never sees a half-written file: either the old complete file or the new one.
The temporary name lives in the same folder so the rename never crosses file systems.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    On any exception the temporary file (or folder) is removed and ``path`` is untouched.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "x.txt").read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create private (0600/0700) entries: give the result the permissions
        # an ordinary open() would have under the current umask.
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_umask())
        if not is_dir:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        if is_dir and path.exists():
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if _disk_full(exc):
            # Writers (torch, pyarrow, safetensors) often report a full disk without the path.
            raise io_error(exc, "", path) from exc
        raise


def _disk_full(exc: BaseException) -> bool:
    text = str(exc)
    return (getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            or "No space left on device" in text or "os error 28" in text)


def io_error(exc: BaseException, what: str, where: str | os.PathLike) -> OSError:
    """``exc`` restated as an ``OSError`` saying what was being written where (plus the free
    space on a full disk); torch, pyarrow and safetensors raise I/O errors naming neither."""
    code = getattr(exc, "errno", None)
    text = getattr(exc, "strerror", None) or str(exc)
    if code is None and _disk_full(exc):
        code, text = errno.ENOSPC, os.strerror(errno.ENOSPC)
    msg = f"{text} while writing {what + ' ' if what else ''}{where}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(Path(where).parent).free
            msg += f" ({free / 2**20:.1f} MiB free on that disk): free space and run again"
        except OSError:
            pass
    return OSError(code, msg)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode(encoding))
