"""Finding Adam's (beta1, beta2) anywhere in nested data: mappings and lists as parsed.

The data is whatever a config file or checkpoint holds (dicts, lists, numbers, tensors as
leaves). Three spellings are recognised in any mapping, at any depth:

- ``betas: [beta1, beta2]``: PyTorch's optimizer argument, so also an optimizer
  ``state_dict``'s ``param_groups``, Lightning's ``optimizer_states`` and configs that
  keep the optimizer's keyword arguments (``optimizer.betas``, ``optim.kwargs.betas``);
- ``beta1`` and ``beta2`` as siblings: nanoGPT's ``train.py`` and its configs;
- ``adam_beta1`` and ``adam_beta2``: Hugging Face ``TrainingArguments``;
- ``beta_1`` and ``beta_2``: Keras' ``Adam`` config.

A half pair, a non-number, an out-of-range value, or two spellings in one mapping that
disagree is an error naming the file and the key path; agreeing spellings and the same
pair at several places are each reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stabcli.configs.found import FoundBetas
from stabcli.errors import StabcliError
from stabcli.theory.domain import HyperPoint

LIST_KEY = "betas"  # PyTorch: betas=(beta1, beta2)
PAIR_KEYS = (("beta1", "beta2"), ("adam_beta1", "adam_beta2"), ("beta_1", "beta_2"))
BETA_KEYS = frozenset({LIST_KEY, *(key for pair in PAIR_KEYS for key in pair)})
#: Containers visited at most: a guard against YAML aliases nested into a "billion laughs".
MAX_NODES = 1_000_000


class KeyedDict(dict[str, object]):
    """A mapping as parsed, remembering each key that the file wrote more than once.

    JSON and YAML parsers keep the last value of a repeated key silently; readers build
    this instead so that ``beta1: 0.9`` followed by ``beta1: 0.8`` is an error, not 0.8.
    """

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[object]] = {}  # key: every value written, in order
        self._tracked: set[str] = set()  # keys set with track=True so far

    def put(self, key: str, value: object, track: bool = True) -> None:
        """Set ``key``; with ``track``, a key already set with ``track`` is a repeat.

        Untracked values (YAML merge keys, which come first) may be overridden freely.
        """
        if track:
            if key in self._tracked:
                self.repeated.setdefault(key, [self[key]]).append(value)
            self._tracked.add(key)
        self[key] = value

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, object]]) -> KeyedDict:
        """A mapping from (key, value) pairs in file order (``json``'s pairs hook)."""
        out = cls()
        for key, value in pairs:
            out.put(key, value)
        return out


@dataclass(frozen=True)
class _Spelling:
    """One spelling of the pair found in one mapping, before range checks."""

    key: str  # key path shown to users: "optimizer.betas", "adam_beta1/adam_beta2"
    beta1: float
    beta2: float


def find_betas(data: object, file: str) -> list[FoundBetas]:
    """Every (beta1, beta2) in ``data``, in document order (depth first), each validated.

    ``file`` names the file in sources and errors. An empty list means none was found.
    """
    found: list[FoundBetas] = []
    # (node, key path, ids of the containers above it): the ids stop reference cycles.
    stack: list[tuple[object, str, frozenset[int]]] = [(data, "", frozenset())]
    visited = 0
    while stack:
        node, path, above = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            raise StabcliError(f"{file}: more than {MAX_NODES:,} nested entries to search")
        inside = above | {id(node)}
        children: list[tuple[object, str]] = []
        if isinstance(node, dict):
            found.extend(_in_mapping(node, path, file))
            children = [(v, _key_path(path, k)) for k, v in node.items() if k not in BETA_KEYS]
        elif isinstance(node, list | tuple):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(node)]
        for child, child_path in reversed(children):  # reversed: popped in document order
            if isinstance(child, dict | list | tuple) and id(child) not in inside:
                stack.append((child, child_path, inside))
    return found


def _in_mapping(node: dict[object, object], path: str, file: str) -> list[FoundBetas]:
    """The spellings of the pair that ``node`` itself holds (not its children)."""
    for key, values in getattr(node, "repeated", {}).items():
        distinct = list(dict.fromkeys(repr(v) for v in values))
        if key in BETA_KEYS and len(distinct) > 1:
            raise StabcliError(
                f"{file}: {_key_path(path, key)}: written {len(values)} times with different "
                f"values ({', '.join(distinct)})"
            )
    spellings: list[_Spelling] = []
    if LIST_KEY in node:
        key = _key_path(path, LIST_KEY)
        beta1, beta2 = _pair(node[LIST_KEY], file, key)
        spellings.append(_Spelling(key, beta1, beta2))
    for key1, key2 in PAIR_KEYS:
        if (key1 in node) != (key2 in node):
            have, lack = (key1, key2) if key1 in node else (key2, key1)
            raise StabcliError(f"{file}: {_key_path(path, have)}: {have} without {lack} beside it")
        if key1 in node:
            key = _key_path(path, f"{key1}/{key2}")
            beta1 = _number(node[key1], file, _key_path(path, key1))
            beta2 = _number(node[key2], file, _key_path(path, key2))
            spellings.append(_Spelling(key, beta1, beta2))
    if len({(s.beta1, s.beta2) for s in spellings}) > 1:
        shown = " and ".join(
            f"{s.key.rsplit('.', 1)[-1]} ({s.beta1:g}, {s.beta2:g})" for s in spellings
        )
        raise StabcliError(f"{file}: {path or 'top level'}: {shown} disagree")
    return [_validated(s, file) for s in spellings]


def _validated(spelling: _Spelling, file: str) -> FoundBetas:
    """``spelling`` as a :class:`FoundBetas`, or an error naming where it is out of range."""
    try:
        HyperPoint.from_torch(spelling.beta1, spelling.beta2)
    except StabcliError as err:
        raise StabcliError(f"{file}: {spelling.key}: {err}") from None
    return FoundBetas(file, spelling.key, spelling.beta1, spelling.beta2)


def _pair(value: object, file: str, key: str) -> tuple[float, float]:
    """``[beta1, beta2]`` (a list, tuple or 2-element tensor) as two floats."""
    items = value.tolist() if _has_tolist(value) else value  # type: ignore[attr-defined]
    if not isinstance(items, list | tuple) or len(items) != 2:
        raise StabcliError(f"{file}: {key}: expected [beta1, beta2], got {_shown(value)}")
    return _number(items[0], file, f"{key}[0]"), _number(items[1], file, f"{key}[1]")


def _number(value: object, file: str, key: str) -> float:
    """``value`` as a float: an int or float, or a one-element tensor; else an error."""
    if _has_tolist(value):  # a tensor or numpy scalar from a checkpoint
        value = value.tolist()  # type: ignore[attr-defined]
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int past float's range: out of range all the same
            return float("inf")
    raise StabcliError(f"{file}: {key}: not a number, got {_shown(value)}")


def _last(key: str) -> str:
    """The last part of a key path: "betas" of "optimizer.betas"."""
    return key.rsplit(".", 1)[-1]


def _has_tolist(value: object) -> bool:
    return callable(getattr(value, "tolist", None))


def _shown(value: object) -> str:
    """A short one-line repr of a value in an error message."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 40 else text[:37] + "..."


def _key_path(path: str, key: object) -> str:
    """``path`` extended by a mapping key: ``a.b``, or ``a["odd key"]`` when it must be."""
    text = str(key)
    plain = text.replace("_", "a").replace("-", "a").replace("/", "a").isalnum()
    if not plain:
        return f"{path}[{text!r}]"
    return f"{path}.{text}" if path else text
