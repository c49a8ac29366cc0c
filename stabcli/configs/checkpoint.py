"""Reading a PyTorch checkpoint safely: tensors and plain containers only, never objects.

``torch.load(path, weights_only=True, map_location="cpu")`` restores tensors, numbers,
strings and containers, and refuses any other pickled class; stabcli never falls back to
full unpickling (which can run arbitrary code). torch is imported only here, only when a
checkpoint is read.
"""

from __future__ import annotations

import re
from pathlib import Path

from stabcli.errors import StabcliError

CHECKPOINT_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".bin"})
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
PICKLE_PROTO = 0x80  # first byte of a pickle (torch.save's legacy format starts with one)
REFUSED = (
    "needs unpickling arbitrary objects, which stabcli never does; "
    "save the optimizer state_dict only"
)


def looks_like_checkpoint(path: Path) -> bool:
    """True for a checkpoint suffix, or a file that starts like ``torch.save``'s output."""
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return False  # the config reader says why the file cannot be read
    return head == ZIP_MAGIC or head[:1] == bytes([PICKLE_PROTO])


def read_checkpoint(path: Path, file: str) -> object:
    """The checkpoint's content, loaded with ``weights_only=True`` on the CPU.

    A zip-format checkpoint is memory-mapped, so that model weights are not read from
    disk just to find the optimizer's betas.
    """
    if not path.is_file():
        raise StabcliError(f"{file}: no such file" if not path.exists() else f"{file}: not a file")
    try:
        import torch
    except ImportError:
        raise StabcliError(f"{file}: reading a PyTorch checkpoint needs torch") from None
    import pickle
    import zipfile

    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as err:
        raise StabcliError(f"{file}: cannot read: {err.strerror or err}") from None
    if head != ZIP_MAGIC and head[:1] != bytes([PICKLE_PROTO]):
        # torch.load would call any other bytes "weights only load failed", which reads
        # as a refusal to unpickle objects: say what the file is not instead
        raise StabcliError(
            f"{file}: not a PyTorch checkpoint (torch.save writes a zip archive or a pickle)"
        )
    try:
        return torch.load(
            path, weights_only=True, map_location="cpu", mmap=zipfile.is_zipfile(path)
        )
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise StabcliError(
                f"{file}: not a readable PyTorch checkpoint: {_first(err)}"
            ) from None
        held = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" (it holds {held.group(1)})" if held else ""
        raise StabcliError(f"{file}: {REFUSED}{what}") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, ValueError, ... here
        raise StabcliError(f"{file}: not a readable checkpoint: {_first(err)}") from None


def _first(err: BaseException) -> str:
    """The first sentence of an exception's first line, or its type when it has none
    (torch's zip reader follows its reason with a paragraph of generic advice)."""
    lines = str(err).strip().splitlines()
    if not lines:
        return type(err).__name__
    sentence, dot, _ = lines[0].partition(". ")
    return sentence + dot.strip()
