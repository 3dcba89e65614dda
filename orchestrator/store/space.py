"""Disk space for the store: free bytes of its filesystem and a reserve file held for deletes.

When the filesystem fills up, SQLite needs a little room even to delete (a delete appends a
row, every transaction appends to the write-ahead log, a checkpoint copies pages into the
database file). `Reserve` is a pre-allocated file next to the database that the store gives
back to the filesystem the moment a delete finds the disk full, and takes again once there
is room, so that deleting objects stays possible on a full disk.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time

log = logging.getLogger("dockyard.store")

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(directory: str) -> int | None:
    """Bytes this process can still write to the filesystem of `directory` (None: unknown).

    root may use the blocks a filesystem reserves for it (ext4's 5%), so for root this is
    every free block; for others the blocks available to unprivileged users.
    """
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return int(blocks) * int(st.f_frsize)


class FreeSpace:
    """`free_bytes` of one directory, cached for `max_age` seconds (a statvfs per call is cheap,
    but health checks may come often)."""

    def __init__(self, directory: str, max_age: float = 1.0) -> None:
        self.directory = directory
        self.max_age = max_age
        self._lock = threading.Lock()
        self._at = 0.0
        self._value: int | None = None
        self._valid = False

    def get(self, fresh: bool = False) -> int | None:
        now = time.monotonic()
        with self._lock:
            if not fresh and self._valid and now - self._at < self.max_age:
                return self._value
        value = free_bytes(self.directory)
        with self._lock:
            self._at, self._value, self._valid = now, value, True
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._valid = False


class Reserve:
    """A file of `size` bytes, allocated on disk, that can be released and taken again.

    `held` is True while the file holds its space. A reserve that cannot work here (size 0,
    or a filesystem that refuses the file for reasons other than space) is `disabled`:
    it is never held and never asked for. Files are created mode 0600.
    """

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = max(0, int(size))
        self.disabled = self.size == 0
        self.held = False

    @property
    def ok(self) -> bool:
        """Held, or not in use at all: nothing to take back before writing."""
        return self.held or self.disabled

    def take(self) -> bool:
        """Allocate the file (again); False if the filesystem has no room for it."""
        if self.disabled:
            return False
        if self.held:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            return self._failed(e)
        try:
            os.fchmod(fd, 0o600)
            os.posix_fallocate(fd, 0, self.size)
            os.ftruncate(fd, self.size)  # a larger file left by a larger reserve
        except OSError as e:
            os.close(fd)
            self._remove()
            return self._failed(e)
        os.close(fd)
        self.held = True
        return True

    def release(self) -> bool:
        """Give the space back to the filesystem; False if there was nothing to give."""
        if not self.held:
            return False
        self.held = False
        self._remove()
        log.warning("disk full: released the %d-byte reserve %s so that deletes can proceed", self.size, self.path)
        return True

    def discard(self) -> bool:
        """Remove a reserve file left by an earlier run, before it is taken; False if none."""
        if self.disabled or self.held or not os.path.exists(self.path):
            return False
        self._remove()
        log.warning("disk full: removed the reserve %s to open the store", self.path)
        return True

    def _remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove the store's reserve file %s: %s", self.path, e)

    def _failed(self, e: OSError) -> bool:
        if e.errno in _NO_SPACE:
            return False
        self.disabled = True
        log.warning("cannot keep a disk space reserve at %s (%s); deletes on a full disk may fail", self.path, e)
        return False
