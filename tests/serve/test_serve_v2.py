"""The Open Inference Protocol (KServe v2) against the official `tritonclient[http]`, with its defaults (binary data)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
import yaml
from serving import Server
from tritonclient.utils import InferenceServerException

import kiln

REPO = Path(__file__).resolve().parents[2]


def _client(server: Server, **options: object) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"), **options)


def _v1_probabilities(server: Server, rows: list[object], classes: list[str], **headers: str) -> np.ndarray:
    answer = httpx.post(server.url + "/v1/predict", json={"inputs": rows}, headers=headers)
    assert answer.status_code == 200, answer.text
    return np.array([[p["probabilities"][c] for c in classes] for p in answer.json()["predictions"]])


@pytest.fixture(scope="module")
def fruit_run(tmp_path_factory: pytest.TempPathFactory) -> kiln.Run:
    """A table with a number, a category and a boolean."""
    folder = tmp_path_factory.mktemp("fruit")
    rng = np.random.default_rng(0)
    n = 120
    size, color, fresh = rng.normal(10, 3, n), rng.choice(["red", "green", "blue"], n), rng.choice(["true", "false"], n)
    label = np.where((size > 10) ^ (color == "red"), "big", "small")
    table = folder / "fruit.csv"
    table.write_text(
        "size,color,fresh,label\n" + "".join(f"{a:.3f},{b},{c},{d}\n" for a, b, c, d in zip(size, color, fresh, label))
    )
    config = kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False}, "data": {"target": "label"}})
    return kiln.fit(
        kiln.mlp(hidden=[8]), str(table), config=config, epochs=2, runs_dir=folder / "runs", name="fruit", quiet=True
    )


def test_a_table_run_through_tritonclient_matches_v1(
    server_factory: Callable[..., Server], fruit_run: kiln.Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_TEST_KEY", "s3cret")
    server = server_factory(fruit_run.path, "--api-key-env", "KILN_TEST_KEY")
    auth = {"Authorization": "Bearer s3cret"}
    client = _client(server)
    assert client.is_server_live() and client.is_server_ready()  # probes need no key
    assert client.get_server_metadata(headers=auth)["extensions"] == ["binary_tensor_data"]
    assert client.is_model_ready("fruit", headers=auth)
    meta = client.get_model_metadata("fruit", headers=auth)
    assert meta["inputs"] == [
        {"name": "size", "datatype": "FP32", "shape": [-1]},
        {"name": "color", "datatype": "BYTES", "shape": [-1]},
        {"name": "fresh", "datatype": "BOOL", "shape": [-1]},
    ]
    assert meta["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]
    classes = meta["parameters"]["classes"]
    assert classes == ["big", "small"]

    size = np.array([12.5, 3.0, 9.75], np.float32)
    color = np.array(["red", "purple", "blue"], dtype=object)
    fresh = np.array([True, False, True])
    inputs = []
    for name, array, datatype in (("size", size, "FP32"), ("color", color, "BYTES"), ("fresh", fresh, "BOOL")):
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)  # binary_data=True: the client's default
        inputs.append(tensor)
    result = client.infer(
        "fruit", inputs, headers=dict(auth)
    )  # (it adds to `headers`) no outputs named: all in binary (`binary_data_output`)
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 3 * 2 * 4
    assert result.get_response()["parameters"]["warnings"] == [
        "1 row(s) have a `color` category never seen in training; they were scored with the unknown bucket."
    ]
    probabilities = result.as_numpy("probabilities")
    rows = [[float(s), c, bool(f)] for s, c, f in zip(size, color, fresh)]
    v1 = _v1_probabilities(server, rows, classes, **auth)
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities, v1, rtol=0, atol=1e-6)

    labelled = client.infer("fruit", inputs, outputs=[triton.InferRequestedOutput("label")], headers=dict(auth))
    assert [label.decode() for label in labelled.as_numpy("label")] == [classes[i] for i in v1.argmax(axis=1)]

    with pytest.raises(InferenceServerException) as refused:  # the same key as /v1
        client.infer("fruit", inputs)
    assert refused.value.status() == "401"
    assert "Authorization: Bearer" in refused.value.message()


def test_an_image_run_through_tritonclient_matches_v1(digits_server: Server, digits_rows: list[list[float]]) -> None:
    client = _client(digits_server)
    name = Path(httpx.get(digits_server.url + "/v1/model").json()["name"]).name
    meta = client.get_model_metadata(name)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert meta["versions"] == [httpx.get(digits_server.url + "/v1/model").json()["version"]]
    classes = meta["parameters"]["classes"]
    images = np.array(digits_rows[:20], np.float32).reshape(20, 1, 8, 8)
    tensor = triton.InferInput("input", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    probabilities = client.infer(name, [tensor]).as_numpy("probabilities")
    v1 = _v1_probabilities(digits_server, images.tolist(), classes)  # nested C x H x W arrays
    np.testing.assert_allclose(probabilities, v1, rtol=0, atol=1e-6)

    tensor.set_data_from_numpy(images, binary_data=False)  # JSON tensors, and JSON outputs, work too
    output = triton.InferRequestedOutput("probabilities", binary_data=False)
    as_json = client.infer(name, [tensor], outputs=[output], model_version=meta["versions"][0])
    assert "data" in as_json.get_response()["outputs"][0]
    np.testing.assert_allclose(as_json.as_numpy("probabilities"), v1, rtol=0, atol=1e-6)


def test_malformed_requests_get_400_in_the_protocol_form(digits_server: Server) -> None:
    name = httpx.get(digits_server.url + "/v1/model").json()["name"]
    url = f"{digits_server.url}/v2/models/{name}/infer"
    cases = {
        b"{not json": "not valid JSON",
        json.dumps(
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0.0] * 63}]}
        ).encode(): ("`data` holds 63 elements; shape [1, 64] needs 64"),
        json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}]}).encode(): (
            "Unknown input `pixels`; this model's inputs: `input` (FP32 [-1, 1, 8, 8])"
        ),
        json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [0, 0, 0]}]}).encode(): (
            "Input `input` must be FP32 of shape [-1, 1, 8, 8]; got FP32 of shape [1, 3]"
        ),
        json.dumps(
            {
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}],
                "outputs": [{"name": "logits"}],
            }
        ).encode(): "Unknown output `logits`",
    }
    for body, message in cases.items():
        answer = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, body
        assert list(answer.json()) == ["error"] and message in answer.json()["error"], answer.json()
    header = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "parameters": {"binary_data_size": 256}}]}
    ).encode()
    short = httpx.post(url, content=header + b"\0" * 100, headers={"Inference-Header-Content-Length": str(len(header))})
    assert short.status_code == 400
    assert "`binary_data_size` 256 does not fit the 100 bytes left" in short.json()["error"]
    elsewhere = httpx.post(f"{digits_server.url}/v2/models/other/infer", content=header)
    assert elsewhere.status_code == 404 and elsewhere.json() == {
        "error": f"No model `other` here; this server serves `{name}`."
    }
    nan = json.dumps({"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 64], "data": [0] * 63 + [1e300]}]})
    too_big = httpx.post(url, content=nan)
    assert (
        too_big.status_code == 400
        and "value 63 (`pixel_7_7`): 1e+300 is outside the float32 range" in too_big.json()["error"]
    )


def test_regression_values_a_model_name_and_the_same_limits(
    server_factory: Callable[..., Server], diabetes_run: kiln.Run
) -> None:
    server = server_factory(diabetes_run.path, "--model-name", "diabetes", "--max-body-bytes", "2048")
    client = _client(server)
    meta = client.get_model_metadata("diabetes")
    assert meta["outputs"] == [{"name": "value", "datatype": "FP32", "shape": [-1]}]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 10]}]
    rows = kiln.load_data("diabetes").x_test[:5]
    tensor = triton.InferInput("input", [5, 10], "FP32")
    tensor.set_data_from_numpy(rows.astype(np.float32))
    values = client.infer("diabetes", [tensor]).as_numpy("value")
    v1 = httpx.post(server.url + "/v1/predict", json={"inputs": rows.astype(np.float32).tolist()}).json()
    np.testing.assert_allclose(values, [p["value"] for p in v1["predictions"]], rtol=1e-6)
    huge = httpx.post(server.url + "/v2/models/diabetes/infer", content=b"{" + b" " * 4096 + b"}")
    assert huge.status_code == 413 and list(huge.json()) == ["error"]
    metrics = httpx.get(server.url + "/metrics").text
    assert 'kiln_http_requests_total{route="/v2/models/diabetes/infer",method="POST",status="200"} 1' in metrics
    assert 'kiln_http_requests_total{route="/v2/models/diabetes/infer",method="POST",status="413"} 1' in metrics


def test_the_kserve_runtime_manifest_serves_a_run_under_its_inference_service_name(
    server_factory: Callable[..., Server], iris_run: kiln.Run
) -> None:
    runtime, service = yaml.safe_load_all((REPO / "examples" / "kserve" / "kiln-runtime.yaml").read_text())
    [container] = runtime["spec"]["containers"]
    assert container["command"] == ["kiln", "serve", "/mnt/models"]
    args = [service["metadata"]["name"] if a == "{{.Name}}" else a for a in container["args"]]
    args = [{"0.0.0.0": "127.0.0.1", "8080": "0"}.get(a, a) for a in args]  # a free port on loopback here
    server = server_factory(iris_run.path, *args)
    for probe in ("readinessProbe", "livenessProbe"):
        assert httpx.get(server.url + container[probe]["httpGet"]["path"]).status_code == 200
    client = _client(server)
    assert client.is_model_ready("digits") and client.get_model_metadata("digits")["name"] == "digits"
