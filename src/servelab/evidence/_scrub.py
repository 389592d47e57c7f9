"""Secret scrubbing for the ledger: the shared scrubber of :mod:`servelab._scrub`."""

from __future__ import annotations

from .._scrub import REDACTED, is_secret_key, scrub, scrub_text

__all__ = ["scrub", "scrub_text", "is_secret_key", "REDACTED"]
