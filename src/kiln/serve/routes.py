"""Every route the server answers, declared once: the gate's auth and metrics labels and the app read these."""

from __future__ import annotations

PAGE = {  # the try-it page: route -> (file in static/, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/assets/app.js": ("app.js", "text/javascript"),
    "/assets/style.css": ("style.css", "text/css"),
}
ARTIFACTS = ("curves.png", "confusion_matrix.png")  # the only run-folder files the server reads for clients
PREDICT = "/v1/predict"
EXPLAIN = "/v1/explain"
GENERATE = "/v1/generate"  # a text generator's route (serve/generate.py)
READS_JSON = frozenset({PREDICT, EXPLAIN, GENERATE})  # POSTs whose body is JSON: the gate answers 415 to any other type
PROBES = frozenset({"/health", "/ready"})  # answered past the connection cap too
PUBLIC = PROBES | {"/docs", "/openapi.json", *PAGE}  # answered without the API key
ROUTES = PUBLIC | {PREDICT, EXPLAIN, GENERATE, "/v1/model", "/metrics", *(f"/v1/model/{name}" for name in ARTIFACTS)}
