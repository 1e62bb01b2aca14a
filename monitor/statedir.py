"""The daemon's state directory (``state.dir``) and the lock that makes it one daemon's.

Output spools, a file source's positions and (with ``checkpoint.store: directory``) the
checkpoints live there, and two daemons writing the same spool
would deliver each other's alerts twice or truncate each other's files. So the daemon
takes an exclusive ``flock`` on ``lock`` in the directory for as long as it runs; a second
daemon on the same directory refuses to start and names the one that holds it.

``flock`` rather than a pid file alone: the kernel drops the lock when its holder dies,
however it dies, so a crashed daemon never leaves a stale lock behind. The pid written
into the file is only there to say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "lock"


class StateDirError(Exception):
    """The state directory cannot be used: not creatable, not writable, or locked."""


class StateDirLocked(StateDirError):
    def __init__(self, path: Path, pid: int | None) -> None:
        self.path, self.pid = path, pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"state directory {path} is in use by {holder} (lock file {path / LOCK_NAME}): "
            "another exfil-monitor runs on it; give each daemon its own state.dir"
        )


class StateDir:
    """Creates the directory if missing and holds its lock from :meth:`acquire` to :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"the lock on {self.path} is already held")
        lock = self.path / LOCK_NAME
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateDirError(f"state directory {self.path}: cannot create {lock}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StateDirLocked(self.path, pid) from None
        except OSError as exc:
            os.close(fd)
            raise StateDirError(f"state directory {self.path}: cannot lock {lock}: {exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Idempotent. The file stays: removing it would let a third daemon lock a new
        file while a second still waits on the old one."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash at any point leaves the old file or
    the new one, never a mixture: a temporary file beside it, fsynced, renamed over it,
    and the folder fsynced for the rename. ``mode``: the state is the daemon's alone."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)  # the rename itself
    finally:
        os.close(dfd)
