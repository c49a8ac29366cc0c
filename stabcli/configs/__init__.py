"""Finding Adam's betas in the files where people keep them (configs and checkpoints).

``betas_in_file(path)`` returns every (beta1, beta2) in a JSON, YAML, TOML or nanoGPT-style
Python config, or in a PyTorch checkpoint holding an optimizer ``state_dict``, each as a
:class:`FoundBetas` naming where it was found. Nothing here prints; every problem is a
one-line :class:`~stabcli.errors.StabcliError` naming the file and the key path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from stabcli.configs.found import FoundBetas
from stabcli.configs.search import find_betas
from stabcli.errors import StabcliError

__all__ = ["FoundBetas", "betas_in_file", "betas_in_files", "find_betas"]

LOOKED_FOR = "betas: [beta1, beta2], beta1/beta2, adam_beta1/adam_beta2 or beta_1/beta_2"


def betas_in_file(path: str | Path) -> list[FoundBetas]:
    """Every (beta1, beta2) in the file at ``path``, in document order; at least one.

    The format is chosen by suffix (.json, .yaml/.yml, .toml, .py; .pt/.pth/.ckpt/.bin are
    checkpoints); any other file is read as a checkpoint when it starts like one, else as
    JSON, TOML or YAML, whichever parses.
    """
    from stabcli.configs.checkpoint import looks_like_checkpoint, read_checkpoint
    from stabcli.configs.readers import read_config

    file = str(path)
    path = Path(path)
    if path.is_dir():
        raise StabcliError(f"{file}: is a directory, not a config or checkpoint file")
    data = read_checkpoint(path, file) if looks_like_checkpoint(path) else read_config(path, file)
    found = find_betas(data, file)
    if not found:
        raise StabcliError(f"{file}: no Adam betas found (looked for {LOOKED_FOR} at any depth)")
    return found


def betas_in_files(paths: Iterable[str | Path]) -> list[FoundBetas]:
    """Every (beta1, beta2) in each file in turn (files in the order given)."""
    return [found for path in paths for found in betas_in_file(path)]
