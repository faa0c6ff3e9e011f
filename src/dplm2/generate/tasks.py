"""The generation tasks on top of the LM sampler (spec §5).

Every task builds the reference's inputs (:class:`dplm2.lm.vocab.DPLM2Vocab`): two halves,
or one half alone for sequence-only and backbone-only generation; the positions to generate
hold their modality's mask token, everything else is conditioning, which the sampler
(:func:`dplm2.lm.sampling.iterative_unmask`, the reference's decoding) never changes.
Samples of one length are batched
together (``batch_size`` per forward pass; conditional tasks and scaffolds, whose lengths
vary, share padded batches); structure tokens are decoded by the tokenizer.

==============  ======================================  =======================================
task            structure half                          amino-acid half
==============  ======================================  =======================================
cogen           all ``<mask_struct>``                   all ``<mask>``
folding         all ``<mask_struct>``                   given sequence
inverse         given tokens                            all ``<mask>``
scaffold        motif tokens at motif positions, masks  motif residues at motif positions, masks
sequence        (not fed)                               all ``<mask>``
backbone        all ``<mask_struct>``                   (not fed)
ss_cogen        all ``<mask_struct>`` + SS guidance     all ``<mask>``
==============  ======================================  =======================================

Seeds: every batch gets its own generator seeded from (base seed, task, the batch's sample
ids), so a run is reproducible; unconditional batches hold one length each, so a length's
samples do not depend on which other lengths were requested.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dplm2.generate.config import (
    ConditionalTaskConfig,
    LengthTaskConfig,
    ScaffoldConfig,
    SSCogenConfig,
)
from dplm2.generate.motif import Motif, resolve_motif
from dplm2.generate.outputs import Sample
from dplm2.generate.problems import ScaffoldProblem
from dplm2.generate.runtime import Runtime
from dplm2.generate.ss_guidance import SSGuidance, SSTable, agreement, backbone_ss, parse_ss
from dplm2.generate.targets import Target
from dplm2.lm.sampling import SamplerConfig, iterative_unmask
from dplm2.lm.vocab import PAD, DPLM2Vocab
from dplm2.structure import write_backbone

log = logging.getLogger(__name__)

Callback = Callable[[int, torch.Tensor], None]
LogProbProcessor = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from the base seed and stable keys (strings hashed with CRC32)."""
    parts = [int(seed)] + [zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence(parts).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclasses.dataclass(frozen=True)
class Request:
    """One protein to fill in: its two halves (with mask tokens where to generate)."""

    key: str
    struct: torch.Tensor | None  # (L+2,) long; None: the half is not fed (sequence-only)
    aa: torch.Tensor | None  # (L+2,) long; None: backbone-only

    def __len__(self) -> int:
        return len(self.struct if self.struct is not None else self.aa)


def codes_for_lm(tokens: np.ndarray, codebook_size: int) -> np.ndarray:
    """Tokenizer codes with the tokenizer's unknown code (and anything outside the codebook)
    turned into -1, which the vocabulary encodes as ``<unk_struct>``."""
    t = np.asarray(tokens, dtype=np.int64)
    return np.where((t >= 0) & (t < codebook_size), t, -1)


def collate_requests(vocab: DPLM2Vocab, requests: Sequence[Request]) -> tuple[torch.Tensor, int]:
    """Input ids (B, N) of one batch and the structure half's width (0 when not fed): two
    halves padded to the widest (:meth:`DPLM2Vocab.collate`), or the one half all requests
    have, padded."""
    kinds = {(r.struct is not None, r.aa is not None) for r in requests}
    if kinds == {(True, True)}:
        return vocab.collate([(r.struct, r.aa) for r in requests])
    if len(kinds) != 1:
        raise ValueError("a batch mixes requests that feed different halves")
    has_struct = kinds.pop()[0]
    rows = [r.struct if has_struct else r.aa for r in requests]
    out = torch.full((len(rows), max(len(t) for t in rows)), PAD, dtype=torch.long)
    for i, t in enumerate(rows):
        out[i, : len(t)] = t
    return out, out.shape[1] if has_struct else 0


def run_requests(
    rt: Runtime,
    requests: Sequence[Request],
    cfg: SamplerConfig,
    *,
    seed: int,
    task: str,
    batch_size: int,
    same_length_batches: bool = False,
    callback: Callback | None = None,
    processor: LogProbProcessor | None = None,
) -> list[tuple[np.ndarray | None, str | None, int]]:
    """Sample every request; returns ``(codes [L] or None, sequence or None, batch seed)`` in
    request order (None for a half that was not fed).

    Requests are sorted by length (stable) and cut into batches of ``batch_size``; with
    ``same_length_batches`` a batch never mixes lengths (unconditional tasks: no padding).
    Mixed batches are padded; padding is hidden from attention, so it changes no result
    beyond which random numbers a row draws. ``processor`` goes to the sampler
    (:func:`dplm2.lm.sampling.iterative_unmask`) for every batch.
    """
    vocab: DPLM2Vocab = rt.lm.vocab
    banned = rt.banned_codes()
    order = sorted(range(len(requests)), key=lambda i: len(requests[i]))
    if same_length_batches:
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(len(requests[i]), []).append(i)
    else:
        groups = {0: order}
    batches = [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]
    out: list[tuple[np.ndarray | None, str | None, int] | None] = [None] * len(requests)
    for idx in tqdm(batches, desc=f"generate {task}", mininterval=2.0, disable=len(batches) < 2):
        key = ",".join(requests[i].key for i in idx)
        batch_seed = derive_seed(seed, task, key)
        gen = torch.Generator(device=rt.device).manual_seed(batch_seed)
        ids, width = collate_requests(vocab, [requests[i] for i in idx])
        tokens, _ = iterative_unmask(rt.lm, ids.to(rt.device), cfg, generator=gen,
                                     callback=callback, processor=processor, banned=banned)
        tokens = tokens.cpu()
        for row, i in enumerate(idx):
            req = requests[i]
            codes = vocab.decode_struct(tokens[row, :width]) if req.struct is not None else None
            seq = vocab.decode_aa(tokens[row, width:]) if req.aa is not None else None
            out[i] = (codes, seq, batch_seed)
    return out  # type: ignore[return-value]


def _decoded(rt: Runtime, codes: list[np.ndarray], batch_size: int) -> list[dict]:
    return rt.detokenize([np.where(c >= 0, c, rt.codebook_size) for c in codes], batch_size)


# -- unconditional ------------------------------------------------------------------------------
def length_requests(vocab: DPLM2Vocab, task: str, cfg: LengthTaskConfig) -> list[Request]:
    """Requests of the unconditional tasks (see the module table)."""
    out = []
    for length in cfg.lengths:
        for i in range(cfg.samples_per_length):
            struct = None if task == "sequence" else vocab.encode_struct(None, length)
            aa = None if task == "backbone" else vocab.encode_aa(None, length)
            out.append(Request(key=f"{task}_L{length}_{i:04d}", struct=struct, aa=aa))
    return out


def generate_unconditional(
    rt: Runtime, task: str, cfg: LengthTaskConfig, *, seed: int, batch_size: int,
    decode_batch_size: int, callback: Callback | None = None,
) -> list[Sample]:
    """Co-generation (``cogen``), sequence-only (``sequence``) or backbone-only (``backbone``)."""
    if task not in ("cogen", "sequence", "backbone"):
        raise ValueError(f"unknown unconditional task {task!r}")
    reqs = length_requests(rt.lm.vocab, task, cfg)
    res = run_requests(rt, reqs, cfg.sampling, seed=seed, task=task, batch_size=batch_size,
                       same_length_batches=True, callback=callback)
    dec = [None] * len(res) if task == "sequence" else _decoded(rt, [r[0] for r in res], decode_batch_size)
    samples = []
    for req, (codes, seq, bseed), d in zip(reqs, res, dec, strict=True):
        if task == "sequence":
            samples.append(Sample(sample_id=req.key, task=task, sequence=seq, struct_tokens=None, seed=bseed))
            continue
        source = "lm"
        if task == "backbone":
            seq, source = d["sequence"], "tokenizer_decoder"
        samples.append(Sample(sample_id=req.key, task=task, sequence=seq, struct_tokens=codes,
                              seed=bseed, sequence_source=source, backbone=d["backbone"],
                              plddt=d["plddt"], decoded_sequence=d["sequence"]))
    return samples


# -- folding / inverse folding ----------------------------------------------------------------
def generate_conditional(
    rt: Runtime, task: str, targets: Sequence[Target], cfg: ConditionalTaskConfig, *, seed: int,
    batch_size: int, decode_batch_size: int, callback: Callback | None = None,
) -> list[Sample]:
    """Folding (sequence given) or inverse folding (structure tokens given) of ``targets``."""
    vocab: DPLM2Vocab = rt.lm.vocab
    reqs = []
    for t in targets:
        n = len(t.sequence)
        if task == "folding":
            reqs.append(Request(t.id, vocab.encode_struct(None, n), vocab.encode_aa(t.sequence)))
        elif task == "inverse_folding":
            if t.struct_tokens is None:
                raise ValueError(f"target {t.id!r}: inverse folding needs structure tokens")
            codes = codes_for_lm(t.struct_tokens, rt.codebook_size)
            reqs.append(Request(t.id, vocab.encode_struct(codes), vocab.encode_aa(None, n)))
        else:
            raise ValueError(f"unknown conditional task {task!r}")
    res = run_requests(rt, reqs, cfg.sampling, seed=seed, task=task, batch_size=batch_size,
                       callback=callback)
    dec = (_decoded(rt, [r[0] for r in res], decode_batch_size) if task == "folding"
           else [None] * len(res))
    samples = []
    for t, (codes, seq, bseed), d in zip(targets, res, dec, strict=True):
        common = dict(sample_id=t.id, task=task, seed=bseed, target_id=t.id,
                      reference_path=t.reference_path, reference_chain=t.reference_chain)
        if task == "folding":
            samples.append(Sample(sequence=t.sequence, struct_tokens=codes, backbone=d["backbone"],
                                  plddt=d["plddt"], decoded_sequence=d["sequence"], **common))
        else:
            given = codes_for_lm(t.struct_tokens, rt.codebook_size)
            samples.append(Sample(sequence=seq, struct_tokens=given, **common))
    return samples


# -- motif scaffolding ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class PreparedMotif:
    """A problem's motif with its structure tokens (tokenized in its native chain context)."""

    problem: ScaffoldProblem
    motif: Motif
    tokens: np.ndarray  # (M,) codes


def prepare_motif(rt: Runtime, problem: ScaffoldProblem) -> PreparedMotif:
    """Resolve the motif in its file and tokenize it.

    Each chain the motif comes from is tokenized whole and the motif residues' tokens are
    taken from it, so a motif token encodes the residue's native local structure (tokenizing
    the isolated motif would describe fragments with artificial termini)."""
    motif = resolve_motif(problem.structure, problem.contig)
    per_chain = {cid: rt.tokenize_chain(chain) for cid, chain in motif.chains.items()}
    tokens = np.concatenate([per_chain[cid][idx] for cid, idx in motif.positions])
    bad = np.nonzero((tokens < 0) | (tokens >= rt.codebook_size))[0]
    if len(bad):
        raise ValueError(f"{problem.structure}: motif residues {[motif.labels[i] for i in bad]} "
                         "got the tokenizer's unknown code")
    return PreparedMotif(problem=problem, motif=motif, tokens=tokens.astype(np.int64))


def scaffold_request(vocab: DPLM2Vocab, key: str, length: int, motif_idx: Sequence[int],
                     motif_tokens: np.ndarray, motif_seq: str) -> Request:
    """Masks everywhere except the motif positions, which hold the motif tokens / residues."""
    struct = vocab.encode_struct(None, length)
    aa = vocab.encode_aa(None, length)
    idx = torch.as_tensor(list(motif_idx), dtype=torch.long) + 1  # +1: after <cls>
    struct[idx] = vocab.encode_struct(motif_tokens)[1:-1]
    aa[idx] = vocab.encode_aa(motif_seq)[1:-1]
    return Request(key=key, struct=struct, aa=aa)


def generate_scaffold(
    rt: Runtime, problems: Sequence[ScaffoldProblem], cfg: ScaffoldConfig, *, seed: int,
    batch_size: int, out_dir: Path, decode_batch_size: int, callback: Callback | None = None,
) -> list[Sample]:
    """``samples_per_problem`` designs per problem, each with its own sampled contig.

    Writes ``references/<problem>.pdb`` (the motif backbone, in contig order) into ``out_dir``
    once every design is made (a failing problem - a contig that cannot meet its length -
    leaves nothing behind); ``motif_reference_indices`` index that file."""
    vocab: DPLM2Vocab = rt.lm.vocab
    reqs: list[Request] = []
    meta = []
    refs = []
    for problem in problems:
        pm = prepare_motif(rt, problem)
        ref = out_dir / "references" / f"{problem.name}.pdb"
        refs.append((ref, pm))
        rng = np.random.default_rng(derive_seed(seed, "contig", problem.name))
        for i in range(cfg.samples_per_problem):
            layout = problem.contig.sample(rng, pm.motif.segment_lengths)
            key = f"{problem.name}_{i:04d}"
            reqs.append(scaffold_request(vocab, key, layout.length, layout.motif_indices,
                                         pm.tokens, pm.motif.sequence))
            meta.append((problem, pm, layout, ref))
        log.info("%s: motif %d residues from %s, %d designs", problem.name, len(pm.motif),
                 problem.structure, cfg.samples_per_problem)
    res = run_requests(rt, reqs, cfg.sampling, seed=seed, task="scaffold", batch_size=batch_size,
                       callback=callback)
    dec = _decoded(rt, [r[0] for r in res], decode_batch_size)
    for ref, pm in refs:
        write_backbone(ref, pm.motif.coords, pm.motif.sequence)
    samples = []
    for req, (codes, seq, bseed), d, (problem, pm, layout, ref) in zip(reqs, res, dec, meta, strict=True):
        samples.append(Sample(
            sample_id=req.key, task="scaffold", sequence=seq, struct_tokens=codes, seed=bseed,
            backbone=d["backbone"], plddt=d["plddt"], decoded_sequence=d["sequence"],
            target_id=problem.name, reference_path=str(ref.relative_to(out_dir)), reference_chain="A",
            contig=layout.contig, motif_indices=tuple(layout.motif_indices),
            motif_reference_indices=tuple(range(len(pm.motif))), motif_labels=pm.motif.labels,
        ))
    return samples


# -- secondary-structure-conditioned co-generation ------------------------------------------
def generate_ss_cogen(
    rt: Runtime, cfg: SSCogenConfig, table: SSTable, *, seed: int, batch_size: int,
    decode_batch_size: int, callback: Callback | None = None,
) -> list[Sample]:
    """``samples_per_ss`` co-generated designs per target string of ``cfg.ss``, guided by
    ``table`` (:class:`dplm2.generate.ss_guidance.SSGuidance`, weight ``cfg.guidance_weight``).

    Target k is named ``ss<k>`` (``target_id``; samples ``ss<k>_<i>``); each target runs as
    its own unconditional batches, so its samples do not depend on the other targets. Each
    sample records the target, the P-SEA string of its decoded backbone and their agreement,
    and the same for the table's most likely state of each sampled code."""
    if table.codebook_size != rt.codebook_size:
        raise ValueError(f"SS table has {table.codebook_size} codes, the tokenizer {rt.codebook_size}")
    vocab: DPLM2Vocab = rt.lm.vocab
    log_p = table.log_p()
    samples: list[Sample] = []
    for k, ss in enumerate(cfg.ss):
        target = parse_ss(ss)
        n = len(target)
        name = f"ss{k:02d}"
        reqs = [Request(key=f"{name}_{i:04d}", struct=vocab.encode_struct(None, n),
                        aa=vocab.encode_aa(None, n)) for i in range(cfg.samples_per_ss)]
        guide = SSGuidance(log_p, target, cfg.guidance_weight)
        res = run_requests(rt, reqs, cfg.sampling, seed=seed, task="ss_cogen", batch_size=batch_size,
                               same_length_batches=True, callback=callback, processor=guide)
        dec = _decoded(rt, [r[0] for r in res], decode_batch_size)
        for req, (codes, seq, bseed), d in zip(reqs, res, dec, strict=True):
            decoded = backbone_ss(d["backbone"])
            token_ss = table.argmax_ss(codes)
            extra = {"target_ss": ss, "decoded_ss": decoded, "ss_agreement": agreement(ss, decoded),
                     "token_ss": token_ss, "token_ss_agreement": agreement(ss, token_ss),
                     "guidance_weight": float(cfg.guidance_weight)}
            samples.append(Sample(sample_id=req.key, task="ss_cogen", sequence=seq, struct_tokens=codes,
                                  seed=bseed, backbone=d["backbone"], plddt=d["plddt"],
                                  decoded_sequence=d["sequence"], target_id=name, extra=extra))
        agree = [s.extra["ss_agreement"] for s in samples[-len(reqs):]]
        log.info("%s (L=%d, weight %g): %d designs, decoded-SS agreement mean %.3f", name, n,
                 cfg.guidance_weight, len(reqs), float(np.mean(agree)))
    return samples
