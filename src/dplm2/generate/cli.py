"""``dplm2 generate <task>``: the commands the rules of ``workflow/rules/generate.smk`` call.

=================  ===========================================================================
``cogen``          unconditional sequence + structure co-generation at the configured lengths
``sequence``       sequence-only generation (structure half blinded)
``backbone``       structure-only generation (amino-acid half blinded), decoded to backbones
``folding``        sequence -> structure, from token shards (a split), FASTA or structure files
``inverse-folding``  structure -> sequence, from token shards or structure files
``scaffold``       motif scaffolding: config problems, or ``--pdb FILE --contig SPEC``
``ss-cogen``       co-generation guided toward per-residue H/E/L strings (``--ss``; needs
                   ``--ss-table``); alias ``ss_cogen``
``ss-table``       build that table, ``p(SS | structure token)``, from token + chain shards
=================  ===========================================================================

Every command takes ``--lm`` (exported model folder), ``--tokenizer`` (tokenizer folder),
``--out`` (the task's output folder) and ``--params`` (the config's ``generate`` section as
JSON); ``ss-table`` takes shards and ``--out`` only. Heavy imports happen inside the command
functions.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

log = logging.getLogger("dplm2.generate")

UNCONDITIONAL = ("cogen", "sequence", "backbone")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` stage and its task commands to the ``dplm2`` parser."""
    stage = subparsers.add_parser("generate", help="generate proteins with a trained DPLM-2")
    cmds = stage.add_subparsers(dest="generate_command", metavar="<task>", required=True)
    helps = {
        "cogen": "co-generate sequence and structure at the configured lengths",
        "sequence": "generate sequences alone (structure half blinded)",
        "backbone": "generate structure tokens alone and decode them to backbones",
        "folding": "predict structure tokens (and a backbone) for given sequences",
        "inverse-folding": "design sequences for given structure tokens",
        "scaffold": "scaffold motifs: config problems or --pdb/--contig",
        "ss-cogen": "co-generate toward per-residue secondary-structure strings (H/E/L)",
    }
    for name, text in helps.items():
        p = cmds.add_parser(name, help=text, aliases=["ss_cogen"] if name == "ss-cogen" else [])
        p.add_argument("--lm", required=True, type=Path, help="language model folder (results/lm/model)")
        p.add_argument("--tokenizer", required=True, type=Path, help="tokenizer folder (results/tokenizer)")
        p.add_argument("--out", required=True, type=Path, help="output folder of this task")
        p.add_argument("--params", default="{}", help="the config's generate section as JSON")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
        p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
        p.add_argument("--seed", type=int, default=None, help="override generate.seed")
        if name in ("folding", "inverse-folding"):
            p.add_argument("--tokens", nargs="*", type=Path, default=[],
                           help="token shards or their folder (rows of the configured split)")
            p.add_argument("--chains", nargs="*", type=Path, default=[],
                           help="chain shards: true backbones of the token-shard targets")
            p.add_argument("--structures", nargs="*", type=Path, default=[],
                           help="PDB/mmCIF/BinaryCIF files, folders or globs (tokenized with "
                           "--tokenizer)")
            p.add_argument("--skip-bad-structures", action="store_true",
                           help="leave out structure files that cannot be read (listed with the "
                           "reason in samples.parquet's metadata, skipped_inputs)")
        if name == "folding":
            p.add_argument("--fasta", nargs="*", type=Path, default=[], help="FASTA file(s) of sequences")
        if name == "scaffold":
            p.add_argument("--pdb", type=Path, help="your structure file (PDB/mmCIF); needs --contig")
            p.add_argument("--contig", help="e.g. '5-20,A16-35,10-25,A52-71,5-20' ('/' also works)")
            p.add_argument("--length", help="total length range, e.g. '60-90' (optional)")
            p.add_argument("--name", help="problem name for --pdb (default: the file's stem)")
            p.add_argument("--samples", type=int, help="override scaffold.samples_per_problem")
        if name == "ss-cogen":
            p.add_argument("--ss-table", required=True, type=Path,
                           help="p(SS | token) table (dplm2 generate ss-table; results/generate/ss_table.parquet)")
            p.add_argument("--ss", action="append", metavar="STRING",
                           help="target string, one letter per residue: H, E, L/C/- (repeatable; "
                           "overrides ss_cogen.ss)")
            p.add_argument("--num-samples", type=int, help="override ss_cogen.samples_per_ss")
            p.add_argument("--guidance-weight", type=float, help="override ss_cogen.guidance_weight")
        p.set_defaults(func=cmd_generate, task=name.replace("-", "_"))
    t = cmds.add_parser("ss-table", help="estimate p(SS | structure token) from token + chain shards")
    t.add_argument("--tokens", nargs="+", required=True, type=Path, help="token shards or their folder")
    t.add_argument("--chains", nargs="+", required=True, type=Path, help="chain shards or their folder")
    t.add_argument("--out", required=True, type=Path, help="output Parquet table")
    t.add_argument("--params", default="{}", help="the config's generate section as JSON (ss_cogen.table_*)")
    t.add_argument("--split", help="override ss_cogen.table_split")
    t.add_argument("--smoothing", type=float, help="override ss_cogen.table_smoothing")
    t.set_defaults(func=cmd_ss_table)


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from dplm2.generate import tasks
    from dplm2.generate.config import GenerateConfig
    from dplm2.generate.outputs import Provenance, write_task_outputs
    from dplm2.generate.runtime import Runtime
    from dplm2.lm.objective import BIT_REFUSED_TASKS

    t0 = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = GenerateConfig.from_json(args.params, "generate")
    seed = cfg.seed if args.seed is None else int(args.seed)
    task = args.task
    out: Path = args.out
    ss_cfg = _ss_cogen_config(args, cfg.ss_cogen) if task == "ss_cogen" else None  # fail before loading
    references, skipped = [], []
    rt = Runtime.load(args.lm, args.tokenizer, args.device)
    if getattr(rt.lm, "is_bit", False) and task in BIT_REFUSED_TASKS:
        raise ValueError(f"{args.lm}: a DPLM-2 Bit model cannot run {task}: "
                         f"{BIT_REFUSED_TASKS[task]}")
    log.info("%s: LM %s, tokenizer %s, code %s, device %s, seed %d", task, rt.lm_hash,
             rt.tokenizer_hash, rt.code_hash, rt.device, seed)
    kw = dict(seed=seed, batch_size=cfg.batch_size, decode_batch_size=cfg.decode_batch_size)
    if task in UNCONDITIONAL:
        task_cfg = getattr(cfg, task)
        samples = tasks.generate_unconditional(rt, task, task_cfg, **kw)
    elif task in ("folding", "inverse_folding"):
        task_cfg = getattr(cfg, task)
        targets, references, skipped = _conditional_targets(args, task, task_cfg, rt, out)
        samples = tasks.generate_conditional(rt, task, targets, task_cfg, **kw)
    elif task == "ss_cogen":
        from dplm2.generate.ss_guidance import SSTable

        task_cfg = ss_cfg
        table = SSTable.read(args.ss_table, expect_tokenizer=rt.tokenizer_sha256)
        samples = tasks.generate_ss_cogen(rt, task_cfg, table, **kw)
    else:
        task_cfg = cfg.scaffold
        if args.samples is not None:
            task_cfg = task_cfg.override(samples_per_problem=int(args.samples))
        problems = _scaffold_problems(args, task_cfg)
        samples = tasks.generate_scaffold(rt, problems, task_cfg, out_dir=out, **kw)
    sampling = task_cfg.sampling.to_dict()
    extra: dict = {}
    if task == "ss_cogen":
        from dplm2.generate.outputs import SS_FIELDS
        from dplm2.io import sha256_file

        sampling["ss_guidance_weight"] = float(task_cfg.guidance_weight)
        extra = dict(extra_fields=SS_FIELDS, extra_meta={
            "ss_table_sha256": sha256_file(args.ss_table), "ss_targets": list(task_cfg.ss)})
    if skipped:
        extra.setdefault("extra_meta", {})["skipped_inputs"] = [
            {"file": str(p), "reason": r} for p, r in skipped]
    prov = Provenance(task=task, lm_hash=rt.lm_hash, tokenizer_hash=rt.tokenizer_hash,
                      code_hash=rt.code_hash, seed=seed, sampling=sampling)
    from dplm2.generate.targets import write_references

    write_references(references)  # only now: a failed generation leaves no reference files
    path = write_task_outputs(out, samples, prov, per_length=task in UNCONDITIONAL, **extra)
    log.info("%s: %d samples -> %s in %.1f s", task, len(samples), path, time.time() - t0)
    return 0


