"""The gate, the outermost ASGI app: host, auth, body limit, media type, connection cap, metrics for every request.

It answers 400 (a Host it does not serve), 401, 413, 415 and 503 itself from the headers alone, so a refused body is never parsed
(what the client still sends of it is read and thrown away: see `Body.discard`). It sends POST
/v1/predict and the Open Inference Protocol's infer (v2.py) straight to their endpoints and everything
else to FastAPI: FastAPI's middleware stack and request handling cost ~60 us a request, a third of a
prediction. Its own errors on /v2 routes are in that protocol's form.

When every --max-queue place is taken, the gate also refuses a prediction before ASGI (`refusal`, called by
the protocol): under overload those 503s are most of what the server does, and through ASGI each costs a
scope, a task, this gate and the endpoint, ~30 us against ~8 us before it (bench/serve_load.py's protocol
part). It refuses there only a request it would let in, after the same checks in the same order, so the
answer is the endpoint's (`Service.overloaded`), and a client without the API key still gets its 401
first, not a 503 that would tell it to retry.
"""

from __future__ import annotations

import hmac
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiln.serve.asgi import CLOSE, Body, Prebuilt, respond, too_large
from kiln.serve.readiness import RETRY_AFTER
from kiln.serve.routes import PREDICT, PROBES, PUBLIC, READS_JSON, ROUTES, V2
from kiln.serve.schemas import ApiError, as_protocol
from kiln.serve.service import Service


class Gate:
    """Checks a request before the app sees it, routes it, and counts it after."""

    def __init__(
        self, app: ASGIApp, endpoints: dict[str, ASGIApp], service: Service, routes: tuple[str, ...] = ()
    ) -> None:
        """`endpoints`: POST routes served past FastAPI (/v1/predict, v2 infer); `routes`: more paths to count."""
        self.app = app
        self.endpoints = endpoints
        self.service = service
        self.routes = ROUTES | frozenset(endpoints) | frozenset(routes)
        key = service.settings.api_key
        self.key = key.get_secret_value().encode() if key is not None else None
        self.hosts = service.settings.hosts()
        self.overloaded = Prebuilt.of(service.overloaded())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = self.service
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        service.inflight += 1
        try:
            path = scope["path"]
            error = self.check(path, scope["method"], scope["headers"])
            endpoint = self.endpoints.get(path)
            if error is None and endpoint is None:
                await self.app(scope, receive, send_status)
                return
            if error is None and scope["method"] == "POST":
                await endpoint(scope, receive, send_status)  # type: ignore[misc]
                return
            if error is None:
                error = ApiError(405, "method_not_allowed", f"Use POST for {path}; see /docs.")
            await respond(send_status, as_protocol(error) if path.startswith(V2) else error, Body(scope, receive))
        finally:
            service.inflight -= 1
            path = scope["path"]
            service.metrics.observe_request(
                path if path in self.routes else "other", scope["method"], status, time.perf_counter() - start
            )

    def refusal(self, headers: list[tuple[bytes, bytes]]) -> Prebuilt | None:
        """The 503 `overloaded` for a POST /v1/predict with these headers when the queue has no free place and
        the gate would let the request in (then it is counted as answered), else None: the request goes through
        ASGI (the queue has room, the server drains, or the gate answers something else)."""
        service = self.service
        if not service.batcher.full or service.draining:
            return None
        start = time.perf_counter()
        if self.check(PREDICT, "POST", headers) is not None:
            return None
        service.metrics.observe_request(PREDICT, "POST", 503, time.perf_counter() - start)
        return self.overloaded

    def check(self, path: str, method: str, headers: list[tuple[bytes, bytes]]) -> ApiError | None:
        """The error to answer from the headers alone, or None to let the request in."""
        auth = length = media = host = None
        for name, value in headers:
            if name == b"host":
                host = value
            elif name == b"authorization":
                auth = value
            elif name == b"content-length":
                length = value
            elif name == b"content-type":
                media = value
        settings = self.service.settings
        probe = path in PROBES  # orchestrators probe by IP address, and past any connection cap
        if self.hosts is not None and host is not None and not probe and _hostname(host) not in self.hosts:
            return ApiError(
                400,
                "invalid_host",
                f"This server does not answer for host {host[:60].decode('latin-1')!r}; it answers "
                f"{', '.join(sorted(self.hosts))} (--allowed-hosts).",
            )
        if self.service.connections() > settings.max_connections and not probe:
            return ApiError(
                503,
                "too_many_connections",
                f"The server has more than {settings.max_connections} open connections (--max-connections); "
                "retry shortly.",
                headers={**RETRY_AFTER, **CLOSE},
            )
        if self.key is not None and path not in PUBLIC and not self.authorized(auth):
            return ApiError(
                401,
                "unauthorized",
                "Missing or wrong API key: send the header `Authorization: Bearer <key>`.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if length is not None:
            if not length.isdigit():
                return ApiError(
                    400,
                    "invalid_header",
                    f"`Content-Length` must be a number of bytes; got {length[:20].decode('latin-1')!r}.",
                )
            if int(length) > settings.max_body_bytes:
                return too_large(settings.max_body_bytes)
        if media is not None and path in READS_JSON and method == "POST" and not _json(media):
            return ApiError(
                415,
                "unsupported_media_type",
                f"{path} reads JSON: send `Content-Type: application/json`, not "
                f"{media[:60].decode('latin-1')!r} (curl -d sends application/x-www-form-urlencoded; "
                "add -H 'Content-Type: application/json').",
            )
        return None

    def authorized(self, header: bytes | None) -> bool:
        """Constant-time comparison of the bearer token with the key."""
        assert self.key is not None
        scheme, _, token = (header or b"").partition(b" ")
        return hmac.compare_digest(token.strip(), self.key) and scheme.lower() == b"bearer"


def _hostname(host: bytes) -> str:
    """A Host header's name without its port, lower-case: `[::1]:8000` -> `[::1]`, `Example.com:80` -> `example.com`."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text.partition("]")[0] + "]"
    return text.partition(":")[0]


def _json(media: bytes) -> bool:
    """Whether a Content-Type is JSON: `application/json`, with parameters (`; charset=utf-8`) or not."""
    return media.partition(b";")[0].strip().lower() == b"application/json"
