"""Robust single-file transfers: HTTP(S) or a local mirror, retries, timeouts, gzip checks.

One :class:`Fetcher` serves every download of the stage. It speaks to ``http(s)://`` servers
with :mod:`requests` (one session per worker thread: sessions are not documented as thread-safe)
and reads ``file://`` URLs or plain paths directly, so the same code runs against the real
servers and the bundled mirror.

The retry loop is written here rather than delegated to ``urllib3.util.Retry`` because a
transfer can fail *after* the status line (reset or stalled body, truncated gzip) and those
failures must be retried and reported the same way as a 5xx; ``Retry-After`` on 429/503 is
honoured (capped by ``backoff_max``).
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import logging
import os
import random
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

import requests

from dplm2.download.config import HttpConfig
from dplm2.io import atomic_path

log = logging.getLogger(__name__)
T = TypeVar("T")
CHUNK = 1 << 16
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(Exception):
    """A transfer failed for good (after retries, or with a non-retryable error)."""


def _check_mirror_file(url: str, path: Path) -> None:
    """A local mirror's file must be a regular file: a symbolic link could pull anything
    readable on the machine into results/ (and its manifest hash) under an entry's name."""
    if path.is_symlink():
        raise FetchError(f"{url}: a symbolic link in the local mirror (to {os.readlink(path)}): "
                         "refused; put the file itself into the mirror")
    if not path.is_file():
        raise NotFoundError(f"{url}: not found in the mirror")


def _no_connection(exc: requests.RequestException) -> bool:
    """True when no connection was made at all (refused, unknown host, connect timeout), as
    opposed to a connection that failed later (reset, stalled body)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    from urllib3.exceptions import NewConnectionError

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class NotFoundError(FetchError):
    """The server (or mirror) has no such file: try the next candidate, never retry."""


class ServerUnreachable(FetchError, ConnectionError):
    """Too many consecutive connection failures: the server is down or unreachable. Not
    retried; every later transfer of the same :class:`Fetcher` fails at once with it."""


class TransientError(FetchError):
    """A failure worth retrying; ``retry_after`` is the server's requested wait, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def resolve_base(base: str, relative_to: str | Path | None = None) -> str:
    """Turn a configured base (URL, ``file://`` URL or path) into a URL without trailing slash.

    Relative paths are resolved against ``relative_to`` (the workflow folder) when given.

    >>> resolve_base("https://files.wwpdb.org/")
    'https://files.wwpdb.org'
    >>> resolve_base("mirror/pdb", "/repo")
    'file:///repo/mirror/pdb'
    """
    scheme = urllib.parse.urlparse(base).scheme
    if scheme in ("http", "https", "file"):
        return base.rstrip("/")
    if len(scheme) > 1:
        raise ValueError(f"unsupported URL scheme in {base!r} (use http(s)://, file:// or a path)")
    path = Path(base)
    if not path.is_absolute() and relative_to is not None:
        path = Path(relative_to) / path
    return path.resolve().as_uri()


def join_url(base: str, rel: str) -> str:
    """``base`` + ``/`` + ``rel`` (``rel`` already validated, no leading slash)."""
    return f"{base.rstrip('/')}/{rel.lstrip('/')}"


def local_path(url: str) -> Path | None:
    """The file a ``file://`` URL names, or ``None`` for other schemes."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(urllib.request.url2pathname(parsed.path))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after(None) is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _HashingReader:
    """File wrapper that feeds every byte read through a SHA-256."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