def _ss_cogen_config(args, cfg):
    """``generate.ss_cogen`` with the command-line overrides (validated again)."""
    changes = {}
    if args.ss:
        changes["ss"] = list(args.ss)
    if args.num_samples is not None:
        changes["samples_per_ss"] = int(args.num_samples)
    if args.guidance_weight is not None:
        changes["guidance_weight"] = float(args.guidance_weight)
    return cfg.override(**changes) if changes else cfg


def cmd_ss_table(args: argparse.Namespace) -> int:
    from dplm2.generate.config import GenerateConfig
    from dplm2.generate.ss_guidance import build_table

    t0 = time.time()
    cfg = GenerateConfig.from_json(args.params, "generate").ss_cogen
    split = args.split or cfg.table_split
    smoothing = cfg.table_smoothing if args.smoothing is None else float(args.smoothing)
    table = build_table(args.tokens, args.chains, split=split, smoothing=smoothing)
    table.write(args.out)
    log.info("ss table: %d codes -> %s in %.1f s", table.codebook_size, args.out, time.time() - t0)
    return 0


def _conditional_targets(args, task, task_cfg, rt, out: Path):
    from dplm2.generate import targets as T

    sources = [bool(args.tokens), bool(args.structures), bool(getattr(args, "fasta", None))]
    if sum(sources) != 1:
        raise ValueError(f"generate {task}: give exactly one of --tokens, --structures"
                         + (", --fasta" if task == "folding" else ""))
    skipped: list = []
    if args.tokens:
        found = T.from_token_shards(args.tokens, task_cfg.split, args.chains,
                                    expect_tokenizer=rt.tokenizer_sha256)
    elif args.structures:
        found = T.from_structures(args.structures, rt.tokenize_chain,
                                  skipped if args.skip_bad_structures else None)
    else:
        found = T.from_fasta(args.fasta)
    chosen = T.select(found, task_cfg.max_targets, task_cfg.max_length)
    log.info("%s: %d targets (of %d)", task, len(chosen), len(found))
    targets, references = T.plan_references(chosen, out / "references", out)
    return targets, references, skipped


def _scaffold_problems(args, cfg):
    from dplm2.generate.problems import ScaffoldProblem, load_benchmark, unique_names

    if args.pdb is not None or args.contig is not None:
        if args.pdb is None or args.contig is None:
            raise ValueError("generate scaffold: --pdb and --contig go together")
        entry = {"name": args.name or args.pdb.name.split(".")[0], "pdb": str(args.pdb),
                 "contig": args.contig}
        if args.length:
            entry["length"] = args.length
        return [ScaffoldProblem.from_entry(entry)]
    problems = []
    if cfg.benchmark is not None:
        problems += load_benchmark(cfg.benchmark, list(cfg.subset) or None)
    problems += [ScaffoldProblem.from_entry(e) for e in cfg.problems]
    if not problems:
        raise ValueError(f"generate scaffold: no problems (benchmark {cfg.benchmark!r}, "
                         f"subset {list(cfg.subset)}, {len(cfg.problems)} user problems)")
    log.info("scaffold problems: %s", json.dumps([p.name for p in problems]))
    return unique_names(problems)
