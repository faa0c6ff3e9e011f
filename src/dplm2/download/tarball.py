"""The bulk AlphaFold DB SwissProt archive: stream it and extract members safely.

``swissprot_pdb_v4.tar`` is a flat tar of per-entry gzipped model files
(``AF-<acc>-F1-model_v4.pdb.gz``). It is read as a stream (``tarfile`` mode ``r|*``): nothing
is held in memory beyond one member, and no copy of the archive is kept on disk.

Every member is vetted before a byte is written: regular files only (no links, devices, FIFOs,
folders), a plain name (no absolute path, no ``..``, no sub-folder) that matches the AFDB model
name pattern; ``tarfile.data_filter`` (Python >= 3.12, and 3.11.4+) is applied as a second
opinion. Refused members are logged and reported, never extracted.
"""

from __future__ import annotations

import logging
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import urllib3
from tqdm import tqdm

from dplm2.download.fetch import FetchError, Fetcher, TransientError, gzip_digest
from dplm2.download.ids import uniprot_accession
from dplm2.download.manifest import Row
from dplm2.io import atomic_path

log = logging.getLogger(__name__)

MEMBER_RE = re.compile(r"^AF-(?P<acc>[A-Z0-9]+)-F1-model_v\d+\.(?P<fmt>pdb|cif)\.gz$")


def vet_member(member: tarfile.TarInfo, dest: Path) -> str | None:
    """Why ``member`` must not be extracted into ``dest``, or ``None`` when it is safe."""
    name = member.name
    pure = PurePosixPath(name)
    if name.startswith(("/", "\\")) or pure.is_absolute() or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in pure.parts or "\\" in name:
        return "path escapes the destination ('..' or backslash)"
    if member.issym() or member.islnk():
        return f"link ({member.linkname!r})"
    if not member.isfile():
        return "not a regular file (device, FIFO or folder)"
    if len(pure.parts) != 1:
        return "member in a sub-folder (the archive is flat)"
    if not MEMBER_RE.match(name):
        return "not an AFDB model file name"
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:
        try:
            data_filter(member, str(dest))
        except tarfile.FilterError as exc:
            return f"refused by tarfile.data_filter: {exc}"
    return None


def extract_stream(
    stream: BinaryIO,
    dest: Path,
    source_url: str,
    only: set[str] | None = None,
) -> tuple[list[Row], list[tuple[str, str]]]:
    """Extract the safe model members of a tar stream into ``dest``.

    Parameters
    ----------
    stream : file object
        The archive, read sequentially.
    dest : Path
        Output folder (flat: one ``AF-…gz`` file per entry).
    source_url : str
        Recorded as each row's ``url`` (``<archive url>#<member>``).
    only : set of str, optional
        Extract only these accessions (others are read past).

    Returns
    -------
    rows, refused
        Manifest rows (``ok``, or ``skipped`` when a valid copy is already there) and
        ``(member name, reason)`` of every refused member.
    """
    dest.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    refused: list[tuple[str, str]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for member in tqdm(tf, desc="swissprot tar", unit="member", mininterval=5.0):
                reason = vet_member(member, dest)
                if reason is not None:
                    log.warning("%s: refused tar member %r: %s", source_url, member.name, reason)
                    refused.append((member.name, reason))
                    continue
                m = MEMBER_RE.match(member.name)
                assert m is not None  # vet_member checked the name
                acc = uniprot_accession(m.group("acc"))
                if only is not None and acc not in only:
                    continue
                rows.append(_extract_one(tf, member, acc, m.group("fmt"), dest, source_url))
    except (tarfile.TarError, EOFError) as exc:
        raise TransientError(f"{source_url}: broken tar stream ({exc})") from exc
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        # resp.raw raises urllib3's own errors (reset, read timeout, short body).
        raise TransientError(f"{source_url}: stream interrupted ({exc})") from exc
    return rows, refused


def _extract_one(
    tf: tarfile.TarFile, member: tarfile.TarInfo, acc: str, fmt: str, dest: Path, url: str
) -> Row:
    target = dest / member.name
    fmt = "mmcif" if fmt == "cif" else "pdb"
    where = f"{url}#{member.name}"
    if target.exists():
        try:
            size, sha = gzip_digest(target)
            return Row(acc, where, str(target), fmt, "swissprot_tar", size, sha, "skipped")
        except FetchError:
            target.unlink()
    src = tf.extractfile(member)
    if src is None:  # cannot happen for a vetted regular file
        raise ValueError(f"{where}: member has no data")
    try:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                while chunk := src.read(1 << 16):
                    out.write(chunk)
            size, sha = gzip_digest(tmp)  # raising here removes the temporary file
    except FetchError as exc:
        reason = str(exc).replace(str(tmp), member.name)
        return Row(acc, where, None, fmt, "swissprot_tar", None, None, "failed", reason)
    return Row(acc, where, str(target), fmt, "swissprot_tar", size, sha, "ok")


def fetch_swissprot(
    url: str, dest: Path, fetcher: Fetcher, only: Iterable[str] | None = None
) -> tuple[list[Row], list[tuple[str, str]]]:
    """Stream the archive at ``url`` and extract it (retried as a whole on network faults;
    members already extracted are then skipped, not rewritten)."""
    wanted = set(only) if only is not None else None

    def attempt() -> tuple[list[Row], list[tuple[str, str]]]:
        with fetcher.open_stream(url) as stream:
            return extract_stream(stream, dest, url, wanted)

    rows, refused = fetcher.with_retries(url, attempt)
    if wanted is not None:
        found = {r.id for r in rows}
        for acc in sorted(wanted - found):
            rows.append(
                Row(acc, url, None, None, "swissprot_tar", None, None, "failed", "not in archive")
            )
    return rows, refused