def gzip_digest(path: str | Path) -> tuple[int, str]:
    """Check that ``path`` is a complete, uncorrupted gzip file; return ``(bytes, sha256)``.

    Decompresses the whole file (in chunks) so the CRC-32 and length trailers are verified.
    Raises :class:`FetchError` naming the file when the check fails.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            reader = _HashingReader(raw)
            with gzip.GzipFile(fileobj=reader, mode="rb") as gz:  # type: ignore[arg-type]
                out = 0
                while chunk := gz.read(CHUNK):
                    out += len(chunk)
            reader.read()  # hash any bytes the gzip reader did not consume
    except (OSError, EOFError, zlib.error) as exc:
        raise FetchError(f"{path}: gzip integrity check failed ({exc})") from exc
    if out == 0:
        raise FetchError(f"{path}: gzip file decompresses to nothing")
    return reader.size, reader.sha.hexdigest()


class Fetcher:
    """Downloads with timeouts, exponential back-off and ``Retry-After``; thread-safe.

    Parameters
    ----------
    cfg : HttpConfig
        Timeouts, retry count and back-off.
    sleep : callable, optional
        Replaced in tests to record waits instead of sleeping.
    """

    def __init__(self, cfg: HttpConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self._sleep = sleep
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connect_failures = 0  # consecutive, over all threads and files
        #: Set once the server counted as unreachable (the message every transfer then gets).
        self.unreachable: str | None = None

    # --- transport -----------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.cfg.user_agent
            self._local.session = session
        return session

    @contextmanager
    def open(self, url: str) -> Iterator[Iterator[bytes]]:
        """Yield an iterator over the body's chunks; raise the right :class:`FetchError`."""
        path = local_path(url)
        if path is not None:
            _check_mirror_file(url, path)
            with open(path, "rb") as fh:
                yield iter(lambda: fh.read(CHUNK), b"")
            return
        resp = self._get(url)
        with resp:
            self._check_status(url, resp)
            yield self._chunks(url, resp)

    def _get(self, url: str) -> requests.Response:
        """Start a streamed GET; network errors become :class:`TransientError` (retried), and
        ``unreachable_after`` consecutive failures to connect :class:`ServerUnreachable`."""
        if self.unreachable:
            raise ServerUnreachable(self.unreachable)
        try:
            resp = self._session().get(
                url, stream=True, timeout=(self.cfg.connect_timeout, self.cfg.read_timeout)
            )
        except requests.RequestException as exc:
            if _no_connection(exc):
                self._connect_failed(url, exc)
            raise TransientError(f"{url}: {type(exc).__name__}: {exc}") from exc
        with self._lock:
            self._connect_failures = 0
        return resp

    def _connect_failed(self, url: str, exc: Exception) -> None:
        with self._lock:
            self._connect_failures += 1
            if self._connect_failures < self.cfg.unreachable_after or self.unreachable:
                return
            host = urllib.parse.urlsplit(url).netloc
            self.unreachable = (
                f"{host}: server unreachable ({self._connect_failures} consecutive connection "
                f"failures, the last for {url}: {type(exc).__name__}); stopping instead of "
                "retrying every file. Check the URL in the config (download.*.base_url / url) "
                "and the network, then run again: complete files are kept")
        log.error("%s", self.unreachable)
        raise ServerUnreachable(self.unreachable) from exc

    @contextmanager
    def open_stream(self, url: str) -> Iterator[BinaryIO]:
        """Yield a readable file object over the body (for streaming a tar)."""
        path = local_path(url)
        if path is not None:
            _check_mirror_file(url, path)
            with open(path, "rb") as fh:
                yield fh
            return
        resp = self._get(url)
        with resp:
            self._check_status(url, resp)
            resp.raw.decode_content = True
            yield resp.raw

    @staticmethod
    def _check_status(url: str, resp: requests.Response) -> None:
        code = resp.status_code
        if code in (404, 410):
            raise NotFoundError(f"{url}: HTTP {code} not found")
        if code in TRANSIENT_STATUS:
            raise TransientError(
                f"{url}: HTTP {code}", parse_retry_after(resp.headers.get("Retry-After"))
            )
        if code != 200:
            raise FetchError(f"{url}: HTTP {code} {resp.reason}")

    @staticmethod
    def _chunks(url: str, resp: requests.Response) -> Iterator[bytes]:
        try:
            yield from resp.iter_content(CHUNK)
        except requests.RequestException as exc:
            # Stalled body (read timeout), reset connection, body shorter than Content-Length.
            raise TransientError(f"{url}: body interrupted: {type(exc).__name__}: {exc}") from exc

    # --- retries -------------------------------------------------------------------------
    def with_retries(self, what: str, attempt: Callable[[], T]) -> T:
        """Call ``attempt`` until it succeeds, retrying :class:`TransientError` with back-off."""
        delay = self.cfg.backoff
        for n in range(self.cfg.retries + 1):
            try:
                return attempt()
            except TransientError as exc:
                if n == self.cfg.retries:
                    raise FetchError(f"{exc} (gave up after {n + 1} attempts)") from exc
                wait = exc.retry_after if exc.retry_after is not None else delay
                wait = min(wait, self.cfg.backoff_max)
                # Jitter spreads the retries of parallel workers (no thundering herd).
                wait += random.uniform(0, 0.1 * wait)
                log.info("%s: %s; retry %d/%d in %.2fs", what, exc, n + 1, self.cfg.retries, wait)
                self._sleep(wait)
                delay *= 2
        raise AssertionError("unreachable")

    def download(self, url: str, dest: Path, compressed: bool) -> tuple[int, str]:
        """Fetch ``url`` into ``dest`` (always stored gzipped), atomically; return size + sha256.

        ``compressed`` says the server sends gzip bytes (checked before the file is kept);
        otherwise the body is gzipped while it streams to disk.
        """

        def attempt() -> tuple[int, str]:
            with atomic_path(dest) as tmp:
                with self.open(url) as chunks:
                    if compressed:
                        with open(tmp, "wb") as fh:
                            for chunk in chunks:
                                fh.write(chunk)
                    else:
                        with gzip.open(tmp, "wb", compresslevel=6) as fh:
                            for chunk in chunks:
                                fh.write(chunk)
                try:
                    return gzip_digest(tmp)
                except FetchError as exc:
                    # A truncated or corrupt body: worth another attempt.
                    raise TransientError(f"{url}: {exc}".replace(str(tmp), "body")) from exc

        return self.with_retries(url, attempt)

    def get_bytes(self, url: str) -> bytes:
        """GET ``url`` into memory (small JSON answers), with retries."""

        def attempt() -> bytes:
            with self.open(url) as chunks:
                return b"".join(chunks)

        return self.with_retries(url, attempt)

    def post_json(self, url: str, body: dict) -> tuple[int, bytes]:
        """POST a JSON body; return ``(status, content)``; retries like a download."""

        def attempt() -> tuple[int, bytes]:
            try:
                resp = self._session().post(
                    url, json=body, timeout=(self.cfg.connect_timeout, self.cfg.read_timeout)
                )
            except requests.RequestException as exc:
                raise TransientError(f"{url}: {type(exc).__name__}: {exc}") from exc
            if resp.status_code in (200, 204):
                return resp.status_code, resp.content
            self._check_status(url, resp)
            raise FetchError(f"{url}: HTTP {resp.status_code}: {resp.text[:300]}")

        return self.with_retries(url, attempt)
