"""Tokenizer speed: encode throughput (encoder + quantizer, residues/s) and training step time.

Uses real chains from the bundled mirror and the demo model of ``config.yaml`` (or the paper
model with ``--paper``). Timings are medians over repeats after a warm-up; the numbers depend
on what else runs on the machine, so the load average is reported with them.

Usage::

    python bench/tokenizer_speed.py [--paper] [--threads 2] [--repeats 5]
    python bench/tokenizer_speed.py --compare-encoders   # ESM-IF1 (released) vs local-frame

``--compare-encoders`` times only the two encoders at their full sizes, in one run on the same
chains: ESM-IF1's GVP-Transformer (the paper's and the released tokenizer's, random weights of
the released shape, through fair-esm) and this project's local-frame encoder at its default
sizes (512 wide, as ESM-IF1's output).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paper", action="store_true", help="paper-size model (config/paper.yaml)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compare-encoders", action="store_true",
                    help="time the ESM-IF1 encoder against the local-frame encoder, then exit")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.compare_encoders:
        return compare_encoders(args)

    from tokenizer_overfit import load_records

    from dplm2.tokenizer.config import TokenizerConfig
    from dplm2.tokenizer.data import TrainBatches, collate
    from dplm2.tokenizer.model import num_parameters
    from dplm2.tokenizer.train import build_model, tokenizer_loss

    cfg_file = REPO / ("config/paper.yaml" if args.paper else "config.yaml")
    cfg = TokenizerConfig.from_dict(yaml.safe_load(cfg_file.read_text())["tokenizer"])
    model = build_model(cfg).to(args.device)
    records = load_records()

    # Encode throughput: one chain per call, as the tokenize rule does.
    model.eval()
    batches = [{k: v.to(args.device) for k, v in collate([r]).items()} for r in records]
    n_res = sum(int(b["mask"].sum()) for b in batches)
    times = []
    with torch.no_grad():
        for rep in range(args.repeats + 1):
            t0 = time.perf_counter()
            for b in batches:
                model.tokenize(b["coords"], b["atom_mask"], b["mask"])
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if rep:  # first pass is warm-up
                times.append(time.perf_counter() - t0)
    enc = n_res / statistics.median(times)

    # Training step time (forward + backward + AdamW) at the config's crop and batch size.
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch_fn = TrainBatches(records, cfg.data, 0)
    step_times = []
    use_bf16 = args.device.startswith("cuda") and cfg.train.precision in ("auto", "bf16")
    for step in range(args.repeats + 1):
        batch = {k: v.to(args.device) for k, v in batch_fn(step).items()}
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            loss, _ = tokenizer_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step:
            step_times.append(time.perf_counter() - t0)
    result = {
        "model": "paper" if args.paper else "demo",
        "parameters": num_parameters(model),
        "device": args.device,
        "threads": args.threads,
        "load_average": os.getloadavg()[0],
        "encode_residues_per_s": round(enc, 1),
        "train_step_s": round(statistics.median(step_times), 3),
        "crop_length": cfg.data.crop_length,
        "batch_size": cfg.data.batch_size,
    }
    print(json.dumps(result, indent=2))
    return 0


def _time_encoder(encoder, batches, repeats: int, device: str) -> float:
    """Median seconds for one pass over ``batches`` (one chain per call), after a warm-up."""
    times = []
    with torch.no_grad():
        for rep in range(repeats + 1):
            t0 = time.perf_counter()
            for b in batches:
                encoder(b["coords"], b["atom_mask"], b["mask"])
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if rep:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare_encoders(args) -> int:
    from tokenizer_overfit import load_records

    from dplm2.tokenizer.config import ModelConfig
    from dplm2.tokenizer.data import collate
    from dplm2.tokenizer.model import build_encoder

    from dplm2.tokenizer.gvp import ESM_IF1_GVP_LAYERS, ESM_IF1_LAYERS

    local_frame = ModelConfig.from_dict()  # the schema defaults: 512 wide, 30 neighbours, 2 + 2 layers
    configs = {"local_frame (default sizes)": local_frame, "esm_if1 (released sizes)": ModelConfig.from_dict(dict(
        encoder="esm_if1", encoder_layers=ESM_IF1_LAYERS,
        encoder_message_layers=ESM_IF1_GVP_LAYERS))}
    records = load_records()
    batches = [{k: v.to(args.device) for k, v in collate([r]).items()} for r in records]
    n_res = sum(int(b["mask"].sum()) for b in batches)
    result = {"device": args.device, "threads": args.threads, "chains": len(batches),
              "residues": n_res}
    rates = {}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        encoder = build_encoder(cfg).to(args.device).eval()
        seconds = _time_encoder(encoder, batches, args.repeats, args.device)
        rates[name] = n_res / seconds
        result[name] = {"parameters": sum(p.numel() for p in encoder.parameters()),
                        "residues_per_s": round(rates[name], 1)}
    a, b = rates.values()
    result["ratio_local_frame_over_esm_if1"] = round(a / b, 2)
    result["load_average"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
