"""ASGI plumbing for /v1/predict: the endpoint, the request body, time limits, JSON error answers.

The served model (`service.py`) answers a request; this module speaks ASGI for it.
"""

from __future__ import annotations

import asyncio
import http
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pydantic_core
from starlette.types import Receive, Scope, Send

from kiln.serve.schemas import ApiError

T = TypeVar("T")
DISCARD_BYTES = 16 << 20  # most of a refused body read and thrown away, so that the client reads the answer
DISCARD_S = 2.0  # and for how long
CLOSE = {"Connection": "close"}


class Body:
    """A request's body: read once within a limit, or, after an early answer, read and thrown away."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.complete = False  # its last byte has been received

    async def read(self, limit: int) -> bytes:
        """The body, refused with 413 as soon as it outgrows `limit` bytes (chunked bodies included)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "disconnected", "The client disconnected before sending the whole body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                self.complete = True
                return b"".join(chunks)

    def closing(self) -> bool:
        """Whether the client asked to close the connection after this request (HTTP/1.0, `Connection: close`)."""
        if self.scope["http_version"] == "1.0":
            return True
        return any(name == b"connection" and b"close" in value.lower() for name, value in self.scope["headers"])

    async def discard(self) -> None:
        """Read and drop the rest of the body, up to DISCARD_BYTES and DISCARD_S.

        A client that sends its whole body before it reads (urllib, requests) would otherwise find the
        connection reset under it when the server closes it, and never see the answer.
        """
        try:
            await within(DISCARD_S, self._drop(DISCARD_BYTES))
        except asyncio.TimeoutError:
            pass

    async def _drop(self, budget: int) -> None:
        while not self.complete and budget > 0:
            message = await self.receive()
            budget -= len(message.get("body", b""))
            self.complete = message["type"] == "http.disconnect" or not message.get("more_body", False)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`asyncio.wait_for` without its extra task per call where Python has `asyncio.timeout` (3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(max(seconds, 0.0)):
            return await awaitable
    return await asyncio.wait_for(awaitable, max(seconds, 0.0))


def too_large(limit: int) -> ApiError:
    """A 413, after which the connection closes: what is left of such a body is discarded, not kept reading."""
    return ApiError(
        413,
        "too_large",
        f"The body is larger than {limit} bytes (--max-body-bytes); send fewer rows per request.",
        headers=CLOSE,
    )


class JsonEndpoint:
    """A POST route as a plain ASGI app (the gate routes /v1/predict and /v1/recommend here, past FastAPI, for
    speed): `answer` turns the request's body into JSON bytes or raises an `ApiError`."""

    def __init__(self, answer: Callable[[Body], Awaitable[bytes]], route: str) -> None:
        self.answer = answer
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = Body(scope, receive)
        try:
            answer = await self.answer(body)
        except ApiError as error:
            # A 408 means the body stopped coming: nothing to wait for. Other early answers let it finish.
            await respond(send, error, body if error.status != 408 else None)
            return
        except Exception:  # a bug: logged with its traceback, answered as JSON like every other error
            logging.getLogger("uvicorn.error").exception(f"kiln: {self.route} failed")
            await respond(
                send, ApiError(500, "internal", "The server failed on this request; its log has the details."), body
            )
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def _encode(error: ApiError) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """An `ApiError`'s response headers and JSON body."""
    content = pydantic_core.to_json(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    return headers, content


async def respond(send: Send, error: ApiError, body: Body | None = None) -> None:
    """Answer an `ApiError` as JSON at the ASGI level. When the connection closes after it, what is left of
    `body` (if given) is discarded first; on a kept-alive connection uvicorn's parser skips it by itself."""
    headers, content = _encode(error)
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    closes = error.headers is not None and error.headers.get("Connection") == "close"
    if body is None or body.complete or not (closes or body.closing()):
        await send({"type": "http.response.body", "body": content})
        return
    await send({"type": "http.response.body", "body": content, "more_body": True})
    await body.discard()
    await send({"type": "http.response.body", "body": b""})


@dataclass(frozen=True)
class Prebuilt:
    """An `ApiError` encoded once as the bytes `respond` makes uvicorn write, for the protocol to write itself.

    uvicorn's default headers (`date`, changed every second) go between `status_line` and `rest`; `rest` is
    the error's own header lines, the blank line and the JSON body.
    """

    status_line: bytes
    rest: bytes

    @classmethod
    def of(cls, error: ApiError) -> Prebuilt:
        headers, content = _encode(error)
        status = http.HTTPStatus(error.status)
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        return cls(b"HTTP/1.1 %d %s\r\n" % (status, status.phrase.encode()), lines + b"\r\n" + content)
