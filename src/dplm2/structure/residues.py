"""Residue-name mapping: three-letter component ids to one-letter codes, modified -> parent.

The 20 standard amino acids map to themselves; a modified residue maps to its parent's letter
(MSE -> M, SEP -> S, ...) using the Chemical Component Dictionary (CCD) that biotite ships
(``_chem_comp.mon_nstd_parent_comp_id``, then ``one_letter_code``); anything else (UNK, D-amino
acids without a parent, SEC/PYL, ASX/GLX) becomes ``X``. Lookups are cached: the CCD query costs
tens of microseconds, the cache makes it free after the first time.

>>> one_letter("MSE"), one_letter("ALA"), one_letter("UNK"), one_letter("SEC")
('M', 'A', 'X', 'X')
>>> is_peptide("MSE"), is_peptide("HOH"), is_peptide("DA")
(True, False, False)
>>> is_d_amino("DLE"), is_d_amino("LEU"), is_d_amino("GLY"), is_d_amino("HOH")
(True, False, False, False)
>>> three_letter("M"), three_letter("X")
('MET', 'UNK')
"""

from __future__ import annotations

import functools

import biotite.structure.info as info

STANDARD = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C",
    "GLN": "Q", "GLU": "E", "GLY": "G", "HIS": "H", "ILE": "I",
    "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F", "PRO": "P",
    "SER": "S", "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V",
}  # fmt: skip
THREE = {v: k for k, v in STANDARD.items()}
ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
UNKNOWN = "X"


@functools.lru_cache(maxsize=None)
def one_letter(res_name: str) -> str:
    """One-letter code of a residue (standard, or the parent of a modified one), else ``X``."""
    name = res_name.upper()
    if name in STANDARD:
        return STANDARD[name]
    parent = _ccd_parent(name)
    if parent in STANDARD:
        return STANDARD[parent]
    return UNKNOWN


@functools.lru_cache(maxsize=None)
def is_peptide(res_name: str) -> bool:
    """True when the CCD says the component links as a peptide (L-, D- or plain peptide)."""
    name = res_name.upper()
    if name in STANDARD or name == "UNK":
        return True
    try:
        link = info.link_type(name)
    except KeyError:  # not in the CCD at all: a non-standard, unknown ligand name
        return False
    return link is not None and "PEPTIDE" in link.upper() and "NON-POLYMER" not in link.upper()


@functools.lru_cache(maxsize=None)
def is_d_amino(res_name: str) -> bool:
    """True for D-amino acids: CCD link type ``D-PEPTIDE LINKING`` (or another ``D-`` peptide
    type such as ``D-PEPTIDE NH3 AMINO TERMINUS``). Glycine is achiral and never D."""
    try:
        link = info.link_type(res_name.upper())
    except KeyError:
        return False
    return link is not None and link.upper().startswith("D-") and "PEPTIDE" in link.upper()


def three_letter(code: str) -> str:
    """Three-letter name for a one-letter code; ``X`` (or anything unknown) gives ``UNK``."""
    return THREE.get(code.upper(), "UNK")


def _ccd_parent(name: str) -> str | None:
    try:
        category = info.get_from_ccd("chem_comp", name)
    except KeyError:
        return None
    if category is None or "mon_nstd_parent_comp_id" not in category:
        return None
    parent = category["mon_nstd_parent_comp_id"].as_item()
    if not isinstance(parent, str) or parent in ("?", "."):
        return None
    # A few components list several parents ("ASP,GLY"): ambiguous, treat as unknown.
    return parent.upper() if "," not in parent else None
