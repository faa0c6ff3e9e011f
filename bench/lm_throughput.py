"""LM training throughput: tokens/s and model FLOP utilisation (MFU), ours vs plain HF ESM.

In one run, on the same batches and machine:

* the machine's fp32 (or bf16 on CUDA) matmul peak, measured with square ``torch.mm``;
* a DPLM-2 training step (forward + backward + AdamW) of :class:`dplm2.lm.model.DPLM2LM`
  (SDPA attention with the two-half bias, per-modality head at masked positions only);
* the same step of Hugging Face's ``EsmForMaskedLM`` of the same size with **eager**
  attention, ``input_ids`` and the full 8229-way head at every position (labels -100 where
  unmasked): what a direct port would run.

Rounds alternate between the two models so that load from other processes hits both alike;
medians are reported. MFU = model FLOPs per step / step time / matmul peak, with model FLOPs
= 3 x forward FLOPs (forward + backward), forward = 2 x (block parameters) per token +
attention (4 x n x d per token per layer) + LM head (2 x d x classes per scored position).

Usage::

    python bench/lm_throughput.py --batch 4 --length 128 --rounds 5
    python bench/lm_throughput.py --hidden 640 --layers 30 --heads 20 --ffn 2560 --length 256 \
        --out results/bench/lm_throughput.json          # 150M size
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 1024, reps: int = 10) -> float:
    """Best observed FLOP/s of an n x n x n matmul."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(3):
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def block_params(net) -> int:
    return sum(p.numel() for n, p in net.esm.encoder.named_parameters())


def forward_flops(net, batch: int, n: int, scored: int, classes: int) -> float:
    """Approximate forward FLOPs of one batch (see module docstring)."""
    cfg = net.config
    tokens = batch * n
    dense = 2 * block_params(net) * tokens
    attn = 4 * n * cfg.hidden_size * tokens * cfg.num_hidden_layers
    head = scored * (2 * cfg.hidden_size * cfg.hidden_size + 2 * cfg.hidden_size * classes)
    return float(dense + attn + head)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=128, help="residues per protein")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import EsmForMaskedLM

    from dplm2.lm.data import Protein, make_batch
    from dplm2.lm.diffusion import DiffusionConfig
    from dplm2.lm.model import DPLM2LM, TransformerConfig
    from dplm2.lm.train import diffusion_loss
    from dplm2.lm.vocab import N_AA, N_STRUCT, VOCAB_SIZE

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    peak = matmul_peak(device, torch.bfloat16 if bf16 else torch.float32)
    mcfg = TransformerConfig.from_dict(dict(hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                                      intermediate_size=args.ffn))
    torch.manual_seed(0)
    ours = DPLM2LM(EsmForMaskedLM(mcfg.esm_config())).to(device)
    ours.net.esm.contact_head.requires_grad_(False)
    hf = EsmForMaskedLM(mcfg.esm_config()).to(device)
    hf.set_attn_implementation("eager")
    rng = np.random.default_rng(0)
    aa = list("ACDEFGHIKLMNPQRSTVWY")
    ps = [Protein(str(i), "".join(rng.choice(aa, args.length)), rng.integers(0, 8192, args.length))
          for i in range(args.batch)]
    batch = make_batch(ps, DiffusionConfig.from_dict(), torch.Generator().manual_seed(0))
    batch = {k: v.to(device) for k, v in batch.items()}
    ids = batch["input_ids"]
    n = ids.shape[1]
    labels = torch.where(batch["masked"], batch["targets"], torch.full_like(ids, -100))
    width = n // 2
    scored_s = int(batch["masked"][:, :width].sum())
    scored_a = int(batch["masked"][:, width:].sum())

    def step_ours(opt):
        loss, _ = diffusion_loss(ours, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def step_hf(opt):
        out = hf(input_ids=ids, attention_mask=(ids != 1).long())
        loss = F.cross_entropy(out.logits.float().view(-1, VOCAB_SIZE), labels.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    runs = {
        "dplm2_sdpa_restricted_head": (ours, step_ours,
                                       forward_flops(ours.net, args.batch, n, scored_s, N_STRUCT)
                                       + forward_flops(ours.net, 0, n, scored_a, N_AA)),
        "hf_esm_eager_full_head": (hf, step_hf,
                                   forward_flops(hf, args.batch, n, args.batch * n, VOCAB_SIZE)),
    }
    opts = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for k, (m, _, _) in runs.items()}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for rnd in range(args.rounds + 1):  # round 0 = warm-up
        for name, (model, step, _) in runs.items():
            model.train()
            autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
            _sync(device)
            t = time.perf_counter()
            with autocast:
                for _ in range(args.steps if rnd else 1):
                    step(opts[name])
            _sync(device)
            if rnd:
                times[name].append((time.perf_counter() - t) / args.steps)
    report = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(0),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "precision": "bf16 autocast" if bf16 else "fp32",
        "matmul_peak_tflops": peak / 1e12,
        "size": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "network_tokens_per_step": args.batch * n,
        "models": {},
    }
    for name, (model, _, fwd) in runs.items():
        t = statistics.median(times[name])
        report["models"][name] = {
            "step_s": t,
            "tokens_per_s": args.batch * n / t,
            "residues_per_s": args.batch * args.length / t,
            "model_tflops_per_step": 3 * fwd / 1e12,
            "mfu": 3 * fwd / t / peak,
            "parameters": sum(p.numel() for p in model.parameters()),
        }
    a, b = (report["models"][k]["step_s"] for k in runs)
    report["speedup_vs_hf_eager"] = b / a
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
