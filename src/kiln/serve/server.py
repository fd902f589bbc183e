"""`kiln serve`: load a run, bind the socket, run uvicorn, and shut down gracefully.

On SIGTERM (or Ctrl-C) the server stops being ready, refuses new predictions with 503, lets the
requests in flight finish (up to the request timeout), then exits with status 0. A second signal
stops it at once. Connections must send their request headers in time (`protocol.py`) and are
counted for the gate's --max-connections; the protocol answers the gate's 503 for a full queue itself.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn

from kiln.errors import ConfigError
from kiln.predict import Predictor, load
from kiln.serve.app import create_app
from kiln.serve.generate import GenerateService
from kiln.serve.protocol import close_overdue, protocol
from kiln.serve.readiness import Readiness
from kiln.serve.recommend import RecommendService, create_recommend_app
from kiln.serve.service import Service
from kiln.serve.settings import ServeSettings
from kiln.writing.generator import Generator


class _Server(uvicorn.Server):
    """uvicorn's server with a drain before its graceful shutdown, and no re-raised signal at exit."""

    def __init__(self, config: uvicorn.Config, service: Readiness, announce: Callable[[str], None]) -> None:
        super().__init__(config)
        self.service = service
        self.announce = announce
        service.connections = lambda: len(self.server_state.connections)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT start the drain; uvicorn's own handler stops at once and re-raises the signal (exit 143)."""
        if self.service.draining:
            self.should_exit = self.force_exit = True
            return
        self.service.drain(grace_s=self.service.settings.timeout_s + 1)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's 0.1 s housekeeping tick: close connections late with their headers; begin the graceful
        shutdown once drained."""
        close_overdue(self.server_state.connections, asyncio.get_running_loop().time())
        if self.service.drained():
            self.should_exit = True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Listen, then announce the URL (with the real port when --port 0 picked one)."""
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self.announce(f"http://{f'[{host}]' if ':' in host else host}:{port}")


def _freeze_heap() -> None:
    """Start-up objects (modules, the model, the server's own) never die: keep them out of the collector's
    scans, which otherwise walk them on every full collection under load (p99 latency). Only `kiln serve`'s
    own process does this; an app a user builds with `create_app` leaves their heap alone."""
    gc.collect()
    gc.freeze()


def _say(line: str) -> None:
    print(line, flush=True)  # at once, also into a pipe: scripts wait for the URL line


def serve(path: str | Path, settings: ServeSettings, echo: Callable[[str], None] = _say) -> None:
    """Serve the run at `path` until SIGTERM or Ctrl-C."""
    start = time.perf_counter()
    predictor = load(path, runtime=settings.runtime)
    sock = _bind(settings.host, settings.port)
    if isinstance(predictor, Predictor):
        service: Service | GenerateService | RecommendService = Service(predictor, settings, on_ready=_freeze_heap)
        app = create_app(service)
    elif isinstance(predictor, Generator):
        service = GenerateService(predictor, settings, _freeze_heap)
        app = create_app(service)
    else:
        service = RecommendService(predictor, settings, on_ready=_freeze_heap)
        app = create_recommend_app(service)
    config = uvicorn.Config(
        app,
        http=protocol(settings.header_timeout_s, app.refusal),
        log_level="warning",
        access_log=settings.access_log,
        timeout_graceful_shutdown=int(settings.timeout_s) + 1,
        server_header=False,
    )
    if settings.access_log:  # log_level="warning" set uvicorn's access logger to WARNING: its lines are INFO
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)

    def announce(url: str) -> None:
        auth = ", bearer-token auth on" if settings.api_key else ""
        echo(
            f"Serving {predictor.name} (version {predictor.version}, {predictor.runtime} runtime{auth}) at {url} "
            f"after {time.perf_counter() - start:.2f}s; try it at {url}/, API docs at {url}/docs. Ctrl-C stops."
        )

    _Server(config, service, announce).run(sockets=[sock])
    echo("kiln: server stopped")


def _bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket, or a ConfigError that says why not (uvicorn would exit with a log line)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise ConfigError(f"`--host {host}` is not an address of this machine ({exc.strerror}).") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {host}:{port}: {exc.strerror}. Pick another `--port` (0 picks a free one)."
        ) from None
    return sock
