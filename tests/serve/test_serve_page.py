"""The try-it page in real headless Chromium: draw a digit, predict, read the label; a table form."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright
from serving import Server

import kiln
from kiln.predict import Predictor

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium (.ci/run installs it)"
)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A page in a fresh Chromium profile; console errors fail the test."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport={"width": 1200, "height": 900},
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        context.close()
    assert errors == []


def _draw_zero(page: Page) -> None:
    box = page.locator("#canvas").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx + 45, cy)
    page.mouse.down()
    for degrees in range(0, 370, 10):
        angle = math.radians(degrees)
        page.mouse.move(cx + 45 * math.cos(angle), cy + 70 * math.sin(angle))
    page.mouse.up()


def test_draw_a_digit_and_predict(page: Page, digits_server: Server, tmp_path: Path) -> None:
    page.goto(digits_server.url + "/")
    page.wait_for_selector("#predict:not([disabled])")
    assert page.text_content("#title") == "digits-mlp"
    assert "accuracy" in page.text_content("#metrics")  # type: ignore[operator]
    expect(page.locator("#plots img")).to_have_count(2)
    assert page.evaluate(
        "[...document.querySelectorAll('#plots img')].every((img) => img.complete && img.naturalWidth > 0)"
    )

    _draw_zero(page)
    with page.expect_response("**/v1/predict") as answer:
        page.click("#predict")
    page.wait_for_selector("#prediction:not([hidden])")
    label = page.text_content("#label")
    page.screenshot(path=str(tmp_path / "try-it.png"), full_page=True)

    sent = json.loads(answer.value.request.post_data or "")["inputs"][0]
    assert len(sent) == 64 and min(sent) >= 0 and max(sent) <= 16 and sum(sent) > 100  # 8x8 ink, 0..16
    assert sent[0] == sent[7] == sent[56] == sent[63] == 0  # an ellipse leaves the corners empty
    served = httpx.post(digits_server.url + "/v1/predict", json={"inputs": [sent]}).json()["predictions"][0]
    assert label == served["label"] == "0"
    assert page.locator("#bars .bar").count() == 10
    assert (tmp_path / "try-it.png").stat().st_size > 10_000

    page.click("#clear")
    assert page.evaluate("document.getElementById('canvas').getContext('2d').getImageData(112, 42, 1, 1).data[0]") == 0


def test_table_form_has_one_field_per_feature(page: Page, servers: Callable[..., Server], iris_run: kiln.Run) -> None:
    server = servers(iris_run.path)
    page.goto(server.url + "/")
    page.wait_for_selector("#predict:not([disabled])")
    features = iris_run.folder.read_model_json()["schema"]["features"]
    assert page.locator("#input-area input[type=number]").count() == len(features) == 4
    row = [5.1, 3.5, 1.4, 0.2]
    for i, value in enumerate(row):
        page.fill(f"#f{i}", str(value))
    page.click("#predict")
    page.wait_for_selector("#prediction:not([hidden])")
    served = httpx.post(server.url + "/v1/predict", json={"inputs": [row]}).json()["predictions"][0]
    assert page.text_content("#label") == served["label"]
    assert page.locator("#bars .bar").count() == 3


def test_table_form_starts_from_typical_training_values_and_shows_the_plots(
    page: Page, server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """Each field holds the training median or most frequent value (not 0 and the first category), a category is
    a drop-down of the known ones, and the plots are on the first screen as the page loads, before any click."""
    rng = np.random.default_rng(0)
    n = 300
    # Typical values that any training split shares: a skewed number (median 40, mean ~60), a category whose
    # most frequent value is not the first in sorted order, and mostly-false booleans; a few blank cells.
    age = np.where(rng.random(n) < 0.7, 40, rng.integers(60, 90, n))
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.2, 0.6, 0.2])
    active = rng.random(n) < 0.25
    churned = np.where((plan == "basic") ^ active, "yes", "no")
    lines = [
        f"{'' if i % 29 == 0 else age[i]},{'' if i % 31 == 0 else plan[i]},{str(active[i]).lower()},{churned[i]}"
        for i in range(n)
    ]
    data = tmp_path / "customers.csv"
    data.write_text("age,plan,active,churned\n" + "\n".join(lines) + "\n")
    run = kiln.fit(
        kiln.mlp(hidden=[8]), str(data), target="churned", epochs=2, runs_dir=tmp_path / "runs", name="t", quiet=True
    )
    encoder = {c["name"]: c for c in run.folder.read_model_json()["preprocessing"]["encoder"]["columns"]}
    assert (encoder["age"]["fill"], encoder["plan"]["most_frequent"]) == (40.0, "pro")  # the training split's

    server = server_factory(run.path)
    page.goto(server.url + "/")
    page.wait_for_selector("#predict:not([disabled])")
    expect(page.locator("#plots img")).to_have_count(2)  # no click, no prediction
    for plot in page.locator("#plots img").all():
        expect(plot).to_be_in_viewport()
    assert page.evaluate("[...document.querySelectorAll('#plots img')].map((img) => img.alt)") == [
        "curves",
        "confusion matrix",
    ]

    assert page.input_value("#f0") == "40"
    assert page.eval_on_selector("#f1", "select => select.tagName") == "SELECT"
    assert page.eval_on_selector_all("#f1 option", "options => options.map((o) => o.value)") == [
        "basic",
        "pro",
        "team",
        "",  # (missing)
    ]
    assert page.input_value("#f1") == "pro"
    assert page.input_value("#f2") == "false"

    with page.expect_response("**/v1/predict") as answer:
        page.click("#predict")
    page.wait_for_selector("#prediction:not([hidden])")
    sent = json.loads(answer.value.request.post_data or "")["inputs"][0]
    page.wait_for_selector("#explanation:not([hidden])")  # /v1/explain answered before the server stops
    assert sent == {"age": 40, "plan": "pro", "active": False}
    served = httpx.post(server.url + "/v1/predict", json={"inputs": [sent]}).json()["predictions"][0]
    assert page.text_content("#label") == served["label"]


def test_other_images_get_a_file_upload(
    page: Page, server_factory: Callable[..., Server], tmp_path: Path, fast_config: kiln.RunConfig
) -> None:
    rng = np.random.default_rng(0)
    for name, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "shapes" / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8)
            pixels[..., channel] = 200
            Image.fromarray(pixels, "RGB").save(tmp_path / "shapes" / name / f"{i}.png")
    run = kiln.fit(
        kiln.mlp(hidden=[8]),
        str(tmp_path / "shapes"),
        config=fast_config,
        epochs=3,
        batch_size=8,
        runs_dir=tmp_path / "runs",
        name="shapes",
        quiet=True,
    )
    server = server_factory(run.path)
    page.goto(server.url + "/")
    page.wait_for_selector("#predict:not([disabled])")
    assert page.locator("#canvas").count() == 0
    page.set_input_files("#file", str(tmp_path / "shapes" / "blue" / "0.png"))
    # The page's CSP forbids eval, so wait through Playwright's own locator checks, not wait_for_function.
    expect(page.locator("#upload-preview")).not_to_have_js_property("naturalWidth", 0)
    expect(page.locator("#upload-preview")).to_have_js_property("complete", True)
    with page.expect_response("**/v1/predict") as answer:
        page.click("#predict")
    page.wait_for_selector("#prediction:not([hidden])")
    assert answer.value.status == 200
    page.wait_for_selector("#explanation:not([hidden])")  # /v1/explain answered before the server stops
    png = json.loads(answer.value.request.post_data or "")["inputs"][0]
    assert png.startswith("data:image/png;base64,")
    served = httpx.post(server.url + "/v1/predict", json={"inputs": [png]}).json()["predictions"][0]
    assert page.text_content("#label") == served["label"]
    assert (
        served["label"]
        == Predictor.load(run.path).predict(
            [
                np.asarray(Image.open(tmp_path / "shapes" / "blue" / "0.png"), dtype=np.float32)
                .transpose(2, 0, 1)
                .reshape(-1)
            ]
        )[0]["label"]
    )


def test_the_heatmap_is_drawn_beside_the_prediction(page: Page, digits_server: Server) -> None:
    page.goto(digits_server.url + "/")
    page.wait_for_selector("#predict:not([disabled])")
    _draw_zero(page)
    with page.expect_response("**/v1/explain") as answer:
        page.click("#predict")
    page.wait_for_selector("#explanation:not([hidden])")
    assert answer.value.status == 200
    assert (
        page.text_content("#why")
        == f"Why: what spoke for {page.text_content('#label')} (red) and against it (blue), by Integrated Gradients."
    )
    assert page.eval_on_selector("#heatmap", "canvas => [canvas.width, canvas.height]") == [8, 8]
    pixels = page.eval_on_selector("#heatmap", "canvas => [...canvas.getContext('2d').getImageData(0, 0, 8, 8).data]")
    rgba = np.array(pixels).reshape(64, 4)
    assert ((rgba[:, 0] == 255) & (rgba[:, 1] < 128)).any()  # some strongly red cell: evidence for the class


def test_a_table_shows_its_signed_reasons(page: Page, servers: Callable[..., Server], iris_run: kiln.Run) -> None:
    server = servers(iris_run.path)
    page.goto(server.url + "/")
    page.wait_for_selector("#predict:not([disabled])")
    page.click("#predict")
    page.wait_for_selector("#explanation:not([hidden])")
    assert page.locator("#reasons .reason").count() == 4
    assert page.locator("#heatmap").is_hidden()


def test_a_text_model_gets_a_text_box_and_the_answer(
    page: Page, server_factory: Callable[..., Server], small_tickets: Path, tmp_path: Path
) -> None:
    from tickets import ANSWERS

    run = kiln.fit(
        kiln.model("text-bow"),
        str(small_tickets),
        text="message",
        target="intent",
        epochs=15,
        runs_dir=tmp_path,
        name="tickets",
        quiet=True,
    )
    server = server_factory(run.path, "--responses", str(ANSWERS))
    page.goto(server.url + "/")
    page.wait_for_selector("#predict:not([disabled])")
    assert "text (message)" in page.text_content("#subtitle")
    page.fill("#message", "I forgot my password")
    page.click("#predict")
    page.wait_for_selector("#answer:not([hidden])")
    served = httpx.post(server.url + "/v1/predict", json={"inputs": ["I forgot my password"]}).json()["predictions"][0]
    assert page.text_content("#label") == served["label"]
    assert page.text_content("#answer") == ("Hand-off: " if served["handoff"] else "Answer: ") + served["answer"]
    assert page.locator("#bars .bar").count() == 8
