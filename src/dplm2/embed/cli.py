"""``dplm2 embed``: per-protein (and per-residue) DPLM-2 representations to Parquet or .npy.

Examples::

    dplm2 embed --lm results/lm/model --inputs proteins.fasta --out emb.parquet \\
        --params '{"mode": "sequence", "layers": [-1]}'
    dplm2 embed --lm results/lm/model --tokenizer results/tokenizer \\
        --inputs my_pdbs/ --out emb.npy --mode both
    dplm2 embed --lm airkingbd/dplm2_150m --inputs results/tokens --split test --out emb.parquet

``--lm`` takes a model folder of this project, a folder in the released DPLM-2 layout or a
hub id (only its config.json, vocab.txt and one weights file are fetched).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("dplm2.embed")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``embed`` command to the ``dplm2`` parser."""
    p = subparsers.add_parser(
        "embed", help="per-protein / per-residue embeddings from a DPLM-2 layer",
        description="Embed proteins from FASTA files, PDB/mmCIF files or folders, or token "
        "shards with a DPLM-2 LM (ours, a released folder, or a hub id).")
    p.add_argument("--lm", required=True, help="LM folder (results/lm/model), released folder "
                   "or hub id (airkingbd/dplm2_150m)")
    p.add_argument("--inputs", required=True, nargs="+", type=Path,
                   help="FASTA / structure files, folders of them, or token shards (.parquet)")
    p.add_argument("--out", required=True, type=Path, help="output .parquet or .npy")
    p.add_argument("--tokenizer", default=None,
                   help="structure tokenizer folder or hub id (structure files, modes "
                   "structure/both)")
    p.add_argument("--split", default=None, help="token shards: embed only this split's rows")
    p.add_argument("--params", default="{}", help="the config's embed section as JSON")
    p.add_argument("--mode", help="override embed.settings.mode: sequence, structure or both")
    p.add_argument("--layer", type=int, action="append", dest="layers",
                   help="override layers (repeat for several; -1 = last)")
    p.add_argument("--per-residue", action="store_true", default=None,
                   help="also write per-residue vectors (Parquet only)")
    p.add_argument("--device", default=None, help="override device: auto | cpu | cuda[:i]")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--skip-bad-structures", action="store_true",
                   help="leave out structure files that cannot be read (listed with the reason "
                   "in the output's metadata, skipped_inputs) instead of failing")
    p.set_defaults(func=cmd_embed)


def cmd_embed(args: argparse.Namespace) -> int:
    import torch

    from dplm2.embed.config import EmbedConfig
    from dplm2.embed.embed import embed_inputs

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        params = json.loads(args.params or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"--params is not valid JSON ({exc})") from exc
    overrides = {"mode": args.mode, "layers": args.layers, "per_residue": args.per_residue,
                 "device": args.device}
    params.update({k: v for k, v in overrides.items() if v is not None})
    cfg = EmbedConfig.from_dict(params)
    log.info("embed: %s", json.dumps(cfg.to_dict()))
    embed_inputs(args.inputs, args.lm, args.out, cfg, tokenizer=args.tokenizer, split=args.split,
                 skip_bad=args.skip_bad_structures)
    return 0
