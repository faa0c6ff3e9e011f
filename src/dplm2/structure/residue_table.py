"""Residue-level arrays of a model's first structure, from gemmi (text) or biotite (BinaryCIF).

:class:`ResidueTable` holds, per residue of the first model in file order, the chain id, name,
number, insertion code, HETATM flag, backbone coordinates ``[R, 4, 3]`` (N, CA, C, O; NaN =
missing) and a B-factor (CA's, else the mean of the residue's atoms). Waters and residues of
non-polymer entities (ligands, ions) are left out; polymer residues without any backbone atom (a
fused chromophore such as CRO/NRQ) stay, with NaN coordinates, so the reader can say what it
removed. The reader builds chains from the table whatever the file format, so both back ends
give identical chains (tested).

Entities: mmCIF/BinaryCIF files say which entity each atom belongs to (``label_entity_id`` and
``_entity.type``); for PDB-format files (and mmCIF without entity records) gemmi's
``setup_entities`` infers it from TER records and residue types. Without TER records that
inference calls trailing ligands polymer, which :mod:`dplm2.structure.read` corrects by
geometry (a HETATM residue outside the chain's ATOM span must be peptide-bonded to it).

Why two back ends: gemmi's C++ mmCIF/PDB parser is 6-10x faster than biotite's pure-Python CIF
tokenizer (about 7 ms vs 50 ms for a 300-residue entry, ``bench/parse_throughput.py``), which
is what brings parsing above 50 structures/s per core; gemmi does not read BinaryCIF, biotite
does, so ``.bcif`` goes through biotite.

Alternate locations: per atom the highest occupancy wins (first on ties), as biotite's
``altloc="occupancy"``; when two residues share a number and insertion code
(microheterogeneity, e.g. SER/PRO at one position) the one with the higher backbone occupancy
is kept.
"""

from __future__ import annotations

import dataclasses
import math

import biotite.structure as struc
import numpy as np

from dplm2.structure.chain import BACKBONE_ATOMS

_BB_INDEX = {name: k for k, name in enumerate(BACKBONE_ATOMS)}
WATER = frozenset({"HOH", "DOD", "WAT", "H2O"})


@dataclasses.dataclass(frozen=True)
class ResidueTable:
    """Per-residue arrays (length R) of the first model; see the module docstring."""

    chain_id: np.ndarray  # str [R]
    res_name: np.ndarray  # str [R]
    res_id: np.ndarray  # int [R]
    ins_code: np.ndarray  # str [R]
    hetero: np.ndarray  # bool [R]
    backbone: np.ndarray  # float32 [R, 4, 3]
    b_factor: np.ndarray  # float32 [R]
    n_nonfinite: int = 0  # backbone atoms whose coordinates are NaN/inf in the file
    all_names: frozenset = frozenset()  # every residue name in the model (for messages)

    def __len__(self) -> int:
        return len(self.res_name)

    def select(self, mask: np.ndarray) -> ResidueTable:
        arrays = {
            f.name: getattr(self, f.name)[mask]
            for f in dataclasses.fields(self)
            if f.name not in ("n_nonfinite", "all_names")
        }
        return ResidueTable(**arrays, n_nonfinite=self.n_nonfinite, all_names=self.all_names)


_GEMMI_BACKBONE = None  # gemmi.Selection of N/CA/C/O in model 1, built on first use


