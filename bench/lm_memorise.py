"""Memorisation benchmark: accuracy vs. steps and time on 6-8 real chains, one-shot argmax and
the iterative unmasking sampler.

Trains a demo-size DPLM-2 LM from scratch on N real chains from the bundled mirror
(``resources/mirror``, first chain of each demo entry, first ``--length`` residues), every
protein in every step with a random task, and every ``--eval-every`` steps measures folding
(structure tokens from the sequence) and inverse-folding (sequence from the structure tokens)
token accuracy by one-shot argmax and by the sampler (argmax, deterministic unmasking,
``--max-iter`` steps). Structure tokens are the tokenizer's output when ``--tokens`` names
token shards holding these chains, else those of a freshly initialised structure tokenizer
(``tests/lm/helpers.fresh_tokenizer_codes``: real, structure-dependent codes; ``--random``:
uniform random codes instead).

The loss is the reference's by default (cross-entropy over all 8229 ids, mean of the two
modalities, tasks split per batch, 2 token-dropout passes); ``--softmax full modality`` runs
one training per definition of the softmax range (same seed, same data) and reports both;
``--target 0.95`` stops a run once both one-shot accuracies reach it (the memorisation test's
criterion: ``--chains 4 --length 64 --target 0.95 --max-steps 3000 --eval-every 100``).
``--objective bit`` trains a DPLM-2 Bit model instead (the bit loss on every bit;
``--bit-loss-ignore-index-bug`` the reference's); every row also reports one-shot folding
accuracy per structure bit (``fold_bit``).

Usage::

    python bench/lm_memorise.py --chains 6 --length 96 --minutes 18 \
        --out results/bench/lm_memorise.json
    python bench/lm_memorise.py --chains 4 --length 64 --target 0.95 --max-steps 3000 \
        --eval-every 100 --softmax full modality --seeds 0 1
    python bench/lm_memorise.py --objective bit --chains 4 --length 48 --repeats 4 \
        --target 0.95 --max-steps 1500 --eval-every 50 --no-sampler

Not part of the test suite (up to 20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def load(n: int, length: int, tokens: list[Path] | None, random_codes: bool = False):
    import sys

    sys.path.insert(0, str(REPO))
    from dplm2.lm.data import Protein, load_proteins
    from tests.lm.helpers import demo_chains, fresh_tokenizer_codes

    chains = demo_chains(n)
    known = {p.id: p for p in load_proteins(tokens, None)} if tokens else {}
    if all(c.id in known and known[c.id].sequence == c.sequence for c in chains) and known:
        codes, source = [known[c.id].codes[:length] for c in chains], "tokenizer (shards)"
    elif random_codes:
        rng = np.random.default_rng(0)
        codes, source = [rng.integers(0, 8192, min(length, len(c))) for c in chains], "random"
    else:
        codes, source = fresh_tokenizer_codes(chains, length), "fresh tokenizer"
    return [Protein(c.id, c.sequence[: len(k)], k) for c, k in zip(chains, codes)], source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chains", type=int, default=6)
    ap.add_argument("--length", type=int, default=96)
    ap.add_argument("--minutes", type=float, default=18.0)
    ap.add_argument("--max-steps", type=int, default=20000)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--max-iter", type=int, default=25, help="sampler steps")
    ap.add_argument("--tokens", type=Path, nargs="*", default=None)
    ap.add_argument("--random", action="store_true", help="uniform random structure codes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--softmax", nargs="+", choices=["full", "modality"], default=["full"],
                    help="softmax range(s) of the loss; one run each (same seeds)")
    ap.add_argument("--task-split", choices=["batch", "sample"], default="batch")
    ap.add_argument("--passes", type=int, default=None, help="token-dropout passes (default 2)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--repeats", type=int, default=1, help="copies of each chain per batch")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--end-lr", type=float, default=None,
                    help="linear decay to this at --max-steps (default: constant lr)")
    ap.add_argument("--target", type=float, default=None,
                    help="stop when both one-shot accuracies reach this")
    ap.add_argument("--objective", choices=["index", "bit"], default="index",
                    help="index = DPLM-2, bit = DPLM-2 Bit (13 binary structure heads)")
    ap.add_argument("--bit-loss-ignore-index-bug", action="store_true",
                    help="the reference's bit loss (drops every bit whose target is 1)")
    ap.add_argument("--no-sampler", action="store_true", help="one-shot accuracy only (faster)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from dplm2.lm.probe import memorise
    from dplm2.lm.sampling import SamplerConfig

    proteins, source = load(args.chains, args.length, args.tokens, args.random)
    sampler = SamplerConfig.from_dict(dict(max_iter=args.max_iter, strategy="argmax", unmasking="deterministic"))
    report = {
        "chains": [p.id for p in proteins],
        "lengths": [len(p.sequence) for p in proteins],
        "structure_tokens": source,
        "distinct_codes": [len(set(p.codes.tolist())) for p in proteins],
        "sampler": None if args.no_sampler else sampler.to_dict(),
        "threads": torch.get_num_threads(),
        "task_split": args.task_split,
        "token_dropout_passes": 2 if args.passes is None else args.passes,
        "lr": args.lr,
        "end_lr": args.end_lr,
        "repeats": args.repeats,
        "objective": args.objective,
        "bit_loss_ignore_index_bug": args.bit_loss_ignore_index_bug,
        "runs": [],
    }
    for softmax in args.softmax:
        for seed in args.seeds:
            t0 = time.time()
            history = memorise(
                proteins, tempfile.mkdtemp(prefix="lm_memorise_"), max_steps=args.max_steps,
                eval_every=args.eval_every, target=args.target,
                sampler=None if args.no_sampler else sampler, time_limit_s=args.minutes * 60,
                softmax=softmax, task_split=args.task_split,
                token_dropout_passes=args.passes, seed=seed, lr=args.lr, end_lr=args.end_lr,
                repeats=args.repeats, objective=args.objective,
                bit_loss_ignore_index_bug=args.bit_loss_ignore_index_bug,
            )
            run = {"softmax": softmax, "seed": seed, "wall_s": time.time() - t0,
                   "history": history}
            report["runs"].append(run)
            print(f"softmax {softmax}, seed {seed}: {run['wall_s']:.0f} s", flush=True)
            print(f"{'step':>6} {'wall_s':>7} {'fold':>6} {'inv':>6} {'fold_bit':>8} "
                  f"{'fold_it':>7} {'inv_it':>7}")
            for r in history:
                it = (f"{r['fold_acc_sampler']:>7.3f} {r['inv_acc_sampler']:>7.3f}"
                      if "fold_acc_sampler" in r else "")
                print(f"{r['step']:>6} {r['wall_s']:>7.0f} {r['fold_acc']:>6.3f} "
                      f"{r['inv_acc']:>6.3f} {r['fold_bit_acc']:>8.3f} {it}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
