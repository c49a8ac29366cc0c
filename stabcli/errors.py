"""The one user-facing exception type.

Library code raises :class:`StabcliError` for anything a user can fix (bad input, a missing
file, an incompatible run directory); the CLI prints its message as one line on stderr
and exits with :attr:`StabcliError.exit_code`, never with a traceback.
"""


class StabcliError(Exception):
    """An error caused by input the user can correct; its message is one line."""

    exit_code = 2


class Interrupted(StabcliError):
    """The user stopped a long command (Ctrl-C); what was finished is kept."""

    exit_code = 130
