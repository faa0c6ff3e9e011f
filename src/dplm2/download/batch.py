"""Fetch many entries in parallel: resume, format/version fallback, one manifest row each."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from dplm2.download.fetch import (
    Fetcher,
    FetchError,
    NotFoundError,
    ServerUnreachable,
    gzip_digest,
)
from dplm2.download.manifest import Row
from dplm2.download.sources import Candidate

log = logging.getLogger(__name__)


def existing(entry: str, candidates: Sequence[Candidate]) -> Row | None:
    """A ``skipped`` row when a complete file from an earlier run is on disk, else ``None``.

    A present but corrupt file (interrupted copy, bad disk) is deleted so it is fetched again.
    """
    for cand in candidates:
        if not cand.path.exists():
            continue
        try:
            size, sha = gzip_digest(cand.path)
        except FetchError as exc:
            log.warning("%s: removing incomplete file: %s", entry, exc)
            cand.path.unlink(missing_ok=True)
            continue
        return Row(entry, cand.url, str(cand.path), cand.format, "files", size, sha, "skipped")
    return None


def fetch_entry(entry: str, candidates: Sequence[Candidate], fetcher: Fetcher) -> Row:
    """Fetch one entry, trying ``candidates`` in order; never raises for network trouble.

    A 404 moves on to the next candidate; any other failure (after the retries) ends the
    entry as ``failed`` with the reason.
    """
    if not candidates:
        raise ValueError(f"{entry}: no candidate URL (check formats/versions in the config)")
    done = existing(entry, candidates)
    if done is not None:
        return done
    missing = []
    for cand in candidates:
        try:
            size, sha = fetcher.download(cand.url, cand.path, cand.compressed)
        except NotFoundError:
            missing.append(cand.url)
            continue
        except FetchError as exc:
            return Row(entry, cand.url, None, cand.format, "files", None, None, "failed", str(exc))
        return Row(entry, cand.url, str(cand.path), cand.format, "files", size, sha, "ok")
    return Row(
        entry,
        candidates[-1].url,
        None,
        None,
        "files",
        None,
        None,
        "failed",
        "not found at " + ", ".join(missing),
    )


def fetch_all(
    entries: Sequence[str],
    candidates: Callable[[str], list[Candidate]],
    fetcher: Fetcher,
    threads: int = 1,
    desc: str = "download",
) -> list[Row]:
    """Fetch ``entries`` with ``threads`` workers; rows come back in input order.

    Raises :class:`ServerUnreachable` (one message, no manifest) when the server stopped
    accepting connections: the remaining entries then fail at once instead of one by one."""
    plans = [(e, candidates(e)) for e in entries]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        futures = [pool.submit(fetch_entry, e, c, fetcher) for e, c in plans]
        rows = [f.result() for f in tqdm(futures, desc=desc, unit="file", mininterval=2.0)]
    if fetcher.unreachable:
        raise ServerUnreachable(fetcher.unreachable)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    log.info("%s: %s", desc, counts)
    return rows

