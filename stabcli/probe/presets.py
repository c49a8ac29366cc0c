"""Loading presets: the shipped TOML files, or a path to a user's own.

A preset file has a top-level ``description`` and the sections ``[model]``, ``[data]`` and
``[train]`` whose keys are the fields of :mod:`stabcli.probe.config`; omitted keys take the
dataclass defaults. Shipped presets live in the wheel's ``stabcli/_presets`` directory
(pyproject force-includes the repository's ``presets/``), or, in a source checkout, in
``presets/`` next to the package.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from stabcli.errors import StabcliError
from stabcli.probe.config import (
    SECTIONS,
    DataConfig,
    ModelConfig,
    Preset,
    TrainConfig,
    check_type,
    validate,
)

__all__ = [
    "DataConfig",
    "ModelConfig",
    "Preset",
    "PresetInfo",
    "TrainConfig",
    "list_presets",
    "load_preset",
    "preset_dirs",
]


@dataclass(frozen=True)
class PresetInfo:
    """One shipped preset, as `stabcli presets` lists it."""

    name: str  # what --preset takes
    description: str  # one line
    path: Path  # the TOML file


def preset_dirs() -> list[Path]:
    """Directories searched for shipped presets, in order (installed wheel, then checkout)."""
    package = Path(__file__).resolve().parents[1]  # .../stabcli
    candidates = [package / "_presets", package.parent / "presets"]
    return [d for d in candidates if d.is_dir()]


def _shipped() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in preset_dirs():
        for path in sorted(directory.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def list_presets() -> list[PresetInfo]:
    """The shipped presets, sorted by name."""
    infos = []
    for name, path in sorted(_shipped().items()):
        infos.append(PresetInfo(name=name, description=_read(path).description, path=path))
    return infos


def load_preset(name_or_path: str) -> Preset:
    """A shipped preset by name, or a user's TOML file by path; StabcliError on problems."""
    shipped = _shipped()
    if name_or_path in shipped:
        return _read(shipped[name_or_path])
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            why = "is not a file" if path.exists() else "does not exist"
            raise StabcliError(f"preset file {path} {why}")
        return _read(path)
    known = ", ".join(shipped) or "(none found)"
    raise StabcliError(f"unknown preset {name_or_path!r}; known presets: {known}")


def _read(path: Path) -> Preset:
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise StabcliError(f"cannot read preset {path}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise StabcliError(f"preset {path} is not valid TOML: {err}") from None
    preset = preset_from_table(table, name=path.stem, where=str(path))
    if not preset.model.python_path:
        return preset
    # a factory's import directories are relative to the preset file, wherever it is run from
    base = path.resolve().parent
    absolute = tuple(str((base / p).expanduser().resolve()) for p in preset.model.python_path)
    return dataclasses.replace(
        preset, model=dataclasses.replace(preset.model, python_path=absolute)
    )


def preset_from_table(table: dict, *, name: str, where: str) -> Preset:
    """Build and validate a Preset from a parsed TOML table; errors name the bad key."""
    allowed_top = {"description", *SECTIONS}
    for key in table:
        if key not in allowed_top:
            raise StabcliError(f"{where}: unknown key {key!r}; allowed: {sorted(allowed_top)}")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise StabcliError(f"{where}: description must be a string")
    sections: dict[str, ModelConfig | DataConfig | TrainConfig] = {}
    for section, cls in SECTIONS.items():
        raw = table.get(section, {})
        if not isinstance(raw, dict):
            raise StabcliError(f"{where}: [{section}] must be a table")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {}
        for key, value in raw.items():
            if key not in names:
                raise StabcliError(
                    f"{where}: unknown key {section}.{key}; known: {', '.join(sorted(names))}"
                )
            values[key] = check_type(cls, key, value, f"{where}: {section}.{key}")
        sections[section] = cls(**values)
    preset = Preset(name=name, description=description.strip(), **sections)  # type: ignore[arg-type]
    validate(preset)
    return preset
