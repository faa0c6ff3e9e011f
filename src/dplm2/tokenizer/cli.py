"""``dplm2 tokenizer {train,fetch-encoder,tokenize,detokenize,import-official}``: the commands the tokenizer rules run.

Every path is explicit; ``--params`` is the JSON of the config section the command uses
(``train``: the whole ``tokenizer`` section; ``tokenize``: ``tokenizer.tokenize``). Heavy
imports (torch, transformers) happen inside the command functions.
"""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("dplm2.tokenizer")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tokenizer`` stage and its sub-commands to the top-level parser."""
    p = subparsers.add_parser(
        "tokenizer", help="train the structure tokenizer, tokenize/detokenize structures",
        description="LFQ structure tokenizer (DPLM-2 paper, section 2).",
    )
    sub = p.add_subparsers(dest="tokenizer_command", metavar="<command>", required=True)

    t = sub.add_parser("train", help="train (or resume) a tokenizer on chain shards")
    t.add_argument("--chains", nargs="+", required=True, help="chain shard Parquet files")
    t.add_argument("--out-dir", required=True,
                   help="output folder: model.safetensors, config.json, state/, metrics.parquet, "
                        "training_record.json")
    t.add_argument("--params", default="{}", help="JSON of the tokenizer config section")
    t.add_argument("--device", default=None, help="torch device (default: CUDA if available)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--encoder-checkpoint", default=None,
                   help="model.encoder esm_if1: local ESM-IF1 checkpoint (overrides "
                        "tokenizer.encoder_checkpoint)")
    t.set_defaults(func=cmd_train)

    f = sub.add_parser("fetch-encoder", help="download ESM-IF1's weights (encoder esm_if1)",
                       description="Download a fair-esm ESM-IF1 checkpoint (http(s) or file URL) "
                                   "to --out, atomically, with retries.")
    f.add_argument("--url", default=None, help="default: fair-esm's esm_if1_gvp4_t16_142M_UR50.pt")
    f.add_argument("--out", required=True, help="file to write")
    f.set_defaults(func=cmd_fetch_encoder)

    k = sub.add_parser("tokenize", help="chain shard (or structure files) -> token shard")
    src = k.add_mutually_exclusive_group(required=True)
    src.add_argument("--chains", help="one chain shard Parquet file")
    src.add_argument("--structures", nargs="+",
                     help="PDB / mmCIF / BinaryCIF files (.gz too), folders or globs: every "
                     "protein chain")
    k.add_argument("--skip-bad-structures", action="store_true",
                   help="--structures: leave out files that cannot be read (listed with the "
                   "reason in the shard's metadata) instead of failing")
    k.add_argument("--tokenizer", required=True, help="tokenizer folder or hub id owner/name")
    k.add_argument("--out", required=True, help="token shard Parquet file to write")
    k.add_argument("--params", default="{}", help="JSON of tokenizer.tokenize")
    k.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    k.set_defaults(func=cmd_tokenize)

    i = sub.add_parser(
        "import-official", help="convert the released DPLM-2 tokenizer into this layout",
        description="Read the released structure tokenizer (hub id such as "
                    "airkingbd/struct_tokenizer, optional @revision, or a folder with config.yaml "
                    "+ dplm2_struct_tokenizer.ckpt; only those two files are fetched) and write "
                    "config.json + model.safetensors (+ released_from.json) into --out. Needs "
                    "fair-esm and torch_geometric for its GVP encoder.")
    i.add_argument("--source", required=True, help="hub id or folder of the released tokenizer")
    i.add_argument("--out", required=True, help="output folder (our tokenizer layout)")
    i.add_argument("--cache-dir", default=None, help="Hugging Face cache folder")
    i.set_defaults(func=cmd_import_official)

    d = sub.add_parser("detokenize", help="token shard -> PDB/mmCIF backbones")
    d.add_argument("--tokens", required=True, help="token shard Parquet file")
    d.add_argument("--tokenizer", required=True, help="tokenizer folder or hub id owner/name")
    d.add_argument("--out-dir", required=True, help="folder for <id>.pdb / <id>.cif")
    d.add_argument("--format", choices=("pdb", "cif"), default="pdb")
    d.add_argument("--ids", nargs="*", default=None, help="only these chain ids")
    d.add_argument("--limit", type=int, default=None, help="at most this many chains")
    d.add_argument("--params", default="{}", help="JSON of tokenizer.tokenize (device)")
    d.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    d.set_defaults(func=cmd_detokenize)


def _params(text: str, cls, where: str):
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"--params is not valid JSON ({exc})") from exc
    return cls.from_dict(data, where)


def _threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


def cmd_train(args: argparse.Namespace) -> int:
    from dplm2.tokenizer.config import TokenizerConfig
    from dplm2.tokenizer.train import train_tokenizer

    cfg = _params(args.params, TokenizerConfig, "tokenizer")
    _threads(args.threads)
    train_tokenizer(args.chains, args.out_dir, cfg, device=args.device,
                    encoder_checkpoint=args.encoder_checkpoint)
    return 0


def cmd_fetch_encoder(args: argparse.Namespace) -> int:
    from dplm2.download.fetch import FetchError
    from dplm2.tokenizer.gvp import ESM_IF1_URL, fetch_checkpoint

    try:
        fetch_checkpoint(args.url or ESM_IF1_URL, args.out)
    except FetchError as exc:  # the URL and the reason, as one line (nothing is written)
        raise ValueError(f"fetch-encoder: {exc}") from exc
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    from dplm2.tokenizer.config import TokenizeConfig
    from dplm2.tokenizer.hub import load_tokenizer
    from dplm2.tokenizer.tokenize import tokenize_files, tokenize_shard

    cfg = _params(args.params, TokenizeConfig, "tokenizer.tokenize")
    _threads(args.threads)
    device = cfg.resolve_device()
    if args.structures:
        from dplm2.structure.files import find_structure_files

        find_structure_files(args.structures)  # bad paths fail before the model loads
    model, sha = load_tokenizer(args.tokenizer, device=device)
    if args.structures:
        tokenize_files(model, sha, args.structures, args.out, device=device,
                       skip_bad=args.skip_bad_structures)
    else:
        tokenize_shard(model, sha, args.chains, args.out, device=device)
    return 0


def cmd_detokenize(args: argparse.Namespace) -> int:
    from dplm2.tokenizer.config import TokenizeConfig
    from dplm2.tokenizer.detokenize import detokenize_shard
    from dplm2.tokenizer.hub import load_tokenizer

    cfg = _params(args.params, TokenizeConfig, "tokenizer.tokenize")
    _threads(args.threads)
    device = cfg.resolve_device()
    model, _ = load_tokenizer(args.tokenizer, device=device)
    detokenize_shard(model, args.tokens, args.out_dir, args.format, args.ids, args.limit, device)
    return 0


def cmd_import_official(args: argparse.Namespace) -> int:
    from dplm2.tokenizer.official import import_official_tokenizer

    import_official_tokenizer(args.source, args.out, cache_dir=args.cache_dir)
    return 0
