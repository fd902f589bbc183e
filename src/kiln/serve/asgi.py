"""ASGI plumbing for /v1/predict: the endpoint, bounded body reading, time limits, JSON error answers.

The served model (`service.py`) answers a request; this module speaks ASGI for it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

import pydantic_core
from starlette.types import Receive, Scope, Send

from kiln.serve.schemas import ApiError

if TYPE_CHECKING:
    from kiln.serve.service import Service

T = TypeVar("T")


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it outgrows `limit` bytes (chunked bodies included)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "disconnected", "The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`asyncio.wait_for` without its extra task per call where Python has `asyncio.timeout` (3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(max(seconds, 0.0)):
            return await awaitable
    return await asyncio.wait_for(awaitable, max(seconds, 0.0))


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "too_large", f"The body is larger than {limit} bytes (--max-body-bytes); send fewer rows per request."
    )


class PredictEndpoint:
    """POST /v1/predict as a plain ASGI app (the gate routes it here, past FastAPI, for speed)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await self.service.predict(receive)
        except ApiError as error:
            await respond(send, error)
            return
        except Exception:  # a bug: logged with its traceback, answered as JSON like every other error
            logging.getLogger("uvicorn.error").exception("kiln: /v1/predict failed")
            await respond(
                send, ApiError(500, "internal", "The server failed on this request; its log has the details.")
            )
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def respond(send: Send, error: ApiError) -> None:
    """Answer an `ApiError` as JSON at the ASGI level."""
    body = pydantic_core.to_json(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
