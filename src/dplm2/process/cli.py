"""``dplm2 process parse|gather``: the process stage's commands (one per Snakemake rule)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("dplm2.process")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "process", help="parse, filter, deduplicate and split structures into chain shards"
    )
    sub = parser.add_subparsers(dest="process_command", metavar="<command>", required=True)

    p = sub.add_parser("parse", help="parse one shard of the download manifests")
    p.add_argument("--pdb-manifest", type=Path, help="results/download/pdb_manifest.parquet")
    p.add_argument("--afdb-manifest", type=Path, help="results/download/afdb_manifest.parquet")
    p.add_argument("--local-manifest", type=Path,
                   help="manifest of the local sources (dplm2 process local-manifest)")
    p.add_argument("--shard", type=int, required=True, help="shard index, 0-based")
    p.add_argument("--shards", type=int, required=True, help="number of parse shards")
    p.add_argument("--root", type=Path, default=None,
                   help="folder that relative manifest paths are relative to (default: cwd)")
    p.add_argument("--output", type=Path, required=True, help="parsed shard (.parquet)")
    p.add_argument("--params", default="{}", help="JSON of the config section `process`")
    p.set_defaults(func=_parse)

    m = sub.add_parser("local-manifest",
                       help="list the files of the local sources (config section `local`)")
    m.add_argument("--params", required=True,
                   help='JSON of the config section `local`: {"label": {"paths": [...], "plddt": false}}')
    m.add_argument("--base", type=Path, default=None,
                   help="folder that relative paths are relative to (default: cwd)")
    m.add_argument("--output", type=Path, required=True, help="manifest (.parquet)")
    m.set_defaults(func=_local_manifest)

    g = sub.add_parser("gather", help="Rg filter, dedup, split; write chain shards + report")
    g.add_argument("--parsed", type=Path, nargs="+", required=True, help="parsed shards")
    g.add_argument("--outdir", type=Path, required=True, help="results/chains")
    g.add_argument("--params", default="{}", help="JSON of the config section `process`")
    g.set_defaults(func=_gather)


def _parse(args: argparse.Namespace) -> int:
    from dplm2.process.config import ProcessConfig
    from dplm2.process.parse import run_parse

    cfg = ProcessConfig.from_json(args.params, "process")
    manifests = {k: v for k, v in (("pdb", args.pdb_manifest), ("afdb", args.afdb_manifest),
                                   ("local", args.local_manifest)) if v}
    if not manifests:
        raise ValueError("give --pdb-manifest, --afdb-manifest and/or --local-manifest")
    out = run_parse(manifests, args.shard, args.shards, args.output, cfg, args.root)
    log.info("wrote %s", out)
    return 0


def _local_manifest(args: argparse.Namespace) -> int:
    import json

    from dplm2.process.local import build_manifest, parse_sources

    try:
        section = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--params is not valid JSON ({exc})") from exc
    out = build_manifest(parse_sources(section), args.output, args.base)
    log.info("wrote %s", out)
    return 0


def _gather(args: argparse.Namespace) -> int:
    from dplm2.process.config import ProcessConfig
    from dplm2.process.gather import run_gather

    cfg = ProcessConfig.from_json(args.params, "process")
    for name, path in run_gather(args.parsed, args.outdir, cfg).items():
        log.info("wrote %s (%s)", path, name)
    return 0
