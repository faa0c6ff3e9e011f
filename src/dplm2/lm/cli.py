"""``dplm2 lm <command>``: the commands the rules of ``workflow/rules/lm.smk`` call.

``warm-start``  build the initial DPLM-2 model (ESM-family checkpoint or from scratch)
``train``       diffusion training (resumable; launch under ``torchrun`` for N processes)
``sample``      iterative unmasking from a saved model (folding / inverse folding / co-generation)
``import-official``  a released DPLM-2 checkpoint (hub id / folder) -> a model folder of ours
``export-official``  a model folder of ours -> the released layout (the reference loads it)
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("dplm2.lm")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``lm`` stage and its commands to the ``dplm2`` parser."""
    stage = subparsers.add_parser("lm", help="DPLM-2 language model: warm start, training")
    cmds = stage.add_subparsers(dest="lm_command", metavar="<command>", required=True)

    p = cmds.add_parser("warm-start", help="write the initial model folder")
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.add_argument("--params", default="{}", help="the config's lm section as JSON")
    p.set_defaults(func=cmd_warm_start)

    p = cmds.add_parser("train", help="diffusion training on token shards (resumable)")
    p.add_argument("--init", required=True, type=Path, help="folder written by warm-start")
    p.add_argument("--shards", required=True, nargs="+", type=Path, help="token shards")
    p.add_argument("--out", required=True, type=Path, help="run folder: state/, metrics.parquet")
    p.add_argument("--model", required=True, type=Path, help="exported model folder")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: auto)")
    p.add_argument("--params", default="{}", help="the config's lm section as JSON")
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser("sample", help="fill masked positions of given proteins")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--shards", required=True, nargs="+", type=Path)
    p.add_argument("--task", choices=("folding", "inverse_folding"), required=True)
    p.add_argument("--out", required=True, type=Path, help="Parquet: id, sequence, struct_tokens")
    p.add_argument("--split", default=None)
    p.add_argument("--sampler", default="{}", help="decoding settings as JSON (keys of generate.folding.sampling; "
                   "left out: its defaults)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sample)

    p = cmds.add_parser("import-official", help="convert a released DPLM-2 checkpoint "
                        "(airkingbd/dplm2_*, hub id or folder) into a model folder")
    p.add_argument("--source", required=True, help="hub id (owner/name[@rev]) or folder")
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.add_argument("--token-dropout-passes", type=int, default=None,
                   help="override the input rescaling (default: 2 if the config has "
                   "token_dropout, else 0; see dplm2.lm.official)")
    p.set_defaults(func=cmd_import_official)

    p = cmds.add_parser("export-official", help="write a model folder (ours, or a released "
                        "one) in the released DPLM-2 layout, for the reference's from_pretrained")
    p.add_argument("--lm", required=True, type=Path, help="model folder (or released folder)")
    p.add_argument("--out", required=True, type=Path, help="folder to write")
    p.set_defaults(func=cmd_export_official)


def _config(text: str):
    from dplm2.lm.train import LMConfig

    return LMConfig.from_json(text, "lm")


def cmd_warm_start(args: argparse.Namespace) -> int:
    from dplm2.lm.warm_start import warm_start

    cfg = _config(args.params)
    warm_start(cfg.init, args.out, objective=cfg.objective)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from dplm2.lm.train import train_lm

    cfg = _config(args.params)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    missing = [str(p) for p in args.shards if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"token shard(s) not found: {missing}")
    row = train_lm(cfg, args.init, args.shards, args.out, args.model)
    log.info("finished: %s", json.dumps({k: v for k, v in row.items()}, default=str))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import polars as pl
    import torch

    from dplm2.io import write_parquet
    from dplm2.lm.data import load_proteins
    from dplm2.lm.load import load_lm
    from dplm2.lm.sampling import SamplerConfig, iterative_unmask

    cfg = SamplerConfig.from_json(args.sampler)
    model = load_lm(args.model)
    proteins = load_proteins(args.shards, args.split)
    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    for p in proteins:
        seq = p.sequence if args.task == "folding" else None
        codes = p.codes if args.task == "inverse_folding" else None
        ids, _ = model.vocab.collate([model.vocab.encode(seq, codes)])
        out, _ = iterative_unmask(model, ids, cfg, generator=gen)
        w = ids.shape[1] // 2
        rows.append({
            "id": p.id,
            "sequence": model.vocab.decode_aa(out[0, w:]),
            "struct_tokens": model.vocab.decode_struct(out[0, :w]).tolist(),
        })
    write_parquet(pl.DataFrame(rows), args.out, {"stage": "lm.sample", "task": args.task,
                                                 "sampler": cfg.to_dict()})
    log.info("wrote %d samples to %s", len(rows), args.out)
    return 0


def cmd_import_official(args: argparse.Namespace) -> int:
    from dplm2.lm.official import import_official

    import_official(args.source, args.out, token_dropout_passes=args.token_dropout_passes)
    return 0


def cmd_export_official(args: argparse.Namespace) -> int:
    from dplm2.lm.load import load_lm
    from dplm2.lm.official import export_official

    if not args.lm.is_dir():
        raise FileNotFoundError(f"{args.lm}: no model folder")
    try:
        model = load_lm(args.lm)
    except (ValueError, FileNotFoundError):
        raise  # already one line naming the file
    except Exception as exc:  # transformers / safetensors: unreadable weights or config
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{args.lm}: cannot load the model ({first})") from exc
    if getattr(model, "is_bit", False):
        from dplm2.lm.bit import export_official_bit

        export_official_bit(model, args.out, name_or_path=args.lm.name)
    else:
        export_official(model, args.out, name_or_path=args.lm.name)
    return 0
