"""Strict parsing of the URLs ``servelab bench`` is given.

A base URL is ``http://`` or ``https://``, a host, an optional port (1–65535) and an
optional path prefix (a server behind a proxy path); no query string, no fragment,
no whitespace. The request path (``--endpoint``, e.g. ``/v1/completions``) is
appended to it, so a base URL that already ends in ``/v1`` would ask for
``/v1/v1/completions``: :func:`parse_base_url` drops that ``/v1`` and says so.
Credentials in the URL (``http://user:pw@host``) are accepted (sent as HTTP Basic
authorization) and never stored (see :mod:`servelab._scrub`). Every error names the
URL with its secrets replaced.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .._scrub import scrub_url
from ..errors import ConfigError

__all__ = ["ParsedURL", "parse_base_url", "parse_metrics_url", "basic_auth_header"]

_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ParsedURL:
    url: str                 # normalized: scheme://[userinfo@]host[:port][/prefix], no trailing slash
    host: str
    port: int
    note: str = ""           # what was changed (a dropped /v1), for the user


def _split(text: str, flag: str, *, allow_query: bool):
    shown = scrub_url(text) if isinstance(text, str) else repr(text)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{flag} is empty; expected a URL like http://127.0.0.1:8000")
    t = text.strip()
    if any(c.isspace() for c in t) or any(ord(c) < 32 for c in t):
        raise ConfigError(f"{flag} {shown!r} contains whitespace or control characters; expected a URL "
                          "like http://127.0.0.1:8000")
    try:
        u = urlsplit(t)
    except ValueError as e:
        raise ConfigError(f"{flag} {shown!r} is not a URL ({e}); expected e.g. http://127.0.0.1:8000") from None
    if u.scheme.lower() not in _SCHEMES:
        raise ConfigError(f"{flag} {shown!r} has scheme {u.scheme or 'none'!r}; valid: http, https "
                          "(e.g. http://127.0.0.1:8000)")
    if not u.hostname:
        raise ConfigError(f"{flag} {shown!r} has no host; expected e.g. http://127.0.0.1:8000")
    try:
        port = u.port
    except ValueError:
        raise ConfigError(f"{flag} {shown!r} has an invalid port; valid: 1-65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{flag} {shown!r} has port {port}; valid: 1-65535")
    if u.fragment or (u.query and not allow_query):
        raise ConfigError(f"{flag} {shown!r} has a query string or fragment; give the server root, "
                          "e.g. http://127.0.0.1:8000")
    return u, port or (443 if u.scheme.lower() == "https" else 80)


def parse_base_url(text: str, *, endpoint: str = "/v1/completions", flag: str = "--base-url") -> ParsedURL:
    """The server root to which ``endpoint`` is appended (see the module docstring)."""
    u, port = _split(text, flag, allow_query=False)
    path = u.path.rstrip("/")
    note = ""
    if path.endswith("/v1") and endpoint.lstrip("/").startswith("v1/"):
        path = path[:-3]
        note = (f"{flag} ends in /v1 and the endpoint {endpoint} starts with it: "
                f"requests go to {scrub_url(u.scheme.lower() + '://' + u.netloc + path)}{endpoint}")
    url = f"{u.scheme.lower()}://{u.netloc}{path}"
    return ParsedURL(url=url, host=u.hostname or "", port=port, note=note)


def parse_metrics_url(text: str, *, flag: str = "--metrics-url") -> ParsedURL:
    """A Prometheus ``/metrics`` URL (a query string is allowed)."""
    u, port = _split(text, flag, allow_query=True)
    return ParsedURL(url=text.strip(), host=u.hostname or "", port=port)


def basic_auth_header(url: str) -> str | None:
    """``Basic …`` for the userinfo of ``url``, or None when it has none."""
    u = urlsplit(url)
    if u.username is None:
        return None
    cred = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
    return "Basic " + base64.b64encode(cred).decode()
