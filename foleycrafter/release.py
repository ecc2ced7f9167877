"""Reading the released checkpoint files safely and strictly.

The released FoleyCrafter and Auffusion files are torch pickles. They hold only tensors and plain
containers, so they are read with ``torch.load(weights_only=True)``; a file that needs anything
more is refused. Every state dict is then checked key by key against the model it is loaded into:
missing keys, unexpected keys and shape mismatches are errors that name the file and the first
offending keys (never a silent ``strict=False``).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: unreadable, unsafe, or not matching the model."""


def load_torch_pickle(path: str | os.PathLike) -> object:
    """Load a torch pickle with ``weights_only=True`` (tensors and plain containers only).

    Raises:
        CheckpointError: the file is missing, is not a torch checkpoint, or needs arbitrary code
            to unpickle (which is refused for safety).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"Refusing to load {path}: it needs more than tensors and plain containers to unpickle, "
            f"which could run arbitrary code ({_first_line(error)}). Only load checkpoints from sources "
            f"you trust; if this is a genuine release file, convert it to safetensors with trusted tools."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"Cannot read {path} as a torch checkpoint: {_first_line(error)}") from None


def unwrap_state_dict(obj: object, source: str | os.PathLike, wrapper_keys=("state_dict", "model")) -> dict:
    """Return the tensor dict inside a checkpoint, removing a ``{"state_dict": ...}`` wrapper and any
    ``module.`` prefix left by ``DistributedDataParallel``."""
    if isinstance(obj, Mapping):
        for key in wrapper_keys:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source} does not contain a state dict (a mapping of names to tensors).")
    state_dict = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{source}: entry {key!r} is a {type(value).__name__}, expected a tensor in a state dict."
            )
        state_dict[strip_prefix(key, "module.")] = value
    return state_dict


def strip_prefix(key: str, prefix: str) -> str:
    while key.startswith(prefix):
        key = key[len(prefix) :]
    return key


def layout_problems(
    have: Mapping[str, tuple[int, ...]], want: Mapping[str, tuple[int, ...]], max_listed: int = 5
) -> list[str]:
    """What differs between two key -> shape layouts: missing keys, unexpected keys, shape
    mismatches (file vs model), each with its first ``max_listed`` keys. Empty when they agree."""
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    mismatched = [
        f"{k}: file {tuple(have[k])} vs model {tuple(want[k])}"
        for k in want
        if k in have and tuple(have[k]) != tuple(want[k])
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:max_listed])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:max_listed])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (first: {'; '.join(mismatched[:max_listed])})")
    return problems


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor] | torch.nn.Module,
    source: str | os.PathLike,
    what: str,
    max_listed: int = 5,
) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly the keys and shapes of
    ``expected`` (a module or its state dict).

    Args:
        source: the file the state dict came from (named in the message).
        what: what the weights are for, e.g. ``"temporal controller"`` (named in the message).
    """
    if isinstance(expected, torch.nn.Module):
        expected = expected.state_dict()
    problems = layout_problems(
        {k: tuple(v.shape) for k, v in state_dict.items()},
        {k: tuple(v.shape) for k, v in expected.items()},
        max_listed,
    )
    if problems:
        raise CheckpointError(
            f"{source} does not match the {what}: " + "; ".join(problems) + ". "
            "Check that the file belongs to this model and that its configuration matches."
        )


def load_checked(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source, what: str) -> None:
    """Check ``state_dict`` against ``module`` (see :func:`check_state_dict`) and load it strictly."""
    check_state_dict(state_dict, module, source, what)
    module.load_state_dict(state_dict, strict=True)


def resolve_folder(
    name_or_path: str | os.PathLike, allow_patterns: list[str] | None = None, **hub_kwargs
) -> Path:
    """A local folder for ``name_or_path``: the path itself if it is a directory, else a snapshot
    of the Hugging Face Hub repository of that id (downloaded or taken from the local cache).

    Raises:
        FileNotFoundError: neither a local folder nor a reachable hub repository.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{name_or_path} is a file; expected a folder or a Hugging Face Hub id.")
    if str(name_or_path).count("/") != 1 or str(name_or_path).startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{name_or_path} is neither an existing folder nor a Hugging Face Hub id of the form 'owner/name'."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path), allow_patterns=allow_patterns, **hub_kwargs))
    except Exception as error:  # the hub client raises many kinds; the user needs one message
        raise FileNotFoundError(
            f"Could not find {name_or_path!r} locally or download it from the Hugging Face Hub "
            f"({type(error).__name__}: {_first_line(error)}). Pass a local folder, or check the id and "
            f"your network connection."
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
