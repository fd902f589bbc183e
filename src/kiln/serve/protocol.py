"""uvicorn's HTTP protocol (httptools) with a deadline for request headers.

uvicorn times a connection out only while it is idle after an answer (`timeout_keep_alive`): one
that connects and sends nothing, or sends its headers a byte at a time, is held for ever (its h11
protocol alike), so enough idle sockets starve real clients. Here a request's headers must be complete
within --header-timeout-s of the connection opening (the first request) or of their first byte (later
ones on a keep-alive connection); else the server closes the connection, after a JSON 408 when part of
a request has come. Connections only note when they started waiting; `close_overdue`, called on
uvicorn's 0.1 s tick, closes the late ones (a timer per request would cost more than the rest of this).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pydantic_core
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _timeout_answer(seconds: float) -> bytes:
    body = pydantic_core.to_json(
        {"error": "timeout", "message": f"Timed out: the request headers did not arrive within {seconds:g}s."}
    )
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    return head + body


class HeaderDeadline(HttpToolsProtocol):
    """Notes since when a connection waits for a request's headers; `expire_if_late` closes it past the deadline."""

    header_timeout_s = 10.0
    waiting_since: float | None = None  # loop time; None while no headers are due
    begun = False  # part of a request has come

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_since = self.loop.time()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.begun = True
        if self.waiting_since is None:
            self.waiting_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self.waiting_since, self.begun = None, False
        super().on_headers_complete()

    def expire_if_late(self, now: float) -> None:
        """Close the connection if its request headers are overdue at loop time `now`."""
        if self.waiting_since is None or now - self.waiting_since < self.header_timeout_s:
            return
        self.waiting_since = None
        if self.transport.is_closing():
            return
        if self.begun and (self.cycle is None or self.cycle.response_complete):  # not inside another answer
            self.transport.write(_timeout_answer(self.header_timeout_s))
        self.transport.close()


def close_overdue(connections: Iterable[asyncio.Protocol], now: float) -> None:
    """Close every connection whose request headers are overdue (uvicorn's server state holds them all)."""
    for connection in list(connections):
        if isinstance(connection, HeaderDeadline):
            connection.expire_if_late(now)


def protocol(header_timeout_s: float) -> type[HeaderDeadline]:
    """The protocol class for uvicorn's `http` setting, with this header deadline."""
    return type("KilnHttpProtocol", (HeaderDeadline,), {"header_timeout_s": header_timeout_s})
