"""The try-it page at `/`: plain HTML, CSS and JS from `static/`, no build step.

The page reads /v1/model and builds its input from the schema: a drawing canvas for small
one-channel images (the 8x8 digits), a file upload for other images, one field per feature for
tables. Files are read once at start-up and served from memory under fixed routes, so no request
can name a file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI, Response

from kiln.serve.routes import PAGE

HEADERS = {
    # Only this origin's own script, styles and images (plots arrive as blob: URLs); no inline code.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def static(data: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    """An endpoint that answers fixed bytes."""

    async def endpoint() -> Response:
        return Response(data, media_type=media_type, headers=HEADERS)

    return endpoint


def mount(app: FastAPI) -> None:
    """Add the page and its assets as fixed routes."""
    folder = files("kiln.serve") / "static"
    for route, (name, media_type) in PAGE.items():
        app.add_api_route(
            route, static((folder / name).read_bytes(), media_type), methods=["GET"], include_in_schema=False
        )
