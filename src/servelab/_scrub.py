"""Secret scrubbing: nothing secret reaches a file servelab writes.

Every run folder (``meta.json``, ``summary.json``, ``timeseries.json``, records'
failure reasons), ledger row and error message passes through :func:`scrub` (JSON-like
values) or :func:`scrub_text` (one string) first. They replace with ``"***"``:

- the value of any mapping key that names a credential: ``api_key``, ``apikey``,
  ``authorization``, ``proxy-authorization``, ``x-api-key``, ``password``, ``passwd``,
  ``secret`` (also ``client_secret``…), ``cookie``, ``set-cookie``, ``access_token``,
  ``refresh_token``, ``auth_token``, ``bearer``, ``private_key``, or a key that is
  exactly ``token`` / ``key`` / ``auth`` (case-insensitive, ``-`` and ``_`` alike);
- inside any string, whatever its key: the credential of ``Bearer …`` / ``Basic …``
  header values, ``name=value`` / ``name: value`` pairs whose name is one of the
  above, and tokens shaped like well-known keys: OpenAI-style ``sk-…`` (16+
  characters after the prefix), Hugging Face ``hf_…``, GitHub ``ghp_``/``github_pat_``…,
  Slack ``xox?-…``, AWS access key ids ``AKIA…``;
- any value the caller knows to be secret (``known``: the API key, header values of
  credential headers, a URL's password), wherever it appears;
- in URLs (alone or inside a longer message): the userinfo's password
  (``https://user:pw@host`` → ``https://user:***@host``; a lone ``https://tok@host``
  → ``https://***@host``) and credential-named query parameters
  (``?api_key=…`` → ``?api_key=***``).

Keys such as ``max_tokens`` or ``output_tokens`` are not secrets and are kept: the
key patterns match whole words, not substrings like ``tokens``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["scrub", "scrub_text", "scrub_url", "is_secret_key", "REDACTED"]

REDACTED = "***"

_SECRET_WORDS = (
    "api_key", "apikey", "authorization", "proxy_authorization", "x_api_key", "password",
    "passwd", "secret", "client_secret", "cookie", "set_cookie", "access_token",
    "refresh_token", "auth_token", "bearer", "private_key", "token", "key", "auth",
    "openai_api_key", "hf_token", "session_token", "pwd",
)
_SECRET_KEY_RE = re.compile(
    r"(^|_)(api_?key|authorization|password|passwd|secret|cookie|access_token|refresh_token"
    r"|auth_token|bearer|private_key|session_token|hf_token|token|credentials?)$"
)
_KEY_SHAPES = (
    r"\bsk-[A-Za-z0-9_\-]{16,}",                   # OpenAI-style (sk-…, sk-proj-…)
    r"\bhf_[A-Za-z0-9]{20,}",                      # Hugging Face
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}",  # GitHub
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",           # Slack
    r"\bAKIA[0-9A-Z]{16}\b",                       # AWS access key id
)
_SHAPE_RE = re.compile("|".join(_KEY_SHAPES))
_AUTH_SCHEME_RE = re.compile(r"\b(bearer|basic)\s+([A-Za-z0-9._~+/=\-]{6,})", re.I)
_NAMES = (r"api[_\-]?key|apikey|x[_\-]api[_\-]key|authorization|password|passwd|pwd|secret|client[_\-]secret"
          r"|access[_\-]token|refresh[_\-]token|auth[_\-]token|session[_\-]token|hf[_\-]token|token"
          r"|private[_\-]key|cookie")
_PAIR_RE = re.compile(rf"""(?P<name>["']?\b(?:{_NAMES})\b["']?\s*[:=]\s*)(?P<q>["']?)(?P<val>[^\s"'&,;}}\]]+)""",
                      re.I)
_URL_RE = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s\"'<>]+", re.I)


def _norm_key(key: str) -> str:
    return re.sub(r"[-\s]+", "_", key.strip().lower())


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a credential (see the module docstring)."""
    k = _norm_key(key)
    return k in _SECRET_WORDS or bool(_SECRET_KEY_RE.search(k))


def scrub_url(text: str) -> str:
    """``text`` (one URL) with its userinfo password and secret query values replaced."""
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
            query = urlencode([(k, REDACTED if is_secret_key(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _pair(m: re.Match[str]) -> str:
    if m["val"] == REDACTED:
        return m[0]
    return f"{m['name']}{m['q']}{REDACTED}"


def scrub_text(text: str, known: tuple[str, ...] | frozenset[str] = ()) -> str:
    """``text`` with every credential it carries replaced (see the module docstring);
    ``known``: secret values the caller holds (an API key, a URL password), replaced
    wherever they appear whatever their shape (a server echoing a key back)."""
    for secret in known:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL_RE.sub(lambda m: scrub_url(m[0]), text)
    text = _SHAPE_RE.sub(REDACTED, text)
    text = _AUTH_SCHEME_RE.sub(lambda m: f"{m[1]} {REDACTED}" if m[2] != REDACTED else m[0], text)
    return _PAIR_RE.sub(_pair, text)


def scrub(obj: Any) -> Any:
    """A copy of ``obj`` (JSON-like: dicts, lists, scalars) with secrets replaced."""
    if isinstance(obj, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                and not isinstance(v, (bool, int, float))
                else scrub(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj
