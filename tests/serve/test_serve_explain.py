"""POST /v1/explain on a real server: predictions with attributions, and the same 4xx as /v1/predict for bad bodies."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from serving import Server

ROW = [float(v % 17) for v in range(64)]

BAD_BODIES = [
    b"",
    b"not json",
    b"[1, 2]",
    b'{"rows": [[1]]}',
    b'{"inputs": []}',
    b'{"inputs": "all"}',
    b'{"inputs": [[1, 2, 3]]}',
    b'{"inputs": [[' + b", ".join([b"1"] * 63) + b', "three"]]}',
    b'{"inputs": [[' + b", ".join([b"1"] * 63) + b", 1e39]]}",
    b'{"inputs": [[' + b", ".join([b"1"] * 64) + b']], "top_k": 0}',
    b'{"inputs": [' + b", ".join([b"[" + b", ".join([b"1"] * 64) + b"]"] * 1025) + b"]}",
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_bodies_get_the_same_answer_as_predict(client: httpx.Client, body: bytes) -> None:
    headers = {"content-type": "application/json"}
    predicted = client.post("/v1/predict", content=body, headers=headers)
    explained = client.post("/v1/explain", content=body, headers=headers)
    assert 400 <= predicted.status_code < 500
    assert (explained.status_code, explained.json()) == (predicted.status_code, predicted.json())


def test_explains_a_digit(client: httpx.Client, digits_rows: list[list[float]]) -> None:
    answer = client.post("/v1/explain", json={"inputs": digits_rows[17:19]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["method"] == "integrated-gradients" and len(body["predictions"]) == 2
    for prediction, row in zip(body["predictions"], body["explanations"]):
        assert row["target"] == prediction["label"]
        heat = np.array(row["attributions"])
        assert heat.shape == (1, 8, 8)
        gap = row["output"] - row["baseline_output"]
        assert abs(heat.sum() - gap) <= 0.01 * abs(gap)  # Integrated Gradients' completeness
    saliency = client.post("/v1/explain?method=saliency&target=3", json={"inputs": [ROW]}).json()
    assert saliency["method"] == "saliency" and saliency["explanations"][0]["target"] == "3"


def test_bad_method_target_and_media_type(client: httpx.Client) -> None:
    method = client.post("/v1/explain?method=lime", json={"inputs": [ROW]})
    assert method.status_code == 422
    assert method.json() == {
        "error": "invalid_input",
        "message": "Unknown `method` 'lime': expected one of integrated-gradients, saliency, occlusion.",
        "field": "method",
    }
    target = client.post("/v1/explain?target=eleven", json={"inputs": [ROW]})
    assert target.status_code == 422 and target.json()["field"] == "target"
    form = client.post("/v1/explain", content=b'{"inputs": [[1]]}', headers={"content-type": "text/plain"})
    assert form.status_code == 415 and form.json()["error"] == "unsupported_media_type"


def test_explains_a_regression_table(diabetes_server: Server) -> None:
    row = {"age": 0.02, "sex": -0.04, "bmi": 0.06, "bp": 0.02, "s1": -0.03, "s2": -0.02, "s3": 0.0, "s4": 0.0}
    row |= {"s5": 0.04, "s6": 0.01}
    with httpx.Client(base_url=diabetes_server.url, timeout=30) as http:
        answer = http.post("/v1/explain?method=occlusion", json={"inputs": [row]})
    assert answer.status_code == 200, answer.text
    (explained,) = answer.json()["explanations"]
    assert explained["target"] == "target" and set(explained["attributions"]) == set(row)
    assert explained["output"] == pytest.approx(answer.json()["predictions"][0]["value"], rel=1e-4)
