"""Entry-level header facts: resolution, experimental method, release date, oligomeric state.

mmCIF (and BinaryCIF) categories read: ``refine.ls_d_res_high`` (X-ray), then
``em_3d_reconstruction.resolution`` (cryo-EM), then ``reflns.d_resolution_high``;
``exptl.method``; the initial release date = ``pdbx_audit_revision_history.revision_date`` of
ordinal 1; the first assembly from ``pdbx_struct_assembly_gen`` (+ ``struct_asym``,
``entity_poly`` to count only polypeptide chains, times the number of operators).
PDB format: ``REMARK   2 RESOLUTION.``, ``EXPDTA``, ``REVDAT   1`` (initial release),
``REMARK 350 BIOMOLECULE: 1``.

>>> count_operators("1"), count_operators("1,2"), count_operators("(1-60)"), count_operators("(1-5)(6-7)")
(1, 2, 60, 10)
>>> parse_pdb_date("15-OCT-76"), parse_pdb_date("01-JUN-22")
(datetime.date(1976, 10, 15), datetime.date(2022, 6, 1))
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime

_MISSING = ("?", ".", "")
Items = Callable[[str, str], list[str]]  # (category, field) -> values as strings


@dataclasses.dataclass(frozen=True)
class EntryInfo:
    """Entry-level facts (None where the file does not say).

    ``oligomeric_count`` is the number of protein chains in the first biological assembly
    (operators included) when the file defines one, else the number of protein chains in the
    asymmetric unit; ``oligomeric_source`` says which (``"assembly"`` or ``"asym_unit"``).
    """

    resolution: float | None = None
    method: str | None = None
    release_date: date | None = None
    oligomeric_count: int = 1
    oligomeric_source: str = "asym_unit"


def count_operators(expression: str) -> int:
    """Number of transformations in an mmCIF ``oper_expression`` (products of groups)."""
    groups = re.findall(r"\(([^)]*)\)", expression) or [expression]
    total = 1
    for group in groups:
        n = 0
        for item in group.split(","):
            item = item.strip()
            if not item:
                continue
            lo, sep, hi = item.partition("-")
            if sep and lo.strip().isdigit() and hi.strip().isdigit():
                n += int(hi) - int(lo) + 1
            else:
                n += 1
        total *= max(n, 1)
    return total


def parse_pdb_date(text: str) -> date | None:
    """``dd-MMM-yy`` as used in PDB-format headers; two-digit years >= 70 are 19xx."""
    try:
        d = datetime.strptime(text.strip().title(), "%d-%b-%y").date()
    except ValueError:
        return None
    if d.year >= 2070:  # strptime maps 69-99 to 19xx and 00-68 to 20xx; PDB began in 1971
        d = d.replace(year=d.year - 100)
    return d


def biotite_items(block) -> Items:
    """Field reader over a biotite CIF/BinaryCIF block."""

    def items(category: str, field: str) -> list[str]:
        if category not in block:
            return []
        cat = block[category]
        if field not in cat:
            return []
        return [str(v) for v in cat[field].as_array()]

    return items


def gemmi_items(block) -> Items:
    """Field reader over a ``gemmi.cif.Block`` (values unquoted; ``?``/``.`` kept)."""
    import gemmi

    def items(category: str, field: str) -> list[str]:
        col = block.find_values(f"_{category}.{field}")
        return [gemmi.cif.as_string(v) if v not in ("?", ".") else v for v in col]

    return items


def _first_float(values: Sequence[str]) -> float | None:
    for v in values:
        if v not in _MISSING:
            try:
                x = float(v)
            except ValueError:
                continue
            if math.isfinite(x) and x > 0:
                return x
    return None


def cif_header_info(items: Items, n_protein_chains: int) -> EntryInfo:
    """Header facts from an mmCIF/BinaryCIF block read through ``items`` (``biotite_items``
    or ``gemmi_items``); ``n_protein_chains`` = protein chains read from the model."""
    resolution = None
    for category, field in (
        ("refine", "ls_d_res_high"),
        ("em_3d_reconstruction", "resolution"),
        ("reflns", "d_resolution_high"),
    ):
        resolution = _first_float(items(category, field))
        if resolution is not None:
            break
    methods = [m for m in items("exptl", "method") if m not in _MISSING]
    release = None
    dates = items("pdbx_audit_revision_history", "revision_date")
    ordinals = items("pdbx_audit_revision_history", "ordinal")
    if dates:
        pick = dates[ordinals.index("1")] if "1" in ordinals else min(dates)
        try:
            release = date.fromisoformat(pick)
        except ValueError:
            release = None
    count, where = _cif_assembly_count(items)
    if count is None:
        count, where = n_protein_chains, "asym_unit"
    return EntryInfo(
        resolution=resolution,
        method="; ".join(methods) or None,
        release_date=release,
        oligomeric_count=count,
        oligomeric_source=where,
    )


def _cif_assembly_count(items: Items) -> tuple[int | None, str]:
    assembly_ids = items("pdbx_struct_assembly_gen", "assembly_id")
    if not assembly_ids:
        return None, "asym_unit"
    opers = items("pdbx_struct_assembly_gen", "oper_expression")
    asyms = items("pdbx_struct_assembly_gen", "asym_id_list")
    asym_entity = dict(
        zip(items("struct_asym", "id"), items("struct_asym", "entity_id"))
    )
    poly_type = dict(
        zip(items("entity_poly", "entity_id"), items("entity_poly", "type"))
    )
    if not asym_entity or not poly_type:
        return None, "asym_unit"
    first = assembly_ids[0]
    total = 0
    for aid, oper, asym_list in zip(assembly_ids, opers, asyms):
        if aid != first:
            continue
        n = sum(
            "polypeptide" in poly_type.get(asym_entity.get(a.strip(), ""), "")
            for a in asym_list.split(",")
        )
        total += n * count_operators(oper)
    return total, "assembly"


def pdb_header_info(lines: Sequence[str], protein_chains: set[str]) -> EntryInfo:
    """Header facts from PDB-format lines (``protein_chains`` = chain ids we read)."""
    resolution = None
    methods: list[str] = []
    release = None
    for line in lines:
        rec = line[:6]
        if rec == "ATOM  " or rec == "HETATM":
            break  # header is over; saves scanning coordinate lines
        if rec == "EXPDTA":
            methods.extend(m.strip() for m in line[10:79].split(";") if m.strip())
        elif line.startswith("REMARK   2 RESOLUTION."):
            m = re.search(r"RESOLUTION\.\s+([0-9.]+)", line)
            resolution = _first_float([m.group(1)]) if m else None
        elif rec == "REVDAT" and line[7:10].strip() == "1" and line[10:12].strip() == "":
            release = parse_pdb_date(line[13:22])
    count = _pdb_assembly_count(lines, protein_chains)
    return EntryInfo(
        resolution=resolution,
        method="; ".join(methods) or None,
        release_date=release,
        oligomeric_count=count if count is not None else len(protein_chains),
        oligomeric_source="assembly" if count is not None else "asym_unit",
    )


def _pdb_assembly_count(lines: Sequence[str], protein_chains: set[str]) -> int | None:
    in_first = False
    seen_any = False
    total = 0
    chains: list[str] = []
    ops: set[str] = set()

    def flush() -> None:
        nonlocal total
        if chains:
            total += sum(c in protein_chains for c in chains) * max(len(ops), 1)

    for line in lines:
        if not line.startswith("REMARK 350"):
            if seen_any and line[:6] in ("ATOM  ", "HETATM"):
                break
            continue
        body = line[10:].strip()
        if body.startswith("BIOMOLECULE:"):
            if in_first:
                break  # second biomolecule: the first is complete
            in_first = seen_any = True
            continue
        if not in_first:
            continue
        if "APPLY THE FOLLOWING TO CHAINS:" in body:
            flush()
            chains = [c.strip() for c in body.split(":", 1)[1].split(",") if c.strip()]
            ops = set()
        elif body.startswith("AND CHAINS:"):
            chains += [c.strip() for c in body.split(":", 1)[1].split(",") if c.strip()]
        elif body.startswith("BIOMT"):
            parts = body.split()
            if len(parts) > 1:
                ops.add(parts[1])
    flush()
    return total if seen_any and total > 0 else None
