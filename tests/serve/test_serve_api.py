"""Every endpoint of a real `kiln serve` on 127.0.0.1, and served outputs equal `kiln predict`'s exactly."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from serving import Server

import kiln
from kiln.predict import Predictor


def test_health_and_ready(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model": "digits-mlp"}


def test_model_card(client: httpx.Client, digits_run: kiln.Run) -> None:
    info = client.get("/v1/model").json()
    assert info["name"] == "digits-mlp"
    assert re.fullmatch(r"[0-9a-f]{12}", info["version"])
    assert (info["task"], info["runtime"]) == ("classification", "onnx")
    assert info["input"]["features"][:2] == ["pixel_0_0", "pixel_0_1"] and len(info["input"]["features"]) == 64
    assert info["input"]["image_shape"] == [1, 8, 8]
    assert info["input"]["pixel_range"] == 16.0
    assert info["classes"] == [str(d) for d in range(10)]
    assert info["metrics"]["accuracy"] == digits_run.metrics["accuracy"]
    assert info["artifacts"] == ["confusion_matrix.png", "curves.png"]
    png = client.get("/v1/model/curves.png")
    assert png.headers["content-type"] == "image/png"
    assert png.content == (digits_run.path / "curves.png").read_bytes()


def test_predict_one_row(client: httpx.Client, digits_rows: list[list[float]]) -> None:
    answer = client.post("/v1/predict", json={"inputs": digits_rows[:1]}).json()
    assert answer["model"] == "digits-mlp" and re.fullmatch(r"[0-9a-f]{12}", answer["version"])
    (prediction,) = answer["predictions"]
    probabilities = prediction["probabilities"]
    assert list(probabilities) == [str(d) for d in range(10)]
    assert abs(sum(probabilities.values()) - 1) < 1e-9
    assert prediction["label"] == max(probabilities, key=probabilities.__getitem__)
    assert [k["label"] for k in prediction["top_k"]] == sorted(
        probabilities, key=probabilities.__getitem__, reverse=True
    )[:3]
    assert client.post("/v1/predict", json={"inputs": digits_rows[:1], "top_k": 1}).json()["predictions"][0][
        "top_k"
    ] == [{"label": prediction["label"], "probability": probabilities[prediction["label"]]}]


def test_served_equals_predictor_and_kiln_predict(
    client: httpx.Client, digits_run: kiln.Run, digits_rows: list[list[float]], cli: Callable[..., Any], tmp_path: Path
) -> None:
    rows = digits_rows[:50]
    served = client.post("/v1/predict", json={"inputs": rows}).json()["predictions"]
    expected = Predictor.load(digits_run.path).predict(rows)
    assert [{k: p[k] for k in ("label", "probabilities")} for p in served] == expected  # bit for bit

    table = tmp_path / "rows.csv"
    features = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    table.write_text(",".join(features) + "\n" + "".join(",".join(str(int(v)) for v in row) + "\n" for row in rows))
    result = cli("predict", digits_run.path, table, "-o", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    with (tmp_path / "out.csv").open() as f:
        cli_rows = list(csv.DictReader(f))
    assert [r["label"] for r in cli_rows] == [p["label"] for p in served]
    assert [[r[f"p_{d}"] for d in range(10)] for r in cli_rows] == [
        [f"{p['probabilities'][str(d)]:.6f}" for d in range(10)] for p in served
    ]


def test_rows_as_objects_nested_images_and_png_agree(client: httpx.Client, digits_rows: list[list[float]]) -> None:
    row = digits_rows[3]
    features = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    flat = client.post("/v1/predict", json={"inputs": [row]}).json()["predictions"][0]
    by_name = {"inputs": [dict(zip(reversed(features), reversed(row)))]}
    nested_2d = {"inputs": [[row[r * 8 : r * 8 + 8] for r in range(8)]]}
    nested_3d = {"inputs": [[[row[r * 8 : r * 8 + 8] for r in range(8)]]]}
    for body in (by_name, nested_2d, nested_3d):
        assert client.post("/v1/predict", json=body).json()["predictions"][0] == flat
    # A PNG's 0..255 pixels map to the run's 0..16 range: pixels of v*255/16 give back the row exactly.
    image = Image.fromarray((np.array(row).reshape(8, 8) * 255 / 16).round().astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    png = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    from_png = client.post("/v1/predict", json={"inputs": [png]}).json()["predictions"][0]
    assert from_png["label"] == flat["label"]
    assert np.allclose(list(from_png["probabilities"].values()), list(flat["probabilities"].values()), atol=1e-3)


def test_table_rows_with_categories_and_missing_values(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 120
    size = rng.normal(10, 3, n)
    color = rng.choice(["red", "green", "blue"], n)
    fresh = rng.choice(["true", "false"], n)
    label = np.where((size > 10) ^ (color == "red"), "big", "small")
    table = tmp_path / "fruit.csv"
    table.write_text(
        "size,color,fresh,label\n" + "".join(f"{s:.3f},{c},{f},{y}\n" for s, c, f, y in zip(size, color, fresh, label))
    )
    config = kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False}, "data": {"target": "label"}})
    run = kiln.fit(
        kiln.mlp(hidden=[8]), str(table), config=config, epochs=2, runs_dir=tmp_path / "runs", name="fruit", quiet=True
    )
    server = server_factory(run.path)
    info = httpx.get(server.url + "/v1/model").json()["input"]
    assert info["features"] == ["size", "color", "fresh"]
    assert info["kinds"] == ["numeric", "categorical", "boolean"]
    assert info["categories"]["color"] == ["blue", "green", "red"]
    rows = [
        {"size": 12.5, "color": "red", "fresh": True},
        [3.0, "purple", None],
        {"size": None, "color": None, "fresh": False},
    ]
    answer = httpx.post(server.url + "/v1/predict", json={"inputs": rows}).json()
    unseen = "2 row(s) have a `color` category never seen in training; they were scored with the unknown bucket."
    with pytest.warns(kiln.KilnWarning, match=re.escape(unseen)):  # Python says it as a warning
        local = Predictor.load(run.path).predict([[12.5, "red", 1.0], [3.0, "purple", None], [None, None, 0.0]])
    assert answer["predictions"] == [{**p, "top_k": answer["predictions"][i]["top_k"]} for i, p in enumerate(local)]
    assert answer["warnings"] == [unseen]  # purple, and a missing color
    wrong = httpx.post(server.url + "/v1/predict", json={"inputs": [{"size": "big", "color": "red", "fresh": True}]})
    assert wrong.status_code == 422
    assert wrong.json() == {
        "error": "invalid_input",
        "message": "inputs[0].size (`size`): expected a number, got a string ('big').",
        "index": 0,
        "field": "size",
    }
    # The HTTP API takes rows as `kiln predict` and Python do: numbers as text, an absent key as a missing
    # value (imputed as in training), and keys that are not features ignored, with a warning.
    loose = [{"id": 7, "size": "12.5", "color": "red", "fresh": "yes"}, {"color": "blue"}]
    answer = httpx.post(server.url + "/v1/predict", json={"inputs": loose}).json()
    assert answer["warnings"] == ["Ignored `id`: not features."]
    local = Predictor.load(run.path).predict([[12.5, "red", True], [None, "blue", None]])
    assert [p["probabilities"] for p in answer["predictions"]] == [p["probabilities"] for p in local]


def test_regression_values(diabetes_server: Server, diabetes_run: kiln.Run) -> None:
    server = diabetes_server
    rows = kiln.load_data("diabetes").x_test[:5].tolist()
    answer = httpx.post(server.url + "/v1/predict", json={"inputs": rows}).json()
    expected = Predictor.load(diabetes_run.path).predict(rows)
    assert answer["predictions"] == expected
    assert httpx.get(server.url + "/v1/model").json()["runtime"] == "torch"  # the run has no model.onnx


def test_metrics_in_prometheus_text(client: httpx.Client, digits_rows: list[list[float]]) -> None:
    client.post("/v1/predict", json={"inputs": digits_rows[:2]})
    client.post("/v1/predict", json={"inputs": []})
    response = client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    for family, kind in [
        ("kiln_http_requests_total", "counter"),
        ("kiln_http_errors_total", "counter"),
        ("kiln_http_request_duration_seconds", "histogram"),
        ("kiln_batch_rows", "histogram"),
        ("kiln_queue_depth", "gauge"),
    ]:
        assert f"# TYPE {family} {kind}\n" in text
    ok = int(re.search(r'kiln_http_requests_total\{route="/v1/predict",method="POST",status="200"\} (\d+)', text)[1])  # type: ignore[index]
    assert ok >= 1
    assert re.search(r'kiln_http_requests_total\{route="/v1/predict",method="POST",status="422"\} [1-9]', text)
    assert re.search(r'kiln_http_errors_total\{route="/v1/predict"\} [1-9]', text)
    buckets = [
        int(n)
        for n in re.findall(r'kiln_http_request_duration_seconds_bucket\{route="/v1/predict",le="[^"]+"\} (\d+)', text)
    ]
    assert buckets == sorted(buckets) and buckets[-1] >= ok  # cumulative, +Inf last
    assert re.search(r"kiln_batch_rows_count [1-9]", text)
    assert 'kiln_model_info{model="digits-mlp",' in text and "kiln_ready 1" in text


def test_openapi_docs(client: httpx.Client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    assert {"/health", "/ready", "/v1/model", "/v1/predict", "/metrics"} <= set(spec["paths"])
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "inputs" in body["properties"] and body["required"] == ["inputs"]
    assert "422" in spec["paths"]["/v1/predict"]["post"]["responses"]


def test_unknown_routes_and_methods_answer_json(client: httpx.Client) -> None:
    missing = client.get("/v3/predict")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "No route GET /v3/predict; see /docs."}
    assert client.get("/v1/predict").status_code == 405


def test_no_request_reaches_files_outside_the_fixed_routes(client: httpx.Client, digits_server: Server) -> None:
    for path in [
        "/v1/model/model.json",
        "/v1/model/model.safetensors",
        "/v1/model/..%2fmodel.json",
        "/v1/model/%2e%2e/%2e%2e/etc/passwd",
        "/assets/..%2f..%2fmodel.json",
        "/static/app.js",
        "/v1/model/config.yaml",
    ]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "sha256" not in response.text
    assert client.get("/v1/model", params={"file": "/etc/passwd"}).json()["name"] == "digits-mlp"


def test_binds_loopback_by_default(digits_server: Server) -> None:
    port = int(digits_server.url.rsplit(":", 1)[1])
    listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    local = {fields[1] for fields in listening if fields[3] == "0A"}  # state LISTEN
    assert f"0100007F:{port:04X}" in local
    assert f"00000000:{port:04X}" not in local
