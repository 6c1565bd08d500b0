"""The output directory of a job (``physampler run`` and ``physampler train``).

Guarantees (README, "What survives"):

* One process at a time: the directory is taken with an exclusive ``flock`` on
  ``.physampler.lock`` (opened with ``O_NOFOLLOW``; it holds the owner's PID), so a
  second run into it is refused with one line naming the process that holds it.
  The kernel drops the lock when its process dies, SIGKILL included.
* ``--resume`` only ever continues a checkpoint: with none it refuses and touches
  nothing (not even the lock file).
* Without ``--resume``, a directory that holds anything needs ``--overwrite``, which
  removes only physampler's own output files, and only after the config, the
  resources and every input have been checked (:meth:`OutputDirectory.commit`).
* The directory itself must not be a symbolic link, and writes never go through a
  link planted inside it (:func:`physampler.io.atomic_write`).
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
from pathlib import Path

from .io import STAGING_PREFIX

LOCK_NAME = ".physampler.lock"


class JobError(Exception):
    """A problem with the job's inputs or output directory; printed as one line, exit 2."""


class OutputDirectory:
    """Checks, locks and (on :meth:`commit`) prepares ``path`` for a job.

    ``outputs``: names of the job's own files (``--overwrite`` removes only these);
    ``checkpoint``: the file whose presence makes a directory resumable.
    """

    def __init__(self, path: Path, *, resume: bool, overwrite: bool, outputs, checkpoint: str):
        self.path = Path(path)
        self.resume, self.overwrite = resume, overwrite
        self.outputs, self.checkpoint = tuple(outputs), checkpoint
        self.created = False
        self._fd: int | None = None
        self._previous: bytes | None = None  # the lock file's content before we took it (None: we created it)
        self.committed = False

    def _where(self) -> str:
        return f"(got {str(self.path)!r})"

    def open(self) -> "OutputDirectory":
        """Check the directory and take its lock; raises :class:`JobError`."""
        p = self.path
        if p.is_symlink():
            raise JobError(f"output.directory: is a symbolic link (to {os.readlink(p)!r}); pass the directory it "
                           f"points to {self._where()}")
        if p.exists() and not p.is_dir():
            raise JobError(f"output.directory: exists and is not a directory {self._where()}")
        self._refuse_if_busy()
        for name in self.outputs:  # a rename replaces a link at a file, but files written *into* a linked directory
            if (p / name).is_symlink() and (p / name).is_dir():  # would land wherever it points
                raise JobError(f"output.directory: {name} is a symbolic link to a directory; remove it "
                               f"{self._where()}")
        if self.resume and not (p / self.checkpoint).exists():
            raise JobError(f"--resume: no checkpoint ({self.checkpoint}) in the output directory, so nothing to "
                           f"continue; run without --resume to start a new run {self._where()}")
        if not self.resume and p.exists() and any(x.name != LOCK_NAME for x in p.iterdir()) and not self.overwrite:
            raise JobError(f"output.directory: exists and is not empty; pass --overwrite to replace it or --resume to "
                           f"continue it {self._where()}")
        try:
            self.created = not p.exists()
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JobError(f"output.directory: cannot be created: {e.strerror} {self._where()}") from None
        self._lock()
        return self

    def _refuse_if_busy(self) -> None:
        """A directory another process holds is refused first, without creating anything."""
        lock = self.path / LOCK_NAME
        if lock.is_symlink() or not lock.is_file():
            return
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            self._take(fd)
        finally:
            os.close(fd)

    def _take(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise JobError(f"output.directory: cannot be locked: {e.strerror} {self._where()}") from None
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise JobError(f"output.directory: in use by process {holder} (it holds {LOCK_NAME}); wait for it to "
                           f"finish or choose another directory {self._where()}") from None

    def _lock(self) -> None:
        lock = self.path / LOCK_NAME
        existed = lock.exists()
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise JobError(f"output.directory: {LOCK_NAME} is a symbolic link; remove it {self._where()}") from None
            raise JobError(f"output.directory: cannot be written: {e.strerror} {self._where()}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:  # a hard link planted to another file
            os.close(fd)
            raise JobError(f"output.directory: {LOCK_NAME} is not a plain file of its own; remove it {self._where()}")
        try:
            self._take(fd)
        except JobError:
            os.close(fd)
            raise
        self._previous = os.pread(fd, 64, 0) if existed else None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def commit(self) -> None:
        """After every check passed: clear staging directories of writes cut short by SIGKILL
        and, for ``--overwrite``, physampler's own previous outputs."""
        self.committed = True
        for x in self.path.iterdir():
            if x.name.startswith(STAGING_PREFIX) and x.is_dir() and not x.is_symlink():
                shutil.rmtree(x, ignore_errors=True)
            elif x.name.startswith(tuple(f".{o}." for o in self.outputs)) and x.name.endswith(".tmp"):
                x.unlink()  # temporary files of older versions
        if self.overwrite and not self.resume:
            for name in self.outputs:
                f = self.path / name
                if f.is_symlink() or f.is_file():
                    f.unlink()
                elif f.is_dir():
                    shutil.rmtree(f)

    def abandon(self) -> None:
        """After a refusal: leave the directory as it was found — the lock file's previous content
        restored, or the lock file (and a directory this call created) removed — and release it.
        After :meth:`commit` the job has written: it only releases."""
        if self._fd is not None and not self.committed:
            if self._previous is not None:
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, self._previous, 0)
            else:
                try:
                    (self.path / LOCK_NAME).unlink()
                    if self.created:
                        self.path.rmdir()
                except OSError:
                    pass
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
