"""The shared scenario flags as options of a command, plus ``--scenario FILE`` / ``--set``.

:func:`scenario_options` turns every row of :data:`servelab.scenario.flags.FLAGS` into a
typer option; the command receives a :class:`~servelab.scenario.flags.ScenarioArgs` and
calls its ``resolve()`` to get the validated Scenario.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable, List, Optional

import typer

from ..scenario.flags import FLAGS, P_FILE, ScenarioArgs

__all__ = ["ScenarioArgs", "scenario_options"]


def scenario_options(exclude: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the shared scenario flags (less ``exclude``), ``--scenario`` and ``--set`` to a
    command whose function takes ``scn: ScenarioArgs``."""
    flags = [f for f in FLAGS if f.param not in exclude]

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
               if p.name != "scn"]
        taken = {p.name for p in own}
        added = [
            inspect.Parameter("scenario_file", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                              default=typer.Option(None, "--scenario", help="Scenario file (YAML or JSON; see docs/scenario.md). Flags override it.",
                                                   rich_help_panel=P_FILE)),
            inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[List[str]],
                              default=typer.Option(None, "--set", help="Override any scenario field: PATH=VALUE (YAML value), e.g. engine.max_num_seqs=128. Repeatable.",
                                                   rich_help_panel=P_FILE)),
        ]
        for f in flags:
            if f.param in taken:
                raise TypeError(f"{fn.__name__}: parameter {f.param!r} collides with a scenario flag")
            added.append(inspect.Parameter(
                f.param, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[f.type],
                default=typer.Option(None, *f.names, help=f.help, rich_help_panel=f.panel,
                                     show_default=False)))
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            scn = ScenarioArgs(file=kwargs.pop("scenario_file", None), sets=tuple(kwargs.pop("set_", None) or ()))
            for f in flags:
                v = kwargs.pop(f.param, None)
                if v is not None:
                    scn.flags[f.param] = v
            return fn(scn=scn, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)   # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__
        wrapper.scenario_exclude = tuple(exclude)           # type: ignore[attr-defined]
        return wrapper
    return deco
