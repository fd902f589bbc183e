"""The try-it page of a served text generator: a prompt box whose completion streams in (real Chromium)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_writing import CORPUS, TINY, _cli

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")


def test_prompt_box_streams_a_completion(tmp_path: Path, server_factory: Callable[..., Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    trained = _cli("train", "--data", corpus, "--task", "generate", *TINY, "--max-steps", "5",
                   "--runs-dir", tmp_path, "--name", "page", "--quiet")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    server = server_factory(tmp_path / "page")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.url + "/")
        page.wait_for_selector("#predict:not([disabled])")
        assert page.text_content("#predict") == "Generate"
        assert "text generator" in (page.text_content("#subtitle") or "")
        page.fill("#prompt", "Return the")
        with page.expect_response("**/v1/generate"):
            page.click("#predict")
        expect(page.locator("#predict")).to_be_enabled(timeout=60_000)
        shown = page.text_content("#completion") or ""
        browser.close()
    assert errors == [], errors
    assert shown.startswith("Return the") and len(shown) > len("Return the"), shown  # up to 200 within --timeout-s
