"""Every route the server answers, declared once: the gate's auth and metrics labels and the app read these."""

from __future__ import annotations

PAGE = {  # the try-it page: route -> (file in static/, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/assets/app.js": ("app.js", "text/javascript"),
    "/assets/style.css": ("style.css", "text/css"),
}
ARTIFACTS = ("curves.png", "confusion_matrix.png")  # the only run-folder files the server reads for clients
RECOMMEND_PAGE = {  # a recommendation run's try-it page
    "/": ("recommend.html", "text/html; charset=utf-8"),
    "/assets/recommend.js": ("recommend.js", "text/javascript"),
    "/assets/style.css": ("style.css", "text/css"),
}
PREDICT = "/v1/predict"
EXPLAIN = "/v1/explain"
RECOMMEND = "/v1/recommend"
GENERATE = "/v1/generate"  # a text generator's route (serve/generate.py)
V2 = "/v2"  # the Open Inference Protocol's routes (v2.py): errors in its form; the infer route takes binary bodies too
V2_PROBES = frozenset({"/v2/health/live", "/v2/health/ready"})
READS_JSON = frozenset({PREDICT, EXPLAIN, RECOMMEND, GENERATE})  # POSTs whose body is JSON: 415 to any other type
PROBES = frozenset({"/health", "/ready"}) | V2_PROBES  # answered past the connection cap too
PUBLIC = PROBES | {"/docs", "/openapi.json", *PAGE, *RECOMMEND_PAGE}  # answered without the API key
ROUTES = PUBLIC | {
    PREDICT,
    EXPLAIN,
    RECOMMEND,
    GENERATE,
    "/v1/model",
    "/metrics",
    V2,
    *(f"/v1/model/{name}" for name in ARTIFACTS),
}
