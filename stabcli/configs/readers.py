"""Reading config files (JSON, YAML, TOML, nanoGPT-style Python) into nested data.

Nothing is executed: Python configs are parsed with :mod:`ast` and only top-level
``name = literal`` assignments (and those in top-level class bodies, as in dataclass
configs) are kept. YAML is read with PyYAML's safe loader, imported only for YAML files.
Every problem is a one-line :class:`StabcliError` naming the file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from stabcli.configs.search import KeyedDict
from stabcli.errors import StabcliError

JSON_SUFFIXES = frozenset({".json"})
YAML_SUFFIXES = frozenset({".yaml", ".yml"})
TOML_SUFFIXES = frozenset({".toml"})
PYTHON_SUFFIXES = frozenset({".py"})
CONFIG_SUFFIXES = JSON_SUFFIXES | YAML_SUFFIXES | TOML_SUFFIXES | PYTHON_SUFFIXES


def read_text(path: Path, file: str) -> str:
    """The file's text as UTF-8, or a one-line error (missing, a directory, not text)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StabcliError(f"{file}: not UTF-8 text (nor a PyTorch checkpoint)") from None
    except OSError as err:
        raise StabcliError(f"{file}: cannot read: {err.strerror or err}") from None


def read_config(path: Path, file: str) -> object:
    """The parsed content of a config file, its format chosen by suffix.

    An unknown suffix is tried as JSON, then TOML, then YAML (the first that parses).
    """
    text = read_text(path, file)
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return parse_json(text, file)
    if suffix in YAML_SUFFIXES:
        return parse_yaml(text, file)
    if suffix in TOML_SUFFIXES:
        return parse_toml(text, file)
    if suffix in PYTHON_SUFFIXES:
        return parse_python(text, file)
    for parse in (parse_json, parse_toml):
        try:
            return parse(text, file)
        except StabcliError:
            continue
    try:
        return parse_yaml(text, file)
    except StabcliError:
        raise StabcliError(
            f"{file}: not a JSON, TOML or YAML config (nor a PyTorch checkpoint)"
        ) from None


def parse_json(text: str, file: str) -> object:
    """JSON, with repeated keys remembered (:class:`KeyedDict`)."""
    import json

    try:
        return json.loads(text, object_pairs_hook=KeyedDict.from_pairs)
    except json.JSONDecodeError as err:
        raise StabcliError(f"{file}: not valid JSON: {err}") from None


def parse_toml(text: str, file: str) -> object:
    """TOML (its parser refuses repeated keys itself)."""
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise StabcliError(f"{file}: not valid TOML: {err}") from None


def parse_yaml(text: str, file: str) -> object:
    """YAML by PyYAML's safe loader, with repeated keys remembered (:class:`KeyedDict`)."""
    try:
        import yaml
    except ImportError:
        raise StabcliError(
            f"{file}: reading YAML needs PyYAML (pip install pyyaml); JSON and TOML need nothing"
        ) from None
    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: no objects
    except (yaml.YAMLError, TypeError, ValueError, RecursionError) as err:
        raise StabcliError(f"{file}: not valid YAML: {_one_line(err)}") from None


@cache
def _yaml_loader() -> type:
    """PyYAML's SafeLoader building :class:`KeyedDict` mappings (made once, on first use)."""
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader whose mappings remember keys written twice."""

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> KeyedDict:
        # Merge keys (<<: *defaults) are put first by flatten_mapping; a key written in the
        # mapping itself may override them, which is not a repeat. Only the mapping's own
        # keys, the last `own` pairs after flattening, are checked for repeats.
        own = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)
        pairs = loader.construct_pairs(node, deep=True)
        out = KeyedDict()
        for i, (key, value) in enumerate(pairs):
            out.put(key, value, track=i >= len(pairs) - own)
        return out

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def parse_python(text: str, file: str) -> object:
    """Literal assignments of a Python config, without running it.

    ``beta1 = 0.9`` at top level becomes ``{"beta1": 0.9}``; the same inside a top-level
    ``class TrainConfig:`` body becomes ``{"TrainConfig": {"beta1": 0.9}}``. A value that
    is not a literal is kept as its source text, so a beta set by an expression is
    reported as not a number rather than silently skipped. A name assigned twice keeps its
    last value, as running the file would.
    """
    import ast

    try:
        tree = ast.parse(text, filename=file)
    except SyntaxError as err:
        raise StabcliError(f"{file}: not valid Python: {err.msg} (line {err.lineno})") from None

    def assignments(body: list[ast.stmt]) -> dict[str, object]:
        out: dict[str, object] = {}
        for stmt in body:
            if isinstance(stmt, ast.ClassDef):
                out[stmt.name] = assignments(stmt.body)
                continue
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            else:
                continue
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    out[target.id] = ast.get_source_segment(text, value) or ast.unparse(value)
        return out

    return assignments(tree.body)


def _one_line(err: Exception) -> str:
    """An exception's message on one line (PyYAML's span several, with a caret)."""
    return " ".join(str(err).split())
