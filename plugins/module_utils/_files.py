# Private to the wgfleet.wireguard collection: not a public API.
"""Config files: read, lock, write atomically (0600; a directory made here is 0700), keep a backup.

Writers of one interface file hold its lock (``locked``). A write goes through
one temporary file of a fixed name beside the config, so that a writer killed
half-way (SIGKILL, power loss) leaves nothing the next one does not clean up
under the same lock: no stray copy of a key survives.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import time

from ._errors import WgError
from ._wgconf import Interface, parse, render

PRIVATE = 0o600


def config_path(config_dir: str, name: str) -> str:
    return os.path.join(config_dir, f"{name}.conf")


def temp_path(path: str) -> str:
    return os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp")


def read_config(path: str) -> Interface | None:
    """The parsed file, or None when it does not exist."""
    # No newline translation: the parser splits lines at \n as bash does, a lone \r stays inside its line.
    text = read_raw(path)
    return None if text is None else parse(text, source=path)


def read_raw(path: str) -> str | None:
    """The file's text exactly as it is (no newline translation), or None when it does not exist."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise WgError(f"cannot read {path}: {getattr(exc, 'strerror', None) or 'it is not UTF-8 text'}") from None


def put_back(path: str, raw: str | bytes | None) -> None:
    """Make ``path`` what was read before a change (text from :func:`read_raw`, or the very bytes, even of
    a file that could not be parsed): the same content, or no file. The caller holds the lock."""
    if raw is None:
        remove(path)
    else:
        write_atomic(path, raw)


def loose_mode(path: str) -> int | None:
    """The permission bits of ``path`` when group or others may read or write it, else None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    return mode if mode & 0o077 else None


def make_private(path: str) -> None:
    try:
        os.chmod(path, PRIVATE)
    except OSError as exc:
        raise WgError(f"cannot make {path} private (mode 0600): {exc.strerror or exc}") from None


@contextlib.contextmanager
def locked(config_dir: str, name: str):
    """Serialize writers of one interface file (modules, restores); clean up what a killed writer left.

    The lock file sits beside the config; without the directory nothing is locked
    (there is nothing to race over yet), and a read-only directory only reads.
    """
    path = os.path.join(config_dir, f".{name}.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _remove_stray_temp_files(config_path(config_dir, name))
        yield
    finally:
        os.close(fd)


# The temporary names this module has used: the fixed one, a backup copy's (".wg0.conf.913.<time>~.tmp"),
# and mkstemp's (".wg0.conf.k2j4_x9a") before them. Backup copies themselves ("wg0.conf.913.<time>~") stay,
# but never readable by others: older versions made them 0644 for a moment, and a failed one stayed so.
def _remove_stray_temp_files(path: str) -> None:
    directory, base = os.path.dirname(path) or ".", os.path.basename(path)
    temporary = re.compile(rf"^\.{re.escape(base)}\.(tmp|[a-z0-9_]{{8}}|[0-9]+\.[^/]*~\.tmp)\Z")
    backup = re.compile(rf"^{re.escape(base)}\.[0-9]+\.[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}@[0-9:]{{8}}~\Z")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if temporary.match(entry):
                os.unlink(os.path.join(directory, entry))
            elif backup.match(entry):
                info = os.lstat(os.path.join(directory, entry))  # a link is not ours: never followed
                if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
                    os.chmod(os.path.join(directory, entry), PRIVATE)


def ensure_dir(config_dir: str) -> bool:
    """Create ``config_dir`` with mode 0700 when it is missing; True when it was made.

    An existing directory keeps its mode: it may be shared (/etc/wireguard, a 1777 scratch dir).
    """
    if os.path.isdir(config_dir):
        return False
    os.makedirs(config_dir, mode=0o700, exist_ok=True)
    os.chmod(config_dir, 0o700)
    return True


def backup_copy(path: str, move: bool = False) -> str | None:
    """Keep the file as it is now under a name with a timestamp; None when there is no file.

    A copy is made like any write (:func:`stage`): 0600 from its first byte, complete or not there at all.
    """
    if not os.path.exists(path):
        return None
    backup_path = f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"
    if move:
        try:
            os.chmod(path, PRIVATE)
            os.replace(path, backup_path)
        except OSError as exc:
            raise cannot_write(backup_path, exc) from None
        return backup_path
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise WgError(f"cannot read {path}: {exc.strerror or exc}") from None
    stage(backup_path, data).commit()
    return backup_path


class Staged:
    """New content for ``path``, already on disk in the 0600 temporary file beside it: the file system took
    every byte. :meth:`commit` puts it in place with one rename, :meth:`discard` drops it."""

    def __init__(self, path: str, tmp: str):
        self.path, self.tmp = path, tmp

    def commit(self) -> None:
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise cannot_write(self.path, exc) from None

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


def cannot_write(path: str, exc: OSError) -> WgError:
    return WgError(f"cannot write {path}: {exc.strerror or exc}")


def stage(path: str, text: str | bytes) -> Staged:
    """Write ``text`` (or bytes) for ``path`` into its temporary file (0600 from the first byte, synced), not yet
    in place; the caller holds the lock. A failure (a full disk, a read-only directory) leaves no temporary file
    and raises a WgError naming ``path``."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    tmp = temp_path(path)
    fd = -1
    try:
        ensure_dir(os.path.dirname(path) or ".")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # never reuse a file another process may have opened
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE)
        os.fchmod(fd, PRIVATE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise cannot_write(path, exc) from None
        raise
    return Staged(path, tmp)


def write_atomic(path: str, text: str | bytes, backup: bool = False) -> str | None:
    """Write ``text`` (or bytes) to ``path`` through a 0600 temporary file and a rename; the caller holds the lock.

    Returns the backup copy's path when ``backup`` is set and there was a file.
    A failure leaves the old file as it was, no temporary file and no backup copy behind.
    """
    staged = stage(path, text)
    backup_path = None
    try:
        backup_path = backup_copy(path) if backup else None
        staged.commit()
    except BaseException:
        staged.discard()
        if backup_path:
            with contextlib.suppress(OSError):
                os.unlink(backup_path)
        raise
    return backup_path


def write_config(path: str, iface: Interface, backup: bool = False) -> str | None:
    return write_atomic(path, render(iface), backup=backup)


def remove(path: str, backup: bool = False) -> str | None:
    if backup and os.path.exists(path):
        return backup_copy(path, move=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise WgError(f"cannot remove {path}: {exc.strerror or exc}") from None
    return None
