"""The command that starts a test script in several CPU processes (torchrun, gloo)."""

from __future__ import annotations

import sys


def torchrun(processes: int, port: int) -> list[str]:
    """``python -m torch.distributed.run`` for ``processes`` processes on this machine, rendezvous on
    ``port`` (a fixed port per test, so tests running side by side do not meet)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_port",
        str(port),
    ]
