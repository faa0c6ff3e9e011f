"""Identifiers: validation, ID-list files, sharding, and the RCSB search / holdings services.

Every identifier that reaches a file path goes through :func:`pdb_id` or :func:`uniprot_accession`
first; both accept only a fixed alphabet, so no identifier can form a path outside the data folder
(``../x``, ``/etc``, ``a/b`` are rejected).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dplm2.download.config import SearchConfig

log = logging.getLogger(__name__)

PDB_ID_RE = re.compile(r"^[0-9][a-z0-9]{3}$")
# UniProt's documented accession pattern (https://www.uniprot.org/help/accession_numbers).
UNIPROT_RE = re.compile(
    r"^(?:[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2})$"
)
SHARD_RE = re.compile(r"^(\d+)-of-(\d+)$")


def pdb_id(text: str) -> str:
    """Return the lower-cased 4-character PDB id or raise ``ValueError``.

    >>> pdb_id(" 1AKI ")
    '1aki'
    >>> pdb_id("../x")
    Traceback (most recent call last):
    ...
    ValueError: invalid PDB id '../x' (expected 4 characters: a digit then 3 letters/digits)
    """
    value = text.strip().lower()
    if not PDB_ID_RE.match(value):
        raise ValueError(
            f"invalid PDB id {text!r} (expected 4 characters: a digit then 3 letters/digits)"
        )
    return value


def uniprot_accession(text: str) -> str:
    """Return the upper-cased UniProt accession or raise ``ValueError``.

    >>> uniprot_accession("p60709")
    'P60709'
    >>> uniprot_accession("A0A009DXE7")
    'A0A009DXE7'
    """
    value = text.strip().upper()
    if not UNIPROT_RE.match(value):
        raise ValueError(f"invalid UniProt accession {text!r}")
    return value


def validator(kind: str) -> Callable[[str], str]:
    """The validating normaliser for ``kind`` (``"pdb"`` or ``"afdb"``)."""
    if kind == "pdb":
        return pdb_id
    if kind == "afdb":
        return uniprot_accession
    raise ValueError(f"unknown source kind {kind!r}; expected 'pdb' or 'afdb'")


def normalise_ids(ids: Iterable[str], kind: str, where: str) -> list[str]:
    """Validate, normalise, deduplicate (first occurrence kept) and return ``ids``.

    Raises ``ValueError`` naming ``where`` and the offending line on the first bad id.
    """
    check = validator(kind)
    seen: dict[str, None] = {}
    for n, raw in enumerate(ids, start=1):
        try:
            seen.setdefault(check(raw), None)
        except ValueError as exc:
            raise ValueError(f"{where}: item {n}: {exc}") from None
    return list(seen)


def read_id_file(path: str | Path, kind: str) -> list[str]:
    """Read one id per line (blank lines and ``#`` comments ignored), validated.

    Whitespace- or comma-separated ids on one line are accepted too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ID list not found")
    tokens: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0]
        tokens.extend(t for t in re.split(r"[\s,]+", line) if t)
    if not tokens:
        raise ValueError(f"{path}: ID list is empty")
    return normalise_ids(tokens, kind, str(path))


def write_id_file(path: str | Path, ids: list[str], header: str = "") -> None:
    """Write ``ids`` one per line (atomically), with an optional ``#`` header line."""
    from dplm2.io import atomic_write_text

    text = (f"# {header}\n" if header else "") + "".join(f"{i}\n" for i in ids)
    atomic_write_text(path, text)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse Snakemake's scatter item ``"i-of-n"`` (1-based) into ``(index0, count)``.

    >>> parse_shard("2-of-3")
    (1, 3)
    """
    m = SHARD_RE.match(text.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"invalid shard {text!r}; expected 'i-of-n' with 1 <= i <= n")
    return int(m.group(1)) - 1, int(m.group(2))


def shard_ids(ids: list[str], index: int, count: int) -> list[str]:
    """Contiguous block ``index`` of ``count`` near-equal blocks of ``ids`` (order kept).

    >>> [shard_ids(list("abcde"), i, 2) for i in range(2)]
    [['a', 'b', 'c'], ['d', 'e']]
    """
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} out of range for {count} shards")
    base, extra = divmod(len(ids), count)
    start = index * base + min(index, extra)
    return ids[start : start + base + (1 if index < extra else 0)]


def search_query(cfg: SearchConfig, start: int, rows: int) -> dict[str, Any]:
    """RCSB search API (v2) JSON body: protein entries filtered by resolution, method, date.

    Attribute names are those of the RCSB schema
    (https://search.rcsb.org/structure-search-attributes.html).
    """
    nodes: list[dict[str, Any]] = [
        _text("entity_poly.rcsb_entity_polymer_type", "exact_match", "Protein")
    ]
    if cfg.resolution_max is not None:
        nodes.append(
            _text("rcsb_entry_info.resolution_combined", "less_or_equal", cfg.resolution_max)
        )
    if cfg.methods:
        nodes.append(_text("exptl.method", "in", list(cfg.methods)))
    if cfg.release_date_max:
        nodes.append(
            _text("rcsb_accession_info.initial_release_date", "less_or_equal", cfg.release_date_max)
        )
    if cfg.release_date_min:
        nodes.append(
            _text(
                "rcsb_accession_info.initial_release_date", "greater_or_equal", cfg.release_date_min
            )
        )
    return {
        "query": {"type": "group", "logical_operator": "and", "nodes": nodes},
        "return_type": "entry",
        "request_options": {
            "paginate": {"start": start, "rows": rows},
            "results_content_type": ["experimental"],
            "sort": [{"sort_by": "rcsb_entry_container_identifiers.entry_id", "direction": "asc"}],
        },
    }


def _text(attribute: str, operator: str, value: Any) -> dict[str, Any]:
    return {
        "type": "terminal",
        "service": "text",
        "parameters": {"attribute": attribute, "operator": operator, "value": value},
    }


def rcsb_search(cfg: SearchConfig, post: Callable[[str, dict], tuple[int, bytes]]) -> list[str]:
    """Run the search page by page and return the validated, lower-cased entry ids.

    ``post(url, json_body) -> (status, body)`` does the HTTP call (with the stage's retries).
    HTTP 204 means no hit.
    """
    ids: list[str] = []
    start = 0
    while True:
        status, body = post(cfg.url, search_query(cfg, start, cfg.page_size))
        if status == 204:
            break
        try:
            payload = json.loads(body)
            hits = [h["identifier"] for h in payload.get("result_set", [])]
            total = int(payload.get("total_count", 0))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{cfg.url}: unexpected search response ({exc})") from exc
        ids.extend(hits)
        start += len(hits)
        log.info("RCSB search: %d / %d entries", start, total)
        if not hits or start >= total:
            break
    return normalise_ids(ids, "pdb", cfg.url)


def rcsb_holdings(url: str, get: Callable[[str], bytes]) -> list[str]:
    """Current entry ids from the RCSB holdings service (a JSON list of ids)."""
    try:
        payload = json.loads(get(url))
    except ValueError as exc:
        raise ValueError(f"{url}: holdings response is not JSON ({exc})") from exc
    if not isinstance(payload, list):
        raise ValueError(f"{url}: holdings response is not a JSON list")
    return sorted(normalise_ids(payload, "pdb", url))
