"""Where and how the load client sends: ``EndpointConfig``.

The URL parts (``base_url`` + ``endpoint``), the model name, the API key (sent as
``Authorization: Bearer``, ``repr=False``), extra headers and body fields, timeouts
and the transport. :meth:`EndpointConfig.redacted` is what may be stored with a run;
:meth:`EndpointConfig.secrets` the values to scrub wherever a server echoes them.
Userinfo in ``base_url`` (``http://user:pw@host``) is sent as Basic authorization and
kept out of the request URL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .._scrub import REDACTED, is_secret_key, scrub, scrub_text, scrub_url
from ..errors import ConfigError

__all__ = ["EndpointConfig"]


@dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    """Where and how to send: never printed with its key (``repr=False``)."""
    base_url: str
    endpoint: str = "/v1/completions"
    model: str = ""
    api_key: str | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    extra_body: dict[str, Any] = field(default_factory=dict)
    ignore_eos: bool = False
    min_tokens: int | None = None
    request_timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    http_client: str = "raw"          # raw (rawhttp.RawPool) | aiohttp

    def __post_init__(self) -> None:
        for name in ("request_timeout_s", "connect_timeout_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name} must be a finite number of seconds > 0, got {v!r}")
        if self.min_tokens is not None and (isinstance(self.min_tokens, bool) or self.min_tokens < 0):
            raise ConfigError(f"min_tokens must be an integer >= 0, got {self.min_tokens!r}")

    @property
    def url(self) -> str:
        """The request URL, without the base URL's userinfo (sent as a header instead)."""
        base = self.base_url.rstrip("/")
        if "@" in base.split("://", 1)[-1].split("/", 1)[0]:
            scheme, rest = base.split("://", 1)
            netloc, sep, path = rest.partition("/")
            base = f"{scheme}://{netloc.rsplit('@', 1)[1]}{sep}{path}"
        return base + "/" + self.endpoint.lstrip("/")

    @property
    def root_url(self) -> str:
        """The server root (the request URL less the endpoint path), without userinfo."""
        url = self.url
        path = "/" + self.endpoint.lstrip("/")
        return url[:-len(path)] if path != "/" and url.endswith(path) else url.rstrip("/")

    @property
    def chat(self) -> bool:
        return self.endpoint.rstrip("/").endswith("chat/completions")

    def http_headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        h.update(dict(self.headers))
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        elif not any(k.lower() == "authorization" for k in h):
            from .urls import basic_auth_header
            basic = basic_auth_header(self.base_url)
            if basic:
                h["Authorization"] = basic
        return h

    def secrets(self) -> frozenset[str]:
        """The secret values this endpoint holds: the API key, values of credential
        headers (and their bare tokens), the base URL's password, secret-keyed
        ``extra_body`` values — replaced wherever a server echoes them back."""
        from urllib.parse import unquote, urlsplit

        out: set[str] = set()
        if self.api_key:
            out.add(self.api_key)
        for k, v in self.headers:
            if is_secret_key(k) or k.lower() in ("x-api-key", "api-key"):
                out.add(v)
                out.add(v.split(" ", 1)[-1])                 # the token of "Bearer <token>"
                out.update(x.split("=", 1)[-1] for x in v.split(";"))   # cookie values
        try:
            pw = urlsplit(self.base_url).password
        except ValueError:
            pw = None
        if pw:
            out.update((pw, unquote(pw)))

        def walk(obj: Any) -> None:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if isinstance(k, str) and is_secret_key(k) and isinstance(v, str):
                        out.add(v)
                    else:
                        walk(v)
            elif isinstance(obj, list):
                for v in obj:
                    walk(v)

        walk(self.extra_body)
        return frozenset(x.strip() for x in out if len(x.strip()) >= 4)

    def redacted(self) -> dict[str, Any]:
        """What may be stored with a run: header values and the key are omitted."""
        return {
            "base_url": scrub_url(self.base_url), "endpoint": scrub_text(self.endpoint), "model": self.model,
            "api_key": REDACTED if self.api_key else None,      # a key was sent; never its value
            "header_names": sorted(k for k, _ in self.headers),
            "extra_body": scrub(self.extra_body), "ignore_eos": self.ignore_eos,
            "min_tokens": self.min_tokens, "request_timeout_s": self.request_timeout_s,
            "connect_timeout_s": self.connect_timeout_s, "http_client": self.http_client,
        }
