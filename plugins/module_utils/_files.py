# Private to the wgfleet.wireguard collection: not a public API.
"""Config files: read, lock, write atomically (0600 in a 0700 directory), keep a backup."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time

from ._errors import WgError
from ._wgconf import Interface, parse, render


def config_path(config_dir: str, name: str) -> str:
    return os.path.join(config_dir, f"{name}.conf")


def read_config(path: str) -> Interface | None:
    """The parsed file, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WgError(f"cannot read {path}: {exc.strerror}") from None
    return parse(text, source=path)


@contextlib.contextmanager
def locked(config_dir: str, name: str):
    """Serialize writers of one interface file (modules, wgrest-sync restores, restores).

    The lock file sits beside the config; without the directory nothing is locked
    (there is nothing to race over yet), and a read-only directory only reads.
    """
    path = os.path.join(config_dir, f".{name}.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_dir(config_dir: str) -> None:
    if not os.path.isdir(config_dir):
        os.makedirs(config_dir, mode=0o700, exist_ok=True)
    os.chmod(config_dir, 0o700)


def write_atomic(path: str, text: str, backup: bool = False) -> str | None:
    """Write ``text`` to ``path`` through a 0600 temporary file and a rename.

    Returns the backup copy's path when ``backup`` is set and there was a file.
    A failure leaves the old file as it was.
    """
    directory = os.path.dirname(path) or "."
    ensure_dir(directory)
    backup_path = None
    if backup and os.path.exists(path):
        backup_path = f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"
        shutil.copy2(path, backup_path)
        os.chmod(backup_path, 0o600)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return backup_path


def write_config(path: str, iface: Interface, backup: bool = False) -> str | None:
    return write_atomic(path, render(iface), backup=backup)


def remove(path: str, backup: bool = False) -> str | None:
    backup_path = None
    if backup and os.path.exists(path):
        backup_path = f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"
        os.replace(path, backup_path)
        return backup_path
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return backup_path
