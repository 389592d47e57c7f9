"""Secret scrubbing: nothing secret reaches the ledger.

Every config stored in the ledger (run configs, claim specs, verdict details) passes
through :func:`scrub` first. It replaces with ``"***"``:

- the value of any mapping key that names a credential: ``api_key``, ``apikey``,
  ``authorization``, ``proxy-authorization``, ``x-api-key``, ``password``, ``passwd``,
  ``secret`` (also ``client_secret``…), ``cookie``, ``set-cookie``, ``access_token``,
  ``refresh_token``, ``auth_token``, ``bearer``, ``private_key``, or a key that is
  exactly ``token`` / ``key`` / ``auth`` (case-insensitive, ``-`` and ``_`` alike);
- inside any string, whatever its key: the credential of ``Bearer …`` / ``Basic …``
  header values and OpenAI-style keys (``sk-`` followed by 16+ characters);
- the password part of a URL (``https://user:pw@host`` → ``https://user:***@host``)
  and credential-named query parameters (``?api_key=…`` → ``?api_key=***``).

Keys such as ``max_tokens`` or ``output_tokens`` are not secrets and are kept: the
key patterns match whole words, not substrings like ``tokens``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["scrub", "is_secret_key", "REDACTED"]

REDACTED = "***"

_SECRET_WORDS = (
    "api_key", "apikey", "authorization", "proxy_authorization", "x_api_key", "password",
    "passwd", "secret", "client_secret", "cookie", "set_cookie", "access_token",
    "refresh_token", "auth_token", "bearer", "private_key", "token", "key", "auth",
    "openai_api_key", "hf_token", "session_token",
)
_SECRET_KEY_RE = re.compile(
    r"(^|_)(api_?key|authorization|password|passwd|secret|cookie|access_token|refresh_token"
    r"|auth_token|bearer|private_key|session_token|hf_token)$"
)
_SECRET_VALUE_RE = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}|\bsk-[A-Za-z0-9_\-]{16,}", re.I)
_URL_USERINFO_RE = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]+)@", re.I)


def _norm_key(key: str) -> str:
    return re.sub(r"[-\s]+", "_", key.strip().lower())


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a credential (see the module docstring)."""
    k = _norm_key(key)
    return k in _SECRET_WORDS or bool(_SECRET_KEY_RE.search(k))


def _scrub_url(text: str) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_key(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_secret_key(k) else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _scrub_str(text: str) -> str:
    text = _SECRET_VALUE_RE.sub(lambda m: (m.group(1) + " " if m.group(1) else "") + REDACTED, text)
    if "://" in text:
        if " " not in text.strip():
            return _scrub_url(text)
        text = _URL_USERINFO_RE.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return text


def scrub(obj: Any) -> Any:
    """A copy of ``obj`` (JSON-like: dicts, lists, scalars) with secrets replaced."""
    if isinstance(obj, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                else scrub(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    if isinstance(obj, str):
        return _scrub_str(obj)
    return obj
