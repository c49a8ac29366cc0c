"""An exclusive lock on a run directory, so that two sweeps never write one run at once.

The lock is ``fcntl.flock`` on a hidden file in the run directory. The operating system
releases it when its holder exits, however it exits (SIGKILL included), so a lock is never
left behind: a second sweep either gets it or is told who holds it. The holder writes its
pid, host, command and start time into the file, for that message and for the note that a
run left ``running`` by a process that has since died is being resumed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from stabcli.errors import StabcliError

LOCK_NAME = ".stabcli-lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a run directory's lock."""

    pid: int
    host: str
    command: str  # the command line, as a shell would read it
    started: str  # ISO time the lock was taken

    def describe(self) -> str:
        """ "pid 123 on host, since 2026-01-01T10:00:00+00:00: stabcli sweep ..." """
        return f"pid {self.pid} on {self.host}, since {self.started}: {self.command}"

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The holder written in a lock file, or None when it is empty or unreadable."""
        try:
            data = json.loads(text)
            return cls(
                int(data["pid"]), str(data["host"]), str(data["command"]), str(data["started"])
            )
        except (ValueError, TypeError, KeyError):
            return None


def _read_holder(fd: int) -> LockHolder | None:
    try:
        return LockHolder.parse(os.pread(fd, 65536, 0).decode("utf-8", "replace"))
    except OSError:
        return None


def this_command() -> str:
    """The running command line (program name without its directory)."""
    argv = sys.argv or ["python"]
    return shlex.join([Path(argv[0]).name, *argv[1:]])


class RunLock:
    """A held lock; :meth:`release` (or the end of the process) gives it back."""

    def __init__(self, path: Path, fd: int, previous: LockHolder | None) -> None:
        self.path = path
        self._fd: int | None = fd
        self.previous = previous  # who held it last (a process that has ended), if known

    @classmethod
    def acquire(cls, directory: Path, command: str | None = None) -> RunLock:
        """Take the lock of ``directory`` or raise a one-line error naming its holder."""
        path = directory / LOCK_NAME
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as err:
            raise StabcliError(
                f"cannot lock the run directory {directory}: {err.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = holder.describe() if holder else "a process that has not yet said who it is"
            raise StabcliError(
                f"{directory} is in use by another sweep ({who}); wait for it to finish or "
                "stop it, then re-run"
            ) from None
        except OSError as err:
            os.close(fd)
            raise StabcliError(
                f"cannot lock the run directory {directory}: {err.strerror}"
            ) from None
        previous = _read_holder(fd)
        holder = LockHolder(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=command or this_command(),
            started=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(asdict(holder)) + "\n").encode(), 0)
        except OSError as err:
            os.close(fd)
            raise StabcliError(f"cannot write {path}: {err.strerror}") from None
        return cls(path, fd, previous)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock back (idempotent). The file stays: removing it would race."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
