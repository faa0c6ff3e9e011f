"""Sampling throughput: proteins per second for one length and max_iter, batched vs one at a time.

Runs the generation stage's co-generation path (``dplm2.generate.tasks.run_requests`` on the
LM sampler) twice on the same N proteins: all in batches of ``--batch-size``, then one protein
per forward pass, and reports proteins/s, the speed-up and the share of the batched run's time
spent in the network's forward pass (``hidden_states``; the rest is the vocabulary projection,
scoring, top-p and re-masking). Weights do not change the cost of a forward pass, so without
``--lm`` a randomly initialised model of the demo size (or ``--hidden/--layers/--heads``) is
used. Decoding by the tokenizer is timed separately when ``--tokenizer`` is given.

``--before REF`` also runs the same measurement on the code of git commit REF (a temporary
``git worktree``, in a subprocess, right after this one) and prints both and their ratios, so
a change to the sampler is measured in one run on the same machine state.

Usage::

    python bench/sampling_throughput.py --length 100 --max-iter 50 --n 8 --batch-size 8
    python bench/sampling_throughput.py --before c407e57 --length 100 --max-iter 50 --n 8
    python bench/sampling_throughput.py --objective both --length 100 --max-iter 50 --n 8
    python bench/sampling_throughput.py --lm results/lm/model --tokenizer results/tokenizer \
        --length 200 --max-iter 100 --n 16 --out results/bench/sampling_throughput.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def build_model(args):
    """The LM to time: a saved one, or a random one of the requested size (and its runtime)."""
    from transformers import EsmForMaskedLM

    from dplm2.train import pick_device
    from dplm2.lm.model import DPLM2LM, TransformerConfig

    device = pick_device(args.device)
    if args.lm:
        from dplm2.lm.load import load_lm

        lm = load_lm(args.lm)  # either objective, our layout or the released one
    elif args.objective == "bit":
        from dplm2.lm.bit import DPLM2BitLM, EsmForDPLM2Bit, bit_esm_config

        torch.manual_seed(0)
        lm = DPLM2BitLM(EsmForDPLM2Bit(bit_esm_config(args.hidden, args.layers, args.heads,
                                                      4 * args.hidden)))
    else:
        torch.manual_seed(0)
        cfg = TransformerConfig.from_dict(dict(hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                                         intermediate_size=4 * args.hidden))
        lm = DPLM2LM(EsmForMaskedLM(cfg.esm_config()))
    lm = lm.to(device).eval()
    tok = None
    if args.tokenizer:
        from dplm2.tokenizer.hub import load_tokenizer

        tok, _ = load_tokenizer(args.tokenizer, device=device)
    return lm, tok, device


class _Runtime:
    """The parts of :class:`dplm2.generate.runtime.Runtime` that ``run_requests`` reads (both
    the current interface and the one before the reference decoding, for ``--before``)."""

    def __init__(self, lm, tok, device):
        self.lm, self.tokenizer, self.device = lm, tok, device
        self.codebook = int(tok.cfg.codebook_size) if tok is not None else 8192

    def banned_codes(self):
        from dplm2.lm.vocab import banned_codes

        return banned_codes(self.codebook, self.device)

    def sampler_model(self):  # the interface before the reference decoding
        from dplm2.generate.runtime import LogitLimits

        return LogitLimits(self.lm, self.codebook)


class ForwardTimer:
    """Wraps ``lm.hidden_states`` (the network's forward pass, however the sampler calls it)
    and adds up its wall time."""

    def __init__(self, lm, device):
        self.seconds, self._inner, self._device = 0.0, lm.hidden_states, device
        lm.hidden_states = self

    def __call__(self, *a, **kw):
        self._sync()
        t0 = time.perf_counter()
        out = self._inner(*a, **kw)
        self._sync()
        self.seconds += time.perf_counter() - t0
        return out

    def _sync(self):
        if self._device.type == "cuda":
            torch.cuda.synchronize()


def time_run(rt, requests, sampling, batch_size: int) -> float:
    from dplm2.generate.tasks import run_requests

    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run_requests(rt, requests, sampling, seed=0, task="bench", batch_size=batch_size)
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure(args) -> dict:
    """One measurement with the ``dplm2`` on ``sys.path``."""
    from dplm2.generate.config import LengthTaskConfig
    from dplm2.generate.tasks import length_requests
    from dplm2.lm.sampling import SamplerConfig

    lm, tok, device = build_model(args)
    rt = _Runtime(lm, tok, device)
    sampling = SamplerConfig.from_dict(dict(max_iter=args.max_iter, strategy=args.strategy, unmasking=args.unmasking))
    task = LengthTaskConfig.from_dict(dict(lengths=(args.length,), samples_per_length=args.n, sampling=sampling))
    reqs = length_requests(lm.vocab, "cogen", task)
    warm = SamplerConfig.from_dict(dict(max_iter=2, strategy=args.strategy, unmasking=args.unmasking))
    time_run(rt, reqs[:1], warm, 1)  # first call pays one-off costs (allocations, kernels)
    timer = ForwardTimer(lm, device)
    batched = time_run(rt, reqs, sampling, args.batch_size)
    forward = timer.seconds
    single = time_run(rt, reqs, sampling, 1)
    result = {
        "length": args.length, "max_iter": args.max_iter, "n": args.n,
        "batch_size": args.batch_size, "strategy": args.strategy, "unmasking": args.unmasking,
        "model": str(args.lm) if args.lm else f"random hidden={args.hidden} layers={args.layers}",
        "objective": "bit" if getattr(lm, "is_bit", False) else "index",
        "parameters": sum(q.numel() for q in lm.parameters()),
        "device": str(device), "threads": torch.get_num_threads(), "cpu": platform.processor(),
        "batched_s": round(batched, 3), "single_s": round(single, 3),
        "batched_proteins_per_s": round(args.n / batched, 4),
        "single_proteins_per_s": round(args.n / single, 4),
        "speedup": round(single / batched, 2),
        "forward_share": round(forward / batched, 3),
    }
    if tok is not None:
        from dplm2.generate.runtime import Runtime

        full = Runtime(lm=lm, tokenizer=tok, device=device, lm_hash="", tokenizer_sha256="", code_hash="")
        codes = [torch.randint(0, full.codebook_size, (args.length,)).numpy() for _ in range(args.n)]
        t0 = time.perf_counter()
        full.detokenize(codes, batch_size=args.batch_size)
        result["decode_proteins_per_s"] = round(args.n / (time.perf_counter() - t0), 4)
    return result


def measure_at(ref: str, argv: list[str]) -> dict:
    """The same measurement on the code of commit ``ref`` (temporary worktree, subprocess)."""
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), ref],
                       check=True, capture_output=True)
        try:
            env = dict(os.environ, PYTHONPATH=str(tree / "src"))
            out = subprocess.run([sys.executable, __file__, *argv, "--json-only"], env=env,
                                 check=True, capture_output=True, text=True)
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)
    return json.loads(out.stdout)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--max-iter", type=int, default=50)
    p.add_argument("--n", type=int, default=8, help="proteins per measurement")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--strategy", default="annealing@2.0:1.0")
    p.add_argument("--unmasking", default="stochastic1.0")
    p.add_argument("--lm", type=Path, help="exported LM folder (default: random demo-size model)")
    p.add_argument("--tokenizer", type=Path, help="tokenizer folder: also time decoding")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--objective", choices=("index", "bit", "both"), default="index",
                   help="random model's kind: DPLM-2 (index), DPLM-2 Bit (13 bit heads), or "
                        "both in one run with their ratio")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON file for the result")
    p.add_argument("--before", metavar="REF", help="also measure git commit REF, print ratios")
    p.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.objective == "both":
        if args.lm or args.before:
            p.error("--objective both compares two random models: no --lm, no --before")
        index = measure(argparse.Namespace(**{**vars(args), "objective": "index"}))
        bit = measure(argparse.Namespace(**{**vars(args), "objective": "bit"}))
        result = {"index": index, "bit": bit,
                  "ratio_bit_over_index_batched": round(
                      bit["batched_proteins_per_s"] / index["batched_proteins_per_s"], 2),
                  "ratio_bit_over_index_single": round(
                      bit["single_proteins_per_s"] / index["single_proteins_per_s"], 2)}
    else:
        result = measure(args)
    if args.json_only:
        print(json.dumps(result))
        return 0
    if args.before:
        same = ["--length", args.length, "--max-iter", args.max_iter, "--n", args.n,
                "--batch-size", args.batch_size, "--strategy", args.strategy, "--unmasking",
                args.unmasking, "--hidden", args.hidden, "--layers", args.layers, "--heads",
                args.heads, "--device", args.device, "--threads", args.threads]
        same += ["--lm", args.lm] if args.lm else []
        same += ["--objective", "bit"] if args.objective == "bit" else []
        same += ["--tokenizer", args.tokenizer] if args.tokenizer else []
        before = measure_at(args.before, [str(a) for a in same])
        result = {"after": result, "before": {"ref": args.before, **before},
                  "ratio_batched_proteins_per_s": round(
                      result["batched_proteins_per_s"] / before["batched_proteins_per_s"], 2),
                  "ratio_single_proteins_per_s": round(
                      result["single_proteins_per_s"] / before["single_proteins_per_s"], 2)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from dplm2.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