def from_gemmi(structure) -> ResidueTable:
    """Residue table of ``structure[0]`` (a ``gemmi.Structure``).

    Only backbone atoms are copied out of the model (a gemmi selection, in C++) before the
    Python loop, which halves the atoms visited; the B-factor of a residue without CA is then
    the mean over its backbone atoms.
    """
    import gemmi

    global _GEMMI_BACKBONE
    if _GEMMI_BACKBONE is None:
        _GEMMI_BACKBONE = gemmi.Selection("/1/*/*/" + ",".join(BACKBONE_ATOMS))
    structure.add_entity_types(False)  # where the file gives none: from TER records, residue types
    model = _GEMMI_BACKBONE.copy_model_selection(structure[0])
    chain_ids, names, nums, icodes, het, bbs, bfacs, occs = [], [], [], [], [], [], [], []
    atom_occ = []
    nan3 = [math.nan] * 3
    skip = (gemmi.EntityType.Water, gemmi.EntityType.NonPolymer, gemmi.EntityType.Branched)
    for chain in model:
        cname = chain.name
        last = None
        for res in chain:
            if res.entity_type in skip:
                continue  # ligand, ion, water, glycan: never part of a chain
            bb = [nan3, nan3, nan3, nan3]
            occ = [-1.0, -1.0, -1.0, -1.0]
            bsum, n_atoms, ca_b = 0.0, 0, None
            if len(res) == 0:  # polymer residue without backbone atoms: kept to be reported
                bsum, n_atoms = math.nan, 1
            for atom in res:
                k = _BB_INDEX[atom.name]
                bsum += atom.b_iso
                n_atoms += 1
                if atom.occ <= occ[k]:
                    continue  # alternate location with lower (or equal, later) occupancy
                occ[k] = atom.occ
                bb[k] = atom.pos.tolist()
                if k == 1:
                    ca_b = atom.b_iso
            seqid = res.seqid
            key = (seqid.num, seqid.icode)
            best_occ = max(occ)
            if key == last:
                # microheterogeneity: same position twice; keep the better-occupied one
                if best_occ > occs[-1]:
                    names[-1], bbs[-1], occs[-1], atom_occ[-1] = res.name, bb, best_occ, occ
                    bfacs[-1] = ca_b if ca_b is not None else bsum / n_atoms
                    het[-1] = res.het_flag == "H"
                continue
            last = key
            chain_ids.append(cname)
            names.append(res.name)
            nums.append(seqid.num)
            icodes.append(seqid.icode.strip())
            het.append(res.het_flag == "H")
            bbs.append(bb)
            bfacs.append(ca_b if ca_b is not None else bsum / n_atoms)
            occs.append(best_occ)
            atom_occ.append(occ)
    all_names = frozenset(structure[0].get_all_residue_names())
    if not names:
        return dataclasses.replace(_empty(), all_names=all_names)
    backbone = np.array(bbs, dtype=np.float32)
    # atoms read from the file (occupancy set) whose coordinates are NaN/inf
    present = np.array(atom_occ) >= 0
    nonfinite = int((present & ~np.isfinite(backbone).all(axis=-1)).sum())
    return ResidueTable(
        chain_id=np.array(chain_ids, dtype=str),
        res_name=np.array(names, dtype=str),
        res_id=np.array(nums, dtype=np.int64),
        ins_code=np.array(icodes, dtype=str),
        hetero=np.array(het, dtype=bool),
        backbone=backbone,
        b_factor=np.array(bfacs, dtype=np.float32),
        n_nonfinite=nonfinite,
        all_names=all_names,
    )


