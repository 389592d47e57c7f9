"""Shared helpers for the load-client and emulator tests (imported, not a conftest)."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Iterator

from servelab.load.fakeserver import FakeServer, FakeServerConfig


@contextmanager
def fake_server(config: FakeServerConfig | None = None) -> Iterator[FakeServer]:
    """A FakeServer on 127.0.0.1 running in a background thread's event loop,
    so code under test may call ``asyncio.run`` in the main thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, FakeServer] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            holder["s"] = await FakeServer(config or FakeServerConfig()).start()
            started.set()

        loop.run_until_complete(boot())
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(10), "fake server did not start"
    try:
        yield holder["s"]
    finally:
        asyncio.run_coroutine_threadsafe(holder["s"].stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)


class VirtualClock:
    """A clock that moves only when slept on: ``sleep(d)`` advances it by exactly ``d``.

    For the emulator's ``clock``/``sleep`` hooks: its timings then follow the model
    exactly, whatever the machine's load. Exact while at most one coroutine sleeps at
    a time (the engine driver, or a request's fixed overhead while the engine is idle).
    """

    def __init__(self, start_s: float = 100.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    async def sleep(self, delay_s: float) -> None:
        self.now_s += max(0.0, delay_s)
        await asyncio.sleep(0)


@contextmanager
def emulator_server(config, **kw) -> Iterator:  # config: servelab.emulator.EmulatorConfig
    """The emulator on 127.0.0.1 (free port) in a background thread's event loop;
    ``kw`` go to ``Emulator`` (e.g. ``clock=vc, sleep=vc.sleep`` for a VirtualClock)."""
    from servelab.emulator import Emulator

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            holder["e"] = await Emulator(config, **kw).start("127.0.0.1", 0)
            started.set()

        loop.run_until_complete(boot())
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(30), "emulator did not start"
    try:
        yield holder["e"]
    finally:
        asyncio.run_coroutine_threadsafe(holder["e"].stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
