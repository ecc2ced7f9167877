"""Several processes sharing one batch: ``torchrun`` or ``accelerate launch`` around a command.

::

    accelerate launch -m foleycrafter generate videos/ -o out/
    torchrun --nproc_per_node 2 -m foleycrafter generate videos/ -o out/

A launcher starts the same command once per process and tells each process who it is in the
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). Here:

* :func:`launched_processes` reads that environment (one process when ``WORLD_SIZE`` is unset or 1:
  nothing is initialised, no launcher is needed);
* :func:`process_group` joins the processes (gloo) for the two small exchanges a batch needs;
* :func:`balance` shares weighted items out, the same way in every process, so each process works
  out its own share from the same inputs without asking the others;
* :func:`all_gather` collects one Python object from every process (a plan's fingerprint, a
  summary) in every process;
* :func:`local_device` is the device ``--device auto`` means for a process: its own GPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from .runtime import UsageError

#: How long a collective waits for the slowest process. A process that has finished its share
#: waits at the final gather for the others; shares are balanced by duration, but one long video on
#: a slow device can still take hours, and torch's 30-minute default would end a good run. A
#: process that dies does not leave the others waiting this long: the launcher stops them.
COLLECTIVE_TIMEOUT = timedelta(days=2)


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the processes a launcher started.

    Attributes:
        rank: this process's index among all processes, 0 .. world_size - 1.
        world_size: how many processes run the command (1: no launcher, or a launcher with one).
        local_rank: its index among the processes on this machine (which GPU it takes).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that prints what is printed once (rank 0)."""
        return self.rank == 0

    @property
    def label(self) -> str:
        """``"[process 1/2] "`` before a line a process prints on its own; empty for one process."""
        return f"[process {self.rank}/{self.world_size}] " if self.distributed else ""


def launched_processes(environ: dict[str, str] | None = None) -> Processes:
    """This process's place, from the launcher's environment variables (``os.environ`` by default).

    Raises:
        UsageError: ``WORLD_SIZE`` is above 1 but ``RANK`` is missing, or a value is not a whole
            number in range (a hand-set environment, not one a launcher wrote).
    """
    environ = os.environ if environ is None else environ

    def whole(name: str, default: int | None) -> int:
        text = environ.get(name)
        if text is None or text.strip() == "":
            if default is None:
                raise UsageError(
                    f"WORLD_SIZE={environ.get('WORLD_SIZE')} is set but {name} is not: start several "
                    "processes with `torchrun` or `accelerate launch`, which set both, or unset "
                    "WORLD_SIZE to run one process."
                )
            return default
        try:
            return int(text)
        except ValueError:
            raise UsageError(
                f"environment variable {name}={text!r}: expected a whole number (as torchrun and "
                "accelerate launch set it); unset it to run one process."
            ) from None

    world_size = whole("WORLD_SIZE", 1)
    if world_size < 1:
        raise UsageError(f"environment variable WORLD_SIZE={world_size}: expected 1 or more processes.")
    if world_size == 1:
        return Processes()
    rank = whole("RANK", None)
    local_rank = whole("LOCAL_RANK", rank)
    if not 0 <= rank < world_size or local_rank < 0:
        raise UsageError(
            f"environment variables RANK={rank}, LOCAL_RANK={local_rank}: expected 0 <= RANK < "
            f"WORLD_SIZE={world_size} and LOCAL_RANK >= 0; start the processes with torchrun or "
            "accelerate launch."
        )
    return Processes(rank=rank, world_size=world_size, local_rank=local_rank)


@contextlib.contextmanager
def process_group(processes: Processes) -> Iterator[Processes]:
    """Join the other processes for the duration of the block; for one process, do nothing.

    The backend is gloo on CPUs and GPUs alike: the processes exchange only small Python objects
    (never tensors), and gloo needs no CUDA device set up per process for that.
    """
    if not processes.distributed:
        yield processes
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise UsageError(
            "WORLD_SIZE > 1 asks for several processes, but this torch build has no torch.distributed; "
            "run one process (unset WORLD_SIZE) or install a torch build with it."
        )
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        yield processes
    finally:
        if owned:
            dist.destroy_process_group()


def all_gather(value, processes: Processes) -> list:
    """``value`` from every process, in rank order, in every process (``[value]`` for one process).

    Every process must call it, the same number of times: it waits for all of them.
    """
    if not processes.distributed:
        return [value]
    import torch.distributed as dist

    gathered: list = [None] * processes.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def balance(weights: Sequence[float], parts: int) -> list[list[int]]:
    """Share items out over ``parts`` so each part's total weight is about the same.

    Greedy, longest first: items in order of decreasing weight (ties: lower index first) each go
    to the part with the least weight so far (ties: fewer items, then the lower part). The result
    depends only on ``weights`` and ``parts``, so every process computes the same shares.

    Args:
        weights: one number >= 0 per item (a video's duration in seconds).
        parts: how many shares (processes), >= 1.

    Returns:
        for each part, the indices of its items in increasing order (a part may be empty).
    """
    if parts < 1:
        raise ValueError(f"balance: parts={parts}; expected 1 or more.")
    shares: list[list[int]] = [[] for _ in range(parts)]
    loads = [0.0] * parts
    for index in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        part = min(range(parts), key=lambda p: (loads[p], len(shares[p]), p))
        shares[part].append(index)
        loads[part] += weights[index]
    return [sorted(share) for share in shares]


def local_device(device: str, processes: Processes) -> str:
    """The device a process uses for ``--device``: with several processes, ``auto`` means this
    process's own GPU (``cuda:<LOCAL_RANK>``) where there are GPUs, else the CPU; a named device is
    kept as given (one process: everything is kept as given)."""
    if device != "auto" or not processes.distributed:
        return device
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    count = torch.cuda.device_count()
    if processes.local_rank >= count:
        raise UsageError(
            f"process {processes.rank} is number {processes.local_rank} on its machine, which has "
            f"{count} GPU(s): start at most {count} processes per machine (--nproc_per_node, or "
            "accelerate's num_processes), or pass --device cpu."
        )
    return f"cuda:{processes.local_rank}"
