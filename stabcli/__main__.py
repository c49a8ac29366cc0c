"""``python -m stabcli``."""

from stabcli.cli import main

main()
