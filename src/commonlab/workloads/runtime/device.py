"""Where a workload runs and in which precision, and whether it is one process of several.

`start` reads the configuration's `device` and `precision` and the environment torchrun
sets (WORLD_SIZE, RANK, LOCAL_RANK); a request the machine cannot honour (CUDA without a
GPU, fp16 on a CPU) is refused with what to ask for instead, before any work is done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from commonlab.errors import InvalidInput

__all__ = [
    "Runtime",
    "barrier",
    "choose_device",
    "choose_precision",
    "start",
    "stop",
]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype  # what autocast computes in; float32: no autocast
    precision_name: str  # fp32, bf16 or fp16, as results and metrics report it
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The process that writes metrics, checkpoints' shared files and the output."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def choose_device(asked: str, *, local_rank: int = 0) -> torch.device:
    """`auto`: the GPU when there is one, else the CPU. Each process of a multi-GPU run takes
    the GPU of its local rank."""
    cuda = torch.cuda.is_available()
    if asked == "cuda" and not cuda:
        raise InvalidInput("device 'cuda' was asked for but this machine has no usable GPU")
    if asked not in ("auto", "cpu", "cuda"):
        raise InvalidInput(f"device must be auto, cpu or cuda, not {asked!r}")
    if asked == "cpu" or not cuda:
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise InvalidInput(
            f"process {local_rank} on this node has no GPU of its own "
            f"({torch.cuda.device_count()} GPUs): start at most that many processes a node"
        )
    return torch.device("cuda", local_rank)


def choose_precision(asked: str, device: torch.device) -> tuple[str, torch.dtype]:
    """`auto`: bf16 on a GPU that supports it, else fp32. fp16 only when asked, on a GPU."""
    on_gpu = device.type == "cuda"
    if asked == "auto":
        name = "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"
        return name, _DTYPES[name]
    if asked not in _DTYPES:
        raise InvalidInput(f"precision must be auto, fp32, bf16 or fp16, not {asked!r}")
    if asked == "fp16" and not on_gpu:
        raise InvalidInput("precision 'fp16' needs a GPU; on a CPU use fp32 or bf16")
    if asked == "bf16" and on_gpu and not torch.cuda.is_bf16_supported():
        raise InvalidInput("this GPU does not support bf16; use fp16 or fp32")
    if asked == "bf16" and not on_gpu and not _cpu_supports_bf16():
        raise InvalidInput("this CPU's torch cannot compute in bf16; use fp32")
    return asked, _DTYPES[asked]


def start(device: str = "auto", precision: str = "auto") -> Runtime:
    """The runtime of this process. Under torchrun (WORLD_SIZE > 1) it joins the process
    group first: gloo between CPUs, NCCL between GPUs. `stop` leaves it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_device(device, local_rank=local_rank)
    name, dtype = choose_precision(precision, chosen)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        kwargs = {"device_id": chosen} if chosen.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return Runtime(chosen, dtype, name, rank=rank, world_size=world_size, local_rank=local_rank)


def stop(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(runtime: Runtime) -> None:
    """Wait until every process of the run got here (nothing to wait for in one process)."""
    if runtime.distributed:
        dist.barrier()


def _cpu_supports_bf16() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.ones(2, 2) @ torch.ones(2, 2)
    except RuntimeError:
        return False
    return True
