"""Shared structure handling: the one place that reads and writes structure files.

- :class:`Chain` - one protein chain: backbone ``[L, 4, 3]`` (N, CA, C, O; NaN = missing),
  ``atom_mask``, sequence, residue numbers, pLDDT; ``to_row``/``from_row`` for chain shards.
- :func:`read_chains` / :func:`read_entry` - mmCIF / PDB / BinaryCIF (``.gz`` too).
- :func:`write_backbone` - PDB or mmCIF with N, CA, C, O and virtual CB.
- :class:`StructureError` - a file or record that cannot be used (message names file + reason).

Superposition, RMSD and TM-score live in ``dplm2.structure.compare``.
"""

from dplm2.structure.chain import BACKBONE_ATOMS, Chain, virtual_cb
from dplm2.structure.errors import StructureError
from dplm2.structure.header import EntryInfo
from dplm2.structure.read import Entry, read_chains, read_entry
from dplm2.structure.residues import one_letter, three_letter
from dplm2.structure.write import backbone_atoms, place_oxygens, write_backbone

__all__ = [
    "BACKBONE_ATOMS",
    "Chain",
    "Entry",
    "EntryInfo",
    "StructureError",
    "backbone_atoms",
    "one_letter",
    "place_oxygens",
    "read_chains",
    "read_entry",
    "three_letter",
    "virtual_cb",
    "write_backbone",
]
