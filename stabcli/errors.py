"""The one user-facing exception type, and its variant that names a setting.

Library code raises :class:`StabcliError` for anything a user can fix (bad input, a missing
file, an incompatible run directory); the CLI prints its message as one line on stderr
and exits with :attr:`StabcliError.exit_code`, never with a traceback.

A library does not know how its settings were given (a CLI flag, a preset key, a keyword
argument), so an error about a setting is a :class:`SettingError`: its message names the
setting (``slope_at``) and the CLI renders it with its own flag (``--slope-at``).
"""

from __future__ import annotations

import string
from collections.abc import Mapping


class StabcliError(Exception):
    """An error caused by input the user can correct; its message is one line."""

    exit_code = 2


class Interrupted(StabcliError):
    """The user stopped a long command (Ctrl-C); what was finished is kept."""

    exit_code = 130


class _Names(dict[str, object]):
    """Format mapping: given values first, then a setting's display name, else the name."""

    def __init__(self, values: Mapping[str, object], names: Mapping[str, str]) -> None:
        super().__init__(values)
        self.names = names

    def __missing__(self, key: str) -> str:
        return self.names.get(key, key)


class SettingError(StabcliError):
    """A bad value of one or more named settings.

    ``template`` names settings in braces and takes values as keywords, which are inserted
    verbatim (so a user's text with braces in it is safe)::

        SettingError("{slope_at} must be at most {hi}, got {got}", hi=54, got=58)

    ``str(err)`` names the settings as they are (``slope_at must be ...``);
    :meth:`render` names them as a front end calls them (``--slope-at must be ...``).
    """

    def __init__(self, template: str, **values: object) -> None:
        self.template = template
        self.values = values
        super().__init__(self.render())

    @property
    def settings(self) -> tuple[str, ...]:
        """The setting names the message refers to, in order."""
        fields = (field for _, field, _, _ in string.Formatter().parse(self.template))
        return tuple(f for f in fields if f and f not in self.values)

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each setting shown as ``names[setting]`` (default: itself)."""
        return self.template.format_map(_Names(self.values, names or {}))
