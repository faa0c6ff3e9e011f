"""Process-group set-up for ``torchrun``: one code path for 1..N processes.

``torchrun --standalone --nproc_per_node=N -m dplm2.cli ...`` sets RANK/WORLD_SIZE/LOCAL_RANK;
a plain ``dplm2 ...`` call is world size 1 and never touches ``torch.distributed``.
Multi-node: ``torchrun --nnodes=M --node_rank=i --rdzv_backend=c10d
--rdzv_endpoint=HOST:PORT`` with the same command on every node.
"""

from __future__ import annotations

import dataclasses
import os

import torch


@dataclasses.dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str = "auto") -> torch.device:
    """The torch device for a config's ``device`` value: ``auto`` -> CUDA when available, else CPU;
    anything else (``cpu``, ``cuda:1``, ``mps``) as given. The one place every stage asks.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def dist_env(device: str | None = None) -> DistEnv:
    """Initialise the process group when launched by torchrun; choose the device.

    CUDA (NCCL, one GPU per local rank) when available, else CPU (gloo).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev)
