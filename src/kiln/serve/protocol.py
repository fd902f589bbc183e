"""uvicorn's HTTP protocol (httptools) with a deadline for request headers, and 503s answered before ASGI.

uvicorn times a connection out only while it is idle after an answer (`timeout_keep_alive`): one
that connects and sends nothing, or sends its headers a byte at a time, is held for ever (its h11
protocol alike), so enough idle sockets starve real clients. Here a request's headers must be complete
within --header-timeout-s of the connection opening (the first request) or of their first byte (later
ones on a keep-alive connection); else the server closes the connection, after a JSON 408 when part of
a request has come. Connections only note when they started waiting; `close_overdue`, called on
uvicorn's 0.1 s tick, closes the late ones (a timer per request would cost more than the rest of this).

Under overload most requests are refused, and through ASGI each refusal costs a scope, a task, the
gate and the endpoint. So once the headers of a POST /v1/predict are in, the protocol asks the gate
(`Gate.refusal`) whether the queue is full; if so it writes the gate's prebuilt 503 at once, in one
write, and drops the request's body as it arrives (at most DISCARD_BYTES within DISCARD_S, as
`Body.discard`; past either the connection closes), keeping the connection for the next request.
Only plain keep-alive requests answered in order go this way: a pipelined request behind an answer
still being written, HTTP/1.0, `Connection: close`, `Expect: 100-continue`, an upgrade, any other URL
(a query string too) and every request while --access-log is on (uvicorn writes its line) keep the
ASGI path, which answers the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import pydantic_core
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kiln.serve.asgi import DISCARD_BYTES, DISCARD_S, Prebuilt
from kiln.serve.routes import PREDICT

Refusal = Callable[[list[tuple[bytes, bytes]]], Prebuilt | None]  # a POST /v1/predict's headers -> its 503, or None
PREDICT_URL = PREDICT.encode()


def _timeout_answer(seconds: float) -> bytes:
    body = pydantic_core.to_json(
        {"error": "timeout", "message": f"Timed out: the request headers did not arrive within {seconds:g}s."}
    )
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    return head + body


class KilnProtocol(HttpToolsProtocol):
    """Notes since when a connection waits for a request's headers (`expire_if_late` closes it past the
    deadline), and answers a prediction the gate refuses without ASGI."""

    header_timeout_s = 10.0
    refusal: Refusal | None = None  # the gate's; None: every request goes through ASGI
    waiting_since: float | None = None  # loop time; None while no headers are due
    begun = False  # part of a request has come
    discarding_since: float | None = None  # loop time a refused request was answered, until its body is dropped
    discard_left = 0  # bytes of that body still dropped before the connection closes
    default_lines = b""  # uvicorn's default headers (`date`) as header lines, made from the list `defaults_of`
    defaults_of: list[tuple[bytes, bytes]] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_since = self.loop.time()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.begun = True
        self._unset_keepalive_if_required()  # armed by a refusal earlier in the same read, see `on_message_complete`
        if self.waiting_since is None:
            self.waiting_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self.waiting_since, self.begun = None, False
        if self.url == PREDICT_URL and self.refusal is not None and self._plain():
            answer = self.refusal(self.headers)
            if answer is not None:
                self._refuse(answer)
                return
        super().on_headers_complete()

    def _plain(self) -> bool:
        """Whether this request may be answered here: a keep-alive HTTP/1.1 POST, every earlier answer written."""
        parser = self.parser
        return (
            parser.get_method() == b"POST"
            and (self.cycle is None or self.cycle.response_complete)
            and parser.get_http_version() == "1.1"
            and parser.should_keep_alive()
            and not self.expect_100_continue
            and not parser.should_upgrade()
            and not self.access_log
        )

    def _refuse(self, answer: Prebuilt) -> None:
        defaults = self.server_state.default_headers
        if defaults is not self.defaults_of:  # a new list every second: the date
            self.default_lines = b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
            self.defaults_of = defaults
        self.transport.write(answer.status_line + self.default_lines + answer.rest)
        self.discarding_since, self.discard_left = self.loop.time(), DISCARD_BYTES

    def on_body(self, body: bytes) -> None:
        if self.discarding_since is None:
            super().on_body(body)
            return
        self.discard_left -= len(body)
        if self.discard_left < 0:
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.discarding_since is None:
            super().on_message_complete()
            return
        # The refused request is over: what uvicorn does after an answer (counts it, arms the keep-alive timeout).
        self.discarding_since = None
        self.on_response_complete()

    def expire_if_late(self, now: float) -> None:
        """Close the connection if its request headers, or a refused request's body, are late at loop time `now`."""
        if self.discarding_since is not None and now - self.discarding_since >= DISCARD_S:
            self.transport.close()
            return
        if self.waiting_since is None or now - self.waiting_since < self.header_timeout_s:
            return
        self.waiting_since = None
        if self.transport.is_closing():
            return
        if self.begun and (self.cycle is None or self.cycle.response_complete):  # not inside another answer
            self.transport.write(_timeout_answer(self.header_timeout_s))
        self.transport.close()


def close_overdue(connections: Iterable[asyncio.Protocol], now: float) -> None:
    """Close every connection whose request headers or refused body are late (uvicorn's server state holds them)."""
    for connection in list(connections):
        if isinstance(connection, KilnProtocol):
            connection.expire_if_late(now)


def protocol(header_timeout_s: float, refusal: Refusal | None = None) -> type[KilnProtocol]:
    """The protocol class for uvicorn's `http` setting, with this header deadline and the gate's `refusal`."""
    # staticmethod: a function stored on the class would otherwise be handed the connection as its first argument
    return type(
        "KilnHttpProtocol", (KilnProtocol,), {"header_timeout_s": header_timeout_s, "refusal": staticmethod(refusal)}
    )
