"""Several processes (`torchrun`, `accelerate launch`): who does what.

Every process trains (the trainers shard the batches) and evaluates its share of the test split. Everything with
a side effect outside the process happens on the main process only: saving the adapter, the run record, the card,
the plot, the evaluation files and the push; the others wait at a barrier where they need what it wrote.

With one process (plain `train-and-push`) every function here is a no-op or the obvious answer.
"""

from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def start(timeout_s: float = 1800) -> None:
    """Join the process group now (the trainers would later), so that work before training can wait for the main
    process. gloo without a GPU, NCCL with one (each process on its own GPU). `timeout_s` is how long a process
    waits for the others at a collective (`--ddp-timeout`): the group is made here, so the Trainer's `ddp_timeout`
    would never reach it, and torch's NCCL default of 10 minutes is shorter than one rank's long thinking."""
    if world_size() < 2:
        return
    import datetime

    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    timeout = datetime.timedelta(seconds=timeout_s)
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank()), timeout=timeout)
    else:
        dist.init_process_group("gloo", timeout=timeout)


def barrier() -> None:
    """Wait until every process gets here."""
    if world_size() < 2:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def gather(obj) -> list | None:
    """Every process's `obj`, in rank order, on the main process (None elsewhere)."""
    if world_size() < 2:
        return [obj]
    import torch.distributed as dist

    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj):
    """The main process's `obj` on every process."""
    if world_size() < 2:
        return obj
    import torch.distributed as dist

    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def device() -> str:
    """Where this process's model lives: its own GPU, else the CPU."""
    import torch

    return f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu"


def finish() -> None:
    """Leave the process group cleanly (no warning at exit)."""
    if world_size() < 2:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
