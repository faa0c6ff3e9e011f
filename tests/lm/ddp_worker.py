"""Run under ``torchrun --nproc_per_node=2``: a few LM training steps, then each rank writes
its parameters to ``<out>/params-rank<r>.safetensors`` (checked by test_distributed.py)."""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from dplm2.lm.train import LMConfig, build_trainer


def main(params: str, init: str, shard: str, out: str) -> None:
    torch.set_num_threads(1)
    trainer = build_trainer(LMConfig.from_json(params), init, [shard], out)
    trainer.fit()
    state = {k: v.detach().contiguous().clone() for k, v in trainer.model.named_parameters()}
    save_file(state, f"{out}/params-rank{trainer.env.rank}.safetensors")
    if trainer.env.distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
