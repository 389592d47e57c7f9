"""No traceback reaches the user: every command runs inside :func:`guarded`.

Errors servelab raises on purpose already name the bad value; this maps what is
left to a one-line message and an exit code: a bad value (``ConfigError``) → 2;
any other ``ServelabError``, an operating-system error (unwritable path, full disk,
port in use), a database that is not SQLite, or an unexpected exception → 1, the
last with its type and ``SERVELAB_DEBUG=1`` to see the traceback. Messages pass
through the scrubber. Exit codes the command chose itself pass unchanged.
"""

from __future__ import annotations

import functools
import inspect
import os
import sqlite3
from typing import Any, Callable

import typer
from rich.console import Console
from rich.markup import escape

from .._scrub import scrub_text
from ..errors import ConfigError, ServelabError

try:                                   # typer vendors its command-line layer in recent releases
    from typer._click.exceptions import ClickException as _ClickException
except ImportError:  # pragma: no cover - typer on top of click
    from click import ClickException as _ClickException  # type: ignore[no-redef]

_PASS = (typer.Exit, typer.Abort, _ClickException, KeyboardInterrupt, SystemExit)

__all__ = ["guarded", "guard_app"]

_err = Console(stderr=True)


def _say(msg: str) -> None:
    _err.print(f"[red]error:[/red] {escape(scrub_text(msg))}")


def _os_message(e: OSError) -> str:
    where = f" {e.filename!r}" if e.filename else ""
    if e.errno is not None and e.errno == 28:
        return f"no space left on the device{' for' + where if where else ''}"
    return f"{e.strerror or e}{':' + where if where else ''}"


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its unexpected exceptions turned into messages and exit codes."""
    if getattr(fn, "__servelab_guarded__", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _PASS:
            raise
        except ConfigError as e:
            _say(str(e))
            raise typer.Exit(2) from None
        except ServelabError as e:
            _say(str(e))
            raise typer.Exit(1) from None
        except sqlite3.DatabaseError as e:
            _say(f"the ledger could not be used ({e}); give --ledger a servelab ledger file or a new path")
            raise typer.Exit(1) from None
        except OSError as e:
            _say(_os_message(e))
            raise typer.Exit(1) from None
        except MemoryError:
            _say("out of memory: lower the rate, duration or number of requests")
            raise typer.Exit(1) from None
        except Exception as e:  # noqa: BLE001 - the last line of defence against a traceback
            if os.environ.get("SERVELAB_DEBUG"):
                raise
            _say(f"unexpected {type(e).__name__}: {e} (run with SERVELAB_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None

    wrapper.__servelab_guarded__ = True  # type: ignore[attr-defined]
    return wrapper


def guard_app(app: typer.Typer) -> None:
    """Wrap every command and group callback of ``app`` (recursively) in :func:`guarded`."""
    for cmd in app.registered_commands:
        if inspect.isfunction(cmd.callback):
            cmd.callback = guarded(cmd.callback)
    if app.registered_callback is not None and inspect.isfunction(app.registered_callback.callback):
        app.registered_callback.callback = guarded(app.registered_callback.callback)
    for grp in app.registered_groups:
        if inspect.isfunction(grp.callback):
            grp.callback = guarded(grp.callback)
        if grp.typer_instance is not None:
            guard_app(grp.typer_instance)
