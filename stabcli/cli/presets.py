"""``stabcli presets``: the shipped probe presets."""

from __future__ import annotations


def presets() -> None:
    """List the shipped presets (any --preset also takes a path to your own TOML file)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from stabcli.probe import list_presets

    table = Table(header_style="bold")
    table.add_column("preset")
    table.add_column("description")
    for info in list_presets():
        table.add_row(escape(info.name), escape(info.description))
    Console().print(table)
