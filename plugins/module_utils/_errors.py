# Private to the wgfleet.wireguard collection: not a public API.
"""Exceptions of the core, and the rules that keep keys out of every message.

Messages never quote a private or preshared key: values are shown through
:func:`shown`, which hides anything key-shaped, and command output through
:func:`scrub_keys`. As a net under that, :func:`secret_guard` collects every
secret key a run handles (``_keys`` reports them), so that the one place where
messages leave the core (``_module.run_core``) can take them out of whatever
goes out.
"""
from __future__ import annotations

import contextlib
import contextvars
import re

REDACTED = "**redacted**"
# Anything shaped like a WireGuard key (32 bytes of base64), with or without its "=" (a line split at
# its first "=" quotes the key without it). Command output can quote a config line back (`wg` does
# on a line it rejects), and it cannot tell private keys from public ones.
_KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048](?:=|(?![A-Za-z0-9+/=]))")
# Wider, for values quoted in messages: any long base64-looking run, a mistyped key included.
_KEYISH = re.compile(r"[A-Za-z0-9+/_-]{40,}=*")
SHOWN_MAX = 80


def scrub_keys(text: str) -> str:
    return _KEY_SHAPE.sub(REDACTED, text)


def key_shaped(text: str) -> list[str]:
    """Every run of ``text`` shaped like a WireGuard key."""
    return _KEY_SHAPE.findall(text)


def shown(value) -> str:
    """``value`` as a message quotes it: repr, anything key-like hidden, cut to a readable length."""
    # Anything else is hidden in its repr: a key inside a list, a dict or bytes is quoted there too.
    try:
        quoted = repr(_KEYISH.sub(REDACTED, value)) if isinstance(value, str) else _KEYISH.sub(REDACTED, repr(value))
    except ValueError:  # an int of more than 4300 digits has no repr
        quoted = f"<a {type(value).__name__}>"
    if len(quoted) > SHOWN_MAX:
        quoted = f"{quoted[:SHOWN_MAX - 20]}...' ({len(str(value))} characters)"
    return quoted


def safe_message(text: str, limit: int = 300) -> str:
    """A message written by someone else (Ansible's argument checks) as the collection's own are: no key, nothing
    key-like, no control character, at most ``limit`` characters. Ansible quotes in full a value it cannot
    convert (a private key given as ``mtu``, a 1 MB string)."""
    text = _FORBIDDEN_IN_MESSAGE.sub("?", _KEYISH.sub(REDACTED, scrub_keys(str(text))))
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class WgError(Exception):
    """Something the user can act on; the message is shown as is."""


class WgValueError(WgError, ValueError):
    """Bad input: the message names the option (or file line) and the value."""


class WgCommandError(WgError):
    """An external command (wg, wg-quick, ip) failed."""

    def __init__(self, argv, rc, stderr):
        self.argv = list(argv)
        self.rc = rc
        self.stderr = scrub_keys((stderr or "").strip())
        super().__init__(f"{' '.join(self.argv)} failed (rc={rc}): {self.stderr or 'no output'}")


# --- the secret guard ------------------------------------------------------------------

_SECRETS: contextvars.ContextVar = contextvars.ContextVar("wgfleet_secrets", default=None)


@contextlib.contextmanager
def secret_guard():
    """Collect, for the duration of a run, every secret key the core handles; yields the set."""
    seen: set = set()
    token = _SECRETS.set(seen)
    try:
        yield seen
    finally:
        _SECRETS.reset(token)


def remember_secret(value: str) -> None:
    seen = _SECRETS.get()
    if seen is not None and value:
        seen.add(value)


def redact_secrets(data, secrets: set):
    """``data`` (strings, lists, dicts) with every one of ``secrets`` replaced, wherever it occurs."""
    if not secrets:
        return data
    if isinstance(data, str):
        for secret in secrets:
            if secret in data:
                data = data.replace(secret, REDACTED)
        return data
    if isinstance(data, dict):
        return {k: redact_secrets(v, secrets) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_secrets(v, secrets) for v in data)
    return data


_COLLECTION_PATH = "ansible_collections/wgfleet/wireguard/"


class PutBack:
    """The steps that put a host back after a failure, each run on its own whatever the others do.

    ``put_back(what, action, *args)`` runs one step; ``failed`` lists what could not be put back, as
    ``"what: reason"`` for the error that reports the first failure.
    """

    def __init__(self):
        self.failed: list[str] = []

    def __call__(self, what: str, action, *args) -> None:
        try:
            action(*args)
        except Exception as exc:  # one step failing must not keep the others from running
            self.failed.append(f"{what}: {exc}")


def describe_unexpected(exc: BaseException, operation: str) -> str:
    """A one-line account of a bug: what was being done, the exception, and where in the collection.

    The exception's own text is kept (it often says what went wrong) with
    anything key-like hidden; the place is the innermost frame in the collection.
    """
    where = ""
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    for filename, lineno, function in reversed(frames):
        path = filename.replace("\\", "/")
        if _COLLECTION_PATH in path:
            where = f" (at {path.split(_COLLECTION_PATH, 1)[1]}:{lineno}, in {function})"
            break
    text = _FORBIDDEN_IN_MESSAGE.sub("?", _KEYISH.sub(REDACTED, scrub_keys(str(exc))))
    if len(text) > 300:
        text = text[:300] + "..."
    return f"unexpected error while {operation}: {type(exc).__name__}{': ' + text if text else ''}{where}"


_FORBIDDEN_IN_MESSAGE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
