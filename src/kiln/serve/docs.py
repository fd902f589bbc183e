"""/docs: the API as one plain HTML page rendered from the OpenAPI schema, with no script and nothing fetched
from elsewhere, so it works offline (FastAPI's Swagger UI loads its code from a CDN and stays blank without one).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

from fastapi import Response

from kiln.serve.page import HEADERS

METHODS = ("get", "post", "put", "patch", "delete")


def endpoint(schema: Callable[[], dict[str, Any]]) -> Callable[[], Awaitable[Response]]:
    """The /docs endpoint: the page is rendered on the first request (not at start-up) and kept."""
    rendered: list[bytes] = []

    async def docs() -> Response:
        if not rendered:
            rendered.append(render(schema()).encode())
        return Response(rendered[0], media_type="text/html; charset=utf-8", headers=HEADERS)

    return docs


def render(schema: dict[str, Any]) -> str:
    """The page: title and description, a link to the schema, then every route with what it takes and answers."""
    info = schema["info"]
    title = escape(f"{info['title']} {info['version']}")
    routes = "".join(
        _route(method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}: API</title></head>\n'
        f"<body><h1>{title}</h1>\n<p>{escape(info.get('description', ''))}</p>\n"
        '<p>The OpenAPI schema of this API is at <a href="/openapi.json">/openapi.json</a>: open it in any OpenAPI '
        '(Swagger) tool to try requests or generate a client. The page at <a href="/">/</a> tries the model.</p>\n'
        f"{routes}</body></html>\n"
    )


def _route(method: str, path: str, operation: dict[str, Any]) -> str:
    """One route: method and path, summary, description, an example body, and its status codes."""
    parts = [f"<h2><code>{method.upper()} {escape(path)}</code></h2>"]
    for key in ("summary", "description"):
        if operation.get(key):
            parts.append(f"<p>{escape(operation[key])}</p>")
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if body.get("examples"):
        example = escape(json.dumps(body["examples"][0]))
        parts.append(f"<p>Body (<code>Content-Type: application/json</code>), for example:</p><pre>{example}</pre>")
    answers = ", ".join(
        f"{escape(code)} {escape(answer.get('description', ''))}" for code, answer in operation["responses"].items()
    )
    parts.append(f"<p>Answers: {answers}.</p>")
    return "<section>" + "".join(parts) + "</section>\n"