def from_atoms(atoms: struc.AtomArray, entity_types: dict[str, str] | None = None) -> ResidueTable:
    """Residue table of a biotite AtomArray of one model read with ``altloc="all"`` and the
    ``occupancy`` and ``b_factor`` annotations (plus ``label_entity_id`` when the file has it).

    ``entity_types`` maps entity id to ``_entity.type`` (``polymer``, ``non-polymer``,
    ``water``, ``branched``); residues of other than polymer entities are left out. Without
    entity information every residue but water counts as polymer.

    Alternate locations are resolved here rather than by biotite's ``altloc="occupancy"``,
    which drops residues whose altloc ids are ``1``/``2`` instead of ``A``/``B`` (seen in
    1k6p: 3 residues lost); the rule is the one :func:`from_gemmi` applies.
    """
    if atoms.array_length() == 0:
        return _empty()
    all_names = frozenset(np.unique(atoms.res_name).tolist())
    cats = atoms.get_annotation_categories()
    if entity_types and "label_entity_id" in cats:
        kinds = np.array([entity_types.get(e, "polymer") for e in atoms.label_entity_id.tolist()])
        atoms = atoms[kinds == "polymer"]
    else:
        atoms = atoms[~np.isin(atoms.res_name, list(WATER))]
    if atoms.array_length() == 0:
        return dataclasses.replace(_empty(), all_names=all_names)
    starts = struc.get_residue_starts(atoms)
    nres = len(starts)
    res_index = np.searchsorted(starts, np.arange(atoms.array_length()), side="right") - 1
    occ_atoms = atoms.occupancy if "occupancy" in cats else np.ones(atoms.array_length())
    b_atoms = atoms.b_factor if "b_factor" in cats else np.zeros(atoms.array_length())
    # Scatter backbone atoms into [R, 4, 3]; writing in order of increasing occupancy (and
    # decreasing index on ties) leaves the highest-occupancy, first-listed atom in place.
    bb = np.full((nres, 4, 3), np.nan, dtype=np.float32)
    bb_occ = np.full((nres, 4), -1.0)
    bfac = np.full(nres, np.nan, dtype=np.float32)
    res_name = atoms.res_name[starts].astype(str)
    for k, name in enumerate(BACKBONE_ATOMS):
        sel = np.nonzero(atoms.atom_name == name)[0]
        sel = sel[np.lexsort((-sel, occ_atoms[sel]))]
        bb[res_index[sel], k] = atoms.coord[sel]
        bb_occ[res_index[sel], k] = occ_atoms[sel]
        if name == "CA":
            bfac[res_index[sel]] = b_atoms[sel]
            # biotite keeps microheterogeneity (SER/PRO at one number) as one residue: name it
            # after the residue type of its chosen CA
            res_name[res_index[sel]] = atoms.res_name[sel]
    if np.isnan(bfac).any():  # no CA: mean B-factor of the residue's atoms
        sums = np.bincount(res_index, weights=b_atoms, minlength=nres)
        counts = np.bincount(res_index, minlength=nres)
        bfac = np.where(np.isnan(bfac), sums / np.maximum(counts, 1), bfac).astype(np.float32)
    table = ResidueTable(
        chain_id=atoms.chain_id[starts].astype(str),
        res_name=res_name,
        res_id=atoms.res_id[starts].astype(np.int64),
        ins_code=atoms.ins_code[starts].astype(str),
        hetero=atoms.hetero[starts].astype(bool),
        backbone=bb,
        b_factor=bfac,
        n_nonfinite=int((~np.isfinite(atoms.coord).all(axis=1)).sum()),
        all_names=all_names,
    )
    return table.select(_best_of_duplicates(table, bb_occ.max(axis=1)))


def _best_of_duplicates(table: ResidueTable, occupancy: np.ndarray) -> np.ndarray:
    """Mask keeping, among consecutive residues at the same position, the best occupied."""
    keep = np.ones(len(table), dtype=bool)
    best = 0
    for i in range(1, len(table)):
        same = (
            table.chain_id[i] == table.chain_id[best]
            and table.res_id[i] == table.res_id[best]
            and table.ins_code[i] == table.ins_code[best]
        )
        if not same:
            best = i
        elif occupancy[i] > occupancy[best]:
            keep[best], best = False, i
        else:
            keep[i] = False
    return keep


def _empty() -> ResidueTable:
    return ResidueTable(
        chain_id=np.array([], dtype=str),
        res_name=np.array([], dtype=str),
        res_id=np.array([], dtype=np.int64),
        ins_code=np.array([], dtype=str),
        hetero=np.array([], dtype=bool),
        backbone=np.zeros((0, 4, 3), dtype=np.float32),
        b_factor=np.array([], dtype=np.float32),
    )
