"""The exception tree, drawn once.

    ServelabError                 every error servelab raises on purpose
    ├── ConfigError (ValueError)  a bad value from the user: names it and what is valid
    │   └── UnsupportedModelError an HF config with an unsupported field or architecture
    ├── InfeasibleError           a configuration that cannot run (carries ``reason``)
    ├── LedgerError               the evidence database refused an operation
    └── ServerError               an endpoint answered in a way the client cannot use

Request failures during a load run are *records*, never exceptions.
"""

from __future__ import annotations

__all__ = [
    "ServelabError", "ConfigError", "UnsupportedModelError", "InfeasibleError",
    "LedgerError", "ServerError",
]


class ServelabError(Exception):
    """Base of every error servelab raises on purpose."""


class ConfigError(ServelabError, ValueError):
    """A bad user-supplied value; the message names it and the valid choices."""


class UnsupportedModelError(ConfigError):
    """A model config with an architecture or field servelab cannot model."""


class InfeasibleError(ServelabError):
    """A configuration that cannot run; ``reason`` says why in one sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LedgerError(ServelabError):
    """The evidence ledger refused an operation."""


class ServerError(ServelabError):
    """An endpoint answered in a way the client cannot use."""
