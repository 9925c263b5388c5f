"""`edgefer serve` in a real headless Chromium: the stream loads, labels and the chart update.

Needs Playwright (dev extra) and a system Chromium (Debian's ``chromium`` package: browsers
cannot be downloaded here). CI installs both, so there a missing browser fails the test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_runtime_serve import TOKEN, serving

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("EDGEFER_TEST_ARTIFACTS", REPO / ".cache" / "test-artifacts"))


def _chromium() -> str:
    path = os.environ.get("EDGEFER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    reason = "no Chromium found (apt-get install chromium, or set EDGEFER_CHROMIUM)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_page_shows_stream_labels_and_chart() -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    chromium = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "serve_page.png"
    with serving(token=TOKEN) as s, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 640})
            page.goto(s.server.url("/"))
            page.wait_for_function("() => document.getElementById('stream').naturalWidth > 0", timeout=30_000)
            page.wait_for_function("() => Number(document.body.dataset.chartUpdates) >= 10", timeout=30_000)
            assert page.evaluate("document.getElementById('stream').naturalWidth") == 320  # the clip's width
            label = page.locator("#faces .label").first.inner_text()
            assert any(name in label for name in s.hub.labels), label
            bars = page.locator("#faces .bar").count()
            assert bars == len(s.hub.labels)  # one bar per emotion of the face
            status = page.locator("#status").inner_text()
            assert status.startswith("live"), status
            assert "fer2013.onnx" in page.locator("#model").inner_text()
            # The chart drew something: a canvas with non-background pixels.
            drawn = page.evaluate("""() => {
                const c = document.querySelector('#charts canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                return n; }""")
            assert drawn > 150, drawn  # the lines so far and the track caption
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def test_saved_h264_plays_in_chromium(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    pytest.importorskip("av", reason="the video extra (PyAV) writes the H.264")
    from edgefer.models import MODELS_DIR
    from edgefer.runtime.cli import main

    chromium = _chromium()
    video = tmp_path / "annotated.mp4"
    assert main(["run", "--source", str(MODELS_DIR / "sample_face.mp4"), "--headless", "--jsonl",
                 str(tmp_path / "o.jsonl"), "--save", str(video), "--no-progress"]) == 0
    page_file = tmp_path / "play.html"
    page_file.write_text('<video id="v" src="annotated.mp4" muted></video>')
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_function("() => { const v = document.getElementById('v'); "
                                   "return v.error !== null || v.readyState >= 2; }", timeout=30_000)
            state = page.evaluate("() => { const v = document.getElementById('v'); "
                                  "return {error: v.error && v.error.code, w: v.videoWidth, d: v.duration}; }")
        finally:
            browser.close()
    assert state["error"] is None and state["w"] == 320, state
    assert state["d"] == pytest.approx(4.0, abs=0.2), state  # 60 frames at 15 fps
