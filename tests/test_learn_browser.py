"""The search page's feedback (api/static/feedback.js) in a real browser: a click, a
play, dwell, "not relevant" and a reformulation reach the feedback store.

Headless Debian Chromium driven by Playwright, the real server (uvicorn) in a thread,
over an index of one synthetic clip with burned-in text; skips with the reason when
Chromium or Playwright is missing (as tests/test_api_browser.py does).
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn", reason="the browser test runs the real server with uvicorn")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the browser test needs playwright (pip install playwright)")

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("the browser test needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)

import httpx2 as httpx  # noqa: E402
import uvicorn  # noqa: E402

from api.app import Settings, create_app  # noqa: E402
from query.learn.store import FeedbackStore, feedback_path  # noqa: E402
from tests import synth  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000  # a cap on each wait in the browser, not a speed assertion


@pytest.fixture(scope="module")
def server(tmp_path_factory, tools):
    base = tmp_path_factory.mktemp("learn_browser")
    root = base / "clips"
    root.mkdir()
    clip = synth.make_text_clip(root, "HARBOUR 42", name="sign.mp4")
    index = base / "index"
    (index / "learn").mkdir(parents=True)
    (index / "learn" / "config.toml").write_text("randomise_share = 0.0\nretrain_every_s = 0\n")
    app = create_app(index, Settings(ingest_speech=False, ingest_ocr=True, allowed_roots=(str(root),), rate=0,
                                     shutdown_grace_s=5.0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(6000):  # a generous cap (models load at start-up); not a timing assertion
            if srv.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert srv.started, "the server did not start"
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with httpx.Client(base_url=url, timeout=120) as c:
            job = c.post("/v1/ingest", json={"path": str(clip)}).json()
            for _ in range(3000):
                j = c.get(f"/v1/jobs/{job['job_id']}").json()
                if j["status"] in ("done", "failed", "abandoned"):
                    break
                time.sleep(0.1)
            assert j["status"] == "done", j
        yield {"url": url, "index": index}
    finally:
        srv.should_exit = True
        thread.join(120)
        sock.close()


def _events(index: Path) -> dict[str, int]:
    store = FeedbackStore(feedback_path(index))
    try:
        return store.count("default")
    finally:
        store.close()


def _wait_for(index: Path, want: dict[str, int]) -> dict[str, int]:
    for _ in range(600):  # the page posts asynchronously; a cap, not a timing assertion
        got = _events(index)
        if all(got.get(k, 0) >= n for k, n in want.items()):
            return got
        time.sleep(0.1)
    return _events(index)


def test_page_reports_clicks_plays_dwell_rejections_and_reformulations(server):
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server["url"] + "/?min_confidence=low")  # every moment: the one clip is a weak match
            box = page.get_by_label("Search query")
            box.fill("blue sky over mountains")  # a first search, left without a click...
            with page.expect_response(lambda r: "/v1/search?" in r.url):
                box.press("Enter")
            page.locator("#results li.card").first.wait_for()
            box.fill("harbour 42")  # ...then searched again: a reformulation
            with page.expect_response(lambda r: "/v1/search?" in r.url) as info:
                box.press("Enter")
            assert info.value.json()["search_id"]
            page.locator("#results li.card button.not-relevant").first.wait_for()
            page.evaluate("() => { window.__playing = false; document.getElementById('player')"
                          ".addEventListener('playing', () => { window.__playing = true; }); }")
            page.locator("#results li.card > button").first.click()
            page.wait_for_function("() => window.__playing")
            page.get_by_role("button", name="Close player").click()
            page.get_by_role("button", name="Mark this result as not relevant").first.click()
            got = _wait_for(server["index"], {"impression": 2, "reformulation": 1, "click": 1, "play": 1,
                                              "dwell": 1, "not_relevant": 1})
        finally:
            browser.close()
    assert errors == []
    for kind in ("reformulation", "click", "play", "dwell", "not_relevant"):
        assert got.get(kind) == 1, got
    assert got["impression"] == 2
