"""Contig specifications for motif scaffolding: parse, validate, sample concrete layouts.

A contig lists, in design order, what the generated protein is made of (the RFdiffusion /
DPLM-2 benchmark format, ``resources/scaffolding/benchmark.csv``)::

    "5-20,A16-35,10-25,A52-71,5-20"      # scaffold 5-20, motif A16-35, scaffold 10-25, ...
    "5-20/A10-25/10-40/A50-60/5-20"      # '/' is accepted as a separator as well
    "A1-7,20,A28-79"                     # a fixed-length spacer of 20 residues
    "0-5,D137-160,4-12,A14-48"           # motif segments from several chains
    "10-30,A100A-105"                    # residue numbers with insertion codes

Elements
--------
``lo-hi`` / ``n``
    A scaffold (spacer) segment whose length is drawn from ``[lo, hi]`` (``n``: fixed).
``<chain><start>[<ins>][-<end>[<ins>]]``
    A motif segment: the residues of chain ``<chain>`` from ``start`` to ``end`` inclusive,
    in file order, numbered by author residue numbers (insertion codes allowed, e.g.
    ``A52A``). ``A38`` or ``A38-38`` is a single residue.

A separate total-length range (the benchmark's ``length`` column: ``"50-75"``, ``"60"`` or
empty) constrains the sum of all segments.

Sampling (:meth:`ContigSpec.sample`): the total length is drawn uniformly from the feasible
total lengths, then spacer lengths are drawn one by one (in a random order) uniformly from the
range that still allows the remaining spacers to reach that total. RFdiffusion instead
redraws every spacer until the total fits; that rejection loop can take very long for tight
totals (e.g. ``7MRX_128``), while this construction always succeeds in one pass and honours
the same constraints.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

_SEPARATORS = re.compile(r"[,/]")
_SPACER = re.compile(r"^(\d+)(?:-(\d+))?$")
# chain id (letters, as in the benchmark), start number (+ insertion code), optional end.
_MOTIF = re.compile(r"^([A-Za-z]+)(-?\d+)([A-Za-z]?)(?:-(-?\d+)([A-Za-z]?))?$")
_TOTAL = re.compile(r"^(\d+)(?:-(\d+))?$")


class ContigError(ValueError):
    """A contig specification that cannot be used; the message names the spec and the reason."""


@dataclasses.dataclass(frozen=True)
class ResidueId:
    """Author residue number + insertion code (``""`` for none); prints as in a contig."""

    number: int
    ins_code: str = ""

    def __str__(self) -> str:
        return f"{self.number}{self.ins_code}"


@dataclasses.dataclass(frozen=True)
class Spacer:
    """Scaffold segment of ``lo..hi`` residues (inclusive)."""

    lo: int
    hi: int

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


@dataclasses.dataclass(frozen=True)
class MotifSegment:
    """Motif residues ``start..end`` (inclusive, file order) of ``chain``."""

    chain: str
    start: ResidueId
    end: ResidueId

    def __str__(self) -> str:
        return f"{self.chain}{self.start}-{self.end}"

    @property
    def nominal_length(self) -> int | None:
        """``end - start + 1`` when no insertion codes are involved, else None (needs the file)."""
        if self.start.ins_code or self.end.ins_code:
            return None
        return self.end.number - self.start.number + 1


Segment = Spacer | MotifSegment


@dataclasses.dataclass(frozen=True)
class ContigLayout:
    """One concrete design layout sampled from a :class:`ContigSpec`.

    Attributes
    ----------
    lengths : tuple of int
        Length of every segment of the spec, in design order (motif segments: their residue
        counts).
    motif_indices : tuple of int
        0-based design positions of the motif residues, in motif order (segment by segment).
    contig : str
        The concrete contig, e.g. ``"12,A16-35,17,A52-71,8"`` (spacers as fixed lengths).
    """

    lengths: tuple[int, ...]
    motif_indices: tuple[int, ...]
    contig: str

    @property
    def length(self) -> int:
        return sum(self.lengths)


@dataclasses.dataclass(frozen=True)
class ContigSpec:
    """A parsed contig (see module docstring); build it with :meth:`parse`.

    Examples
    --------
    >>> spec = ContigSpec.parse("5-20,A16-35,10-25,A52-71,5-20")
    >>> [str(s) for s in spec.segments]
    ['5-20', 'A16-35', '10-25', 'A52-71', '5-20']
    >>> spec.total_range()
    (60, 105)
    >>> layout = spec.sample(np.random.default_rng(0))
    >>> 60 <= layout.length <= 105 and len(layout.motif_indices) == 40
    True
    >>> ContigSpec.parse("10-40,P254-277,10-40", "50-75").total_range()
    (50, 75)
    """

    text: str
    segments: tuple[Segment, ...]
    length_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not any(isinstance(s, MotifSegment) for s in self.segments):
            raise ContigError(f"contig {self.text!r}: no motif segment (e.g. 'A16-35')")

    # -- parsing -------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, length: str | int | None = None) -> ContigSpec:
        """Parse a contig string and an optional total-length range (``"50-75"``, ``60``).

        Raises
        ------
        ContigError
            Naming the spec and the offending element.
        """
        if not isinstance(text, str) or not text.strip():
            raise ContigError(f"contig {text!r}: empty specification")
        spec = text.strip()
        segments: list[Segment] = []
        for raw in _SEPARATORS.split(spec):
            item = raw.strip()
            if not item:
                raise ContigError(f"contig {spec!r}: empty element (two separators in a row?)")
            segments.append(_parse_element(spec, item))
        total = _parse_total(spec, length)
        return cls(text=spec, segments=tuple(segments), length_range=total)

    # -- views ---------------------------------------------------------------------------
    @property
    def motif_segments(self) -> tuple[MotifSegment, ...]:
        return tuple(s for s in self.segments if isinstance(s, MotifSegment))

    @property
    def chains(self) -> tuple[str, ...]:
        """Chains the motif comes from, in order of first use."""
        return tuple(dict.fromkeys(s.chain for s in self.motif_segments))

    def _motif_lengths(self, motif_lengths: Sequence[int] | None) -> list[int]:
        motifs = self.motif_segments
        if motif_lengths is None:
            out = [m.nominal_length for m in motifs]
            if any(n is None for n in out):
                raise ContigError(
                    f"contig {self.text!r}: motif segments with insertion codes need the "
                    "structure file to count their residues (resolve the motif first)"
                )
            return [int(n) for n in out]
        if len(motif_lengths) != len(motifs):
            raise ContigError(
                f"contig {self.text!r}: {len(motif_lengths)} motif lengths for {len(motifs)} "
                "motif segments"
            )
        return [int(n) for n in motif_lengths]

    def total_range(self, motif_lengths: Sequence[int] | None = None) -> tuple[int, int]:
        """Feasible total lengths: segment sums intersected with the length range.

        Raises ContigError when the two do not overlap."""
        motif = sum(self._motif_lengths(motif_lengths))
        lo = motif + sum(s.lo for s in self.segments if isinstance(s, Spacer))
        hi = motif + sum(s.hi for s in self.segments if isinstance(s, Spacer))
        if self.length_range is not None:
            want_lo, want_hi = self.length_range
            if want_hi < lo or want_lo > hi:
                raise ContigError(
                    f"contig {self.text!r}: total length range {want_lo}-{want_hi} cannot be "
                    f"met; the segments give {lo}-{hi} residues"
                )
            lo, hi = max(lo, want_lo), min(hi, want_hi)
        if hi < 1:
            raise ContigError(f"contig {self.text!r}: describes an empty protein")
        return lo, hi

    # -- sampling ------------------------------------------------------------------------
    def sample(
        self, rng: np.random.Generator, motif_lengths: Sequence[int] | None = None
    ) -> ContigLayout:
        """Draw one concrete layout (see module docstring for the scheme).

        Parameters
        ----------
        rng : numpy.random.Generator
            Seeded generator; the same seed gives the same layout.
        motif_lengths : sequence of int, optional
            Residue count of each motif segment (from the resolved structure); default
            ``end - start + 1``.
        """
        mlens = self._motif_lengths(motif_lengths)
        lo, hi = self.total_range(mlens)
        total = int(rng.integers(lo, hi + 1))
        spacers = [i for i, s in enumerate(self.segments) if isinstance(s, Spacer)]
        remaining = total - sum(mlens)
        chosen: dict[int, int] = {}
        order = [spacers[j] for j in rng.permutation(len(spacers))]
        for k, i in enumerate(order):
            rest = order[k + 1 :]
            seg = self.segments[i]
            assert isinstance(seg, Spacer)
            low = max(seg.lo, remaining - sum(self.segments[j].hi for j in rest))
            high = min(seg.hi, remaining - sum(self.segments[j].lo for j in rest))
            chosen[i] = int(rng.integers(low, high + 1))  # low <= high: total is feasible
            remaining -= chosen[i]
        assert remaining == 0
        lengths: list[int] = []
        motif_indices: list[int] = []
        parts: list[str] = []
        motif_iter = iter(mlens)
        pos = 0
        for i, seg in enumerate(self.segments):
            if isinstance(seg, Spacer):
                n = chosen[i]
                parts.append(str(n))
            else:
                n = next(motif_iter)
                motif_indices.extend(range(pos, pos + n))
                parts.append(str(seg))
            lengths.append(n)
            pos += n
        return ContigLayout(
            lengths=tuple(lengths), motif_indices=tuple(motif_indices), contig=",".join(parts)
        )


def _parse_element(spec: str, item: str) -> Segment:
    m = _SPACER.match(item)
    if m:
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ContigError(f"contig {spec!r}: spacer {item!r} has its range reversed")
        return Spacer(lo, hi)
    m = _MOTIF.match(item)
    if m:
        chain, s_num, s_ins, e_num, e_ins = m.groups()
        start = ResidueId(int(s_num), s_ins or "")
        end = start if e_num is None else ResidueId(int(e_num), e_ins or "")
        if (end.number, end.ins_code) < (start.number, start.ins_code):
            raise ContigError(
                f"contig {spec!r}: motif {item!r} ends before it starts ({end} < {start})"
            )
        return MotifSegment(chain=chain, start=start, end=end)
    raise ContigError(
        f"contig {spec!r}: cannot read element {item!r} (expected a spacer 'lo-hi' or 'n', "
        "or a motif '<chain><start>-<end>' such as 'A16-35')"
    )


def _parse_total(spec: str, length: str | int | None) -> tuple[int, int] | None:
    if length is None:
        return None
    if isinstance(length, bool):
        raise ContigError(f"contig {spec!r}: total length {length!r} is not a number or range")
    if isinstance(length, int):
        text = str(length)
    elif isinstance(length, float):
        if length != length:  # NaN: an empty CSV cell read by a data-frame library
            return None
        text = str(int(length)) if length.is_integer() else str(length)
    else:
        text = str(length).strip()
    if not text:
        return None
    m = _TOTAL.match(text)
    if not m:
        raise ContigError(
            f"contig {spec!r}: total length {length!r} is not 'n' or 'lo-hi' (e.g. '50-75')"
        )
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if hi < lo or hi < 1:
        raise ContigError(f"contig {spec!r}: total length range {text!r} is empty")
    return lo, hi
