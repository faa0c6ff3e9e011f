"""A tiny regression problem for testing the shared training loop (also run as a script by
the kill-and-resume test)."""

from __future__ import annotations

import sys
import time

import torch

from dplm2.train import TrainConfig, Trainer


class Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Dropout(0.1), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def batch_fn(step: int, rank: int, world: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step * world + rank)
    x = torch.randn(16, 8, generator=g)
    return {"x": x, "y": x.sum(dim=1, keepdim=True)}


def loss_fn(model, batch):
    pred = model(batch["x"])
    loss = torch.nn.functional.mse_loss(pred, batch["y"])
    return loss, {"mse": float(loss.detach())}


def make_trainer(out_dir, max_steps=20, ckpt_every=5, sleep=0.0, **kw) -> Trainer:
    torch.manual_seed(0)
    model = Toy()
    cfg = TrainConfig.from_dict(dict(max_steps=max_steps, lr=3e-2, warmup_steps=2, ckpt_every=ckpt_every,
                                     keep_checkpoints=3, seed=7, **kw))

    def slow_loss(m, b):
        if sleep:
            time.sleep(sleep)
        return loss_fn(m, b)

    return Trainer(model, slow_loss, batch_fn, cfg, out_dir)


if __name__ == "__main__":
    make_trainer(sys.argv[1], max_steps=int(sys.argv[2]), ckpt_every=2, sleep=float(sys.argv[3])).fit()
