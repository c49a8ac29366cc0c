"""Finding, identifying and calling a user's model factory (``[model] factory``).

A factory is named ``"package.module:function"``. It is imported from the preset's
``python_path`` directories, then the working directory, then the usual ``sys.path``; it is
identified by content (the sha256 of its module's source, its name and its keyword
arguments), and called as ``function(seed=<train.seed>, **kwargs)``. Everything it gets
wrong is a one-line :class:`~stabcli.errors.StabcliError` naming it
(``factory 'mypkg.models:build' returned 2 values; expected (model, batches, loss_fn)``).
The contract itself is documented in :mod:`stabcli.probe.factory`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from stabcli.errors import StabcliError
from stabcli.probe.config import Preset

#: sha256 of each module's source when this process imported it, so a module edited since
#: is imported afresh (its content, not a stale copy, is what a run's identity names).
_IMPORTED: dict[str, str] = {}


def one_line(err: BaseException) -> str:
    """``Type: first line of the message``: what a user's exception says, on one line."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def factory_error(name: str, message: str) -> StabcliError:
    """A one-line error about factory ``name``: ``message`` follows its name (after a space,
    or directly when it starts with a colon)."""
    sep = "" if message.startswith(":") else " "
    return StabcliError(" ".join(f"factory {name!r}{sep}{message}".split()))


@dataclass(frozen=True)
class FactoryRef:
    """A factory, imported and identified by content."""

    name: str  # "package.module:function", as the preset names it
    function: Callable[..., Any]
    source_sha256: str  # of the module's source file (or the function's source)
    sha256: str  # of the source, the name and the keyword arguments: the run's "data" identity


@dataclass(frozen=True)
class FactoryParts:
    """What a factory returned, checked: ``(model, batches, loss_fn)``."""

    model: torch.nn.Module
    batches: Callable[..., Any]  # batches(step) and, with evaluation, batches(k, split="test")
    loss_fn: Callable[[Any, Any], torch.Tensor]


def search_path(preset: Preset) -> list[str]:
    """Directories a factory is imported from, first to last: ``model.python_path`` (made
    absolute by the preset loader, else taken from the working directory), then the
    working directory."""
    dirs = [str(Path(p).expanduser().resolve()) for p in preset.model.python_path]
    return [*dirs, os.getcwd()]


@contextlib.contextmanager
def importable_from(dirs: list[str]) -> Iterator[None]:
    """``dirs`` at the front of ``sys.path`` while importing and calling a factory."""
    before = list(sys.path)
    sys.path[:0] = [d for d in dirs if d not in sys.path]
    try:
        yield
    finally:
        sys.path[:] = before


def _source_sha256(name: str, module: ModuleType, function: Callable[..., Any]) -> str:
    file = getattr(module, "__file__", None)
    try:
        if file is not None and Path(file).suffix == ".py":
            return hashlib.sha256(Path(file).read_bytes()).hexdigest()
        return hashlib.sha256(inspect.getsource(function).encode("utf-8")).hexdigest()
    except (OSError, TypeError) as err:
        raise factory_error(
            name, f"cannot be identified: its source cannot be read ({err})"
        ) from None


def _import(name: str, module_name: str) -> ModuleType:
    importlib.invalidate_caches()  # files written since this process started are found
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            where = "the working directory, model.python_path or the installed packages"
            raise factory_error(
                name, f"cannot be imported: no module named {err.name!r} in {where}"
            ) from None
        raise factory_error(name, f"cannot be imported: {one_line(err)}") from None
    except Exception as err:  # the user's module raised while it was imported
        raise factory_error(name, f"cannot be imported: {one_line(err)}") from None
    file = getattr(module, "__file__", None)
    if file is not None and Path(file).suffix == ".py" and Path(file).is_file():
        digest = hashlib.sha256(Path(file).read_bytes()).hexdigest()
        if _IMPORTED.get(module_name, digest) != digest:  # edited since: use the new code
            try:
                module = importlib.reload(module)
            except Exception as err:
                raise factory_error(name, f"cannot be imported: {one_line(err)}") from None
        _IMPORTED[module_name] = digest
    return module


def find_factory(preset: Preset) -> FactoryRef:
    """Import ``preset.model.factory`` and identify it by content."""
    name = preset.model.factory
    if name is None:
        raise StabcliError(f"{preset.name}: model.kind = 'factory' needs model.factory")
    module_name, _, function_name = name.partition(":")
    with importable_from(search_path(preset)):
        module = _import(name, module_name)
    function = getattr(module, function_name, None)
    if function is None:
        raise factory_error(name, f"not found: module {module_name!r} has no {function_name!r}")
    if not callable(function):
        raise factory_error(name, f"is a {type(function).__name__}, not a function")
    source = _source_sha256(name, module, function)
    try:
        kwargs = json.dumps(preset.model.kwargs, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise factory_error(name, f"model.kwargs cannot be identified: {err}") from None
    identity = json.dumps({"factory": name, "source": source, "kwargs": kwargs}, sort_keys=True)
    return FactoryRef(name, function, source, hashlib.sha256(identity.encode()).hexdigest())


def _check_signature(ref: FactoryRef, kwargs: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(ref.function)
    except (TypeError, ValueError):  # a builtin or C function: let the call tell
        return
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        message = f"cannot take the keyword arguments {sorted(kwargs)}: {err}"
        raise factory_error(ref.name, message) from None


def call_factory(preset: Preset, ref: FactoryRef) -> FactoryParts:
    """Call the factory with ``seed`` and ``model.kwargs`` and check what it returns.

    Torch's global generator is seeded with the preset's seed for the call (and restored
    afterwards), so the module's initial weights depend on the seed alone even when the
    factory does not seed itself.
    """
    kwargs = {"seed": preset.train.seed, **preset.model.kwargs}
    _check_signature(ref, kwargs)
    with importable_from(search_path(preset)), torch.random.fork_rng(devices=[]):
        torch.manual_seed(preset.train.seed)
        try:
            returned = ref.function(**kwargs)
        except Exception as err:
            raise factory_error(ref.name, f"raised {one_line(err)}") from None
    expected = "expected (model, batches, loss_fn)"
    if not isinstance(returned, tuple | list):
        raise factory_error(ref.name, f"returned a {type(returned).__name__}; {expected}")
    if len(returned) != 3:
        raise factory_error(ref.name, f"returned {len(returned)} values; {expected}")
    model, batches, loss_fn = returned
    if not isinstance(model, torch.nn.Module):
        raise factory_error(
            ref.name, f"returned a {type(model).__name__} as model; expected a torch.nn.Module"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise factory_error(ref.name, "returned a model without trainable parameters")
    for what, value in (("batches", batches), ("loss_fn", loss_fn)):
        if not callable(value):
            raise factory_error(
                ref.name, f"returned a {type(value).__name__} as {what}; expected a function"
            )
    return FactoryParts(model, batches, loss_fn)
