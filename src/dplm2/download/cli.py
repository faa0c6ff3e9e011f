"""``dplm2 download <command>``: the commands the Snakemake rules of ``download.smk`` call.

``ids``        build the validated ID list of a source (file, RCSB search or holdings)
``fetch``      fetch one shard of an ID list into the server layout + a shard manifest
``swissprot``  stream the bulk SwissProt tar, extract it safely + a manifest
``gather``     merge shard manifests into ``results/download/<source>_manifest.parquet``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

log = logging.getLogger("dplm2.download")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``download`` stage and its commands to the ``dplm2`` parser."""
    stage = subparsers.add_parser("download", help="fetch PDB / AlphaFold DB structure files")
    cmds = stage.add_subparsers(dest="download_command", metavar="<command>", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--params", default="{}", help="the config's download section as JSON")
        p.add_argument(
            "--relative-to",
            default=None,
            help="folder that relative mirror paths and ID files are resolved against "
            "(the workflow folder); default: the current folder",
        )

    p = cmds.add_parser("ids", help="write the validated ID list of a source")
    p.add_argument("--source", choices=("pdb", "afdb"), required=True)
    p.add_argument("--output", required=True, type=Path)
    common(p)
    p.set_defaults(func=cmd_ids)

    p = cmds.add_parser("fetch", help="fetch one shard of an ID list")
    p.add_argument("--source", choices=("pdb", "afdb"), required=True)
    p.add_argument("--ids", required=True, type=Path, help="ID list written by `ids`")
    p.add_argument("--shard", default="1-of-1", help="scatter item i-of-n (1-based)")
    p.add_argument("--raw", required=True, type=Path, help="download folder (server layout)")
    p.add_argument("--manifest", required=True, type=Path, help="shard manifest (Parquet)")
    p.add_argument("--threads", type=int, default=1, help="parallel transfers")
    common(p)
    p.set_defaults(func=cmd_fetch)

    p = cmds.add_parser("swissprot", help="stream + safely extract the bulk SwissProt tar")
    p.add_argument("--raw", required=True, type=Path, help="extraction folder")
    p.add_argument("--manifest", required=True, type=Path)
    common(p)
    p.set_defaults(func=cmd_swissprot)

    p = cmds.add_parser("gather", help="merge manifests (one row per id)")
    p.add_argument("--inputs", nargs="*", default=[], type=Path)
    p.add_argument("--output", required=True, type=Path)
    common(p)
    p.set_defaults(func=cmd_gather)


def _config(args: argparse.Namespace):
    from dplm2.download.config import DownloadConfig

    return DownloadConfig.from_json(args.params, "download")


def _resolve(path: str, args: argparse.Namespace) -> Path:
    p = Path(path)
    return p if p.is_absolute() or args.relative_to is None else Path(args.relative_to) / p


def _meta(args: argparse.Namespace, **extra) -> dict:
    from dplm2.download.config import DownloadConfig

    cfg = DownloadConfig.from_json(args.params).to_dict()
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    return {"stage": "download", "config_sha256": digest, **extra}


def cmd_ids(args: argparse.Namespace) -> int:
    """Write the ID list of ``--source`` (validated, deduplicated)."""
    from dplm2.download.fetch import Fetcher
    from dplm2.download.ids import rcsb_holdings, rcsb_search, read_id_file, write_id_file

    cfg = _config(args)
    if args.source == "afdb":
        if not cfg.afdb.accession_file:
            raise ValueError("download.afdb.accession_file is not set")
        ids = read_id_file(_resolve(cfg.afdb.accession_file, args), "afdb")
        how = f"from {cfg.afdb.accession_file}"
    else:
        pdb = cfg.pdb
        fetcher = Fetcher(cfg.http)
        if pdb.id_source == "file":
            if not pdb.id_file:
                raise ValueError("download.pdb.id_file is required when id_source is 'file'")
            ids = read_id_file(_resolve(pdb.id_file, args), "pdb")
            how = f"from {pdb.id_file}"
        elif pdb.id_source == "search":
            ids = rcsb_search(pdb.search, fetcher.post_json)
            how = f"RCSB search {pdb.search.url}"
        else:
            ids = rcsb_holdings(pdb.holdings_url, fetcher.get_bytes)
            how = f"RCSB holdings {pdb.holdings_url}"
        if pdb.max_ids is not None:
            ids = ids[: pdb.max_ids]
    if not ids:
        raise ValueError(f"{args.source}: the ID list ({how}) is empty")
    write_id_file(args.output, ids, f"{len(ids)} {args.source} ids {how}")
    log.info("%s: %d ids %s -> %s", args.source, len(ids), how, args.output)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch one shard; write its manifest; exit 1 when too many failed."""
    from dplm2.download.batch import fetch_all
    from dplm2.download.fetch import Fetcher, resolve_base
    from dplm2.download.ids import parse_shard, read_id_file, shard_ids
    from dplm2.download.manifest import check_failures, to_frame, write_manifest
    from dplm2.download.sources import afdb_candidates, pdb_candidates

    cfg = _config(args)
    index, count = parse_shard(args.shard)
    ids = shard_ids(read_id_file(args.ids, args.source), index, count)
    src = cfg.pdb if args.source == "pdb" else cfg.afdb
    base = resolve_base(src.base_url, args.relative_to)
    make = pdb_candidates if args.source == "pdb" else afdb_candidates

    def candidates(entry: str):
        return make(entry, src, base, args.raw)

    log.info("%s shard %s: %d ids from %s", args.source, args.shard, len(ids), base)
    desc = f"{args.source} {args.shard}"
    rows = fetch_all(ids, candidates, Fetcher(cfg.http), args.threads, desc)
    df = to_frame(rows)
    write_manifest(df, args.manifest, _meta(args, source=args.source, shard=args.shard))
    try:
        check_failures(df, cfg.http.max_failed_fraction, f"{args.source} {args.shard}")
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    return 0


def cmd_swissprot(args: argparse.Namespace) -> int:
    """Extract the SwissProt archive (all members, or the configured accessions)."""
    from dplm2.download.fetch import Fetcher, resolve_base
    from dplm2.download.ids import read_id_file
    from dplm2.download.manifest import check_failures, to_frame, write_manifest
    from dplm2.download.tarball import fetch_swissprot

    cfg = _config(args)
    sp = cfg.afdb.swissprot
    url = resolve_base(sp.url, args.relative_to)
    only = read_id_file(_resolve(sp.accession_file, args), "afdb") if sp.accession_file else None
    rows, refused = fetch_swissprot(url, args.raw, Fetcher(cfg.http), only)
    df = to_frame(rows)
    write_manifest(df, args.manifest, _meta(args, source="swissprot", refused=refused))
    log.info("swissprot: %d entries, %d refused members", len(rows), len(refused))
    try:
        check_failures(df, cfg.http.max_failed_fraction, "swissprot")
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    return 0


def cmd_gather(args: argparse.Namespace) -> int:
    """Merge manifests into one (one row per id)."""
    from dplm2.download.manifest import gather, summary, write_manifest

    df = gather(args.inputs)
    write_manifest(df, args.output, _meta(args, inputs=[p.name for p in args.inputs]))
    log.info("gathered %d manifests -> %s: %s", len(args.inputs), args.output, summary(df))
    return 0
