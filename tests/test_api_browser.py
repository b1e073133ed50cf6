"""The web search page in a real browser: headless Debian Chromium driven by Playwright.

The real server (uvicorn, ``create_app``) runs on a free loopback port in a thread,
over an index holding one synthetic clip: 3 s of a plain blue picture, then a hard
cut to 3 s of the burned-in text "HARBOUR 42". The test loads ``/``, types a query
into the search box found by its accessible label, sees result cards whose signed
thumbnails load, clicks the top card, and checks that the <video> plays the media
endpoint from the moment's start (the text shot, not the start of the file).

Needs ``/usr/bin/chromium`` (Debian ``chromium``) and the ``playwright`` package;
skips with the reason when either is missing. Playwright's own browser download is
never used: the launch names Debian's executable.
"""
from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart", reason="multipart uploads need python-multipart")
pytest.importorskip("uvicorn", reason="the browser test runs the real server with uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install playwright)")

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("the browser test needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)

import httpx2 as httpx  # noqa: E402  (the HTTP client FastAPI's TestClient also uses here)
import uvicorn  # noqa: E402

from api.app import Settings, create_app  # noqa: E402
from tests import synth  # noqa: E402

# Flags for a sandbox-less container with no GPU; the rest keep Chromium off the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path("/tmp/vidseek-page.png")
TEXT = "HARBOUR 42"
CUT_AT = 3.0
# A cap on each wait in the browser, not a speed assertion: a busy 2-core machine is slow.
WAIT_MS = 60_000


def _two_shot_clip(out_dir: Path) -> Path:
    """3 s of blue, then a hard cut to 3 s of black text on white (h264 mp4, no audio)."""
    text_file = out_dir / "two_shot.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    draw = (f"drawtext=fontfile={synth._filter_path(synth.FONT)}:textfile={synth._filter_path(text_file)}"
            ":fontsize=64:fontcolor=black:x=(w-text_w)/2:y=(h-text_h)/2")
    path = out_dir / "two_shot.mp4"
    synth._ffmpeg(
        "-f", "lavfi", "-i", f"color=c=navy:s=480x160:r=10:d={CUT_AT}",
        "-f", "lavfi", "-i", "color=c=white:s=480x160:r=10:d=3",
        "-filter_complex", f"[1:v]{draw}[t];[0:v][t]concat=n=2:v=1:a=0[v]", "-map", "[v]",
        *synth._X264, *synth._BITEXACT, str(path),
    )
    return path


@contextlib.contextmanager
def _serve(app) -> Iterator[str]:
    """uvicorn on a loopback socket bound here (port 0: no race for a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(6000):  # a generous cap (models load at start-up); not a timing assertion
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        if not server.started:
            raise RuntimeError("the server did not start; see the log above")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(120)
        sock.close()


def _wait_job(client: httpx.Client, job_id: str) -> dict:
    for _ in range(3000):  # a generous cap; not a timing assertion
        j = client.get(f"/v1/jobs/{job_id}").json()
        if j["status"] in ("done", "failed", "abandoned"):
            return j
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not finish: {j}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tools) -> Iterator[dict]:
    """The server in local mode (loopback, no keys) with the two-shot clip ingested (OCR on)."""
    base = tmp_path_factory.mktemp("browser")
    root = base / "clips"
    root.mkdir()
    clip = _two_shot_clip(root)
    settings = Settings(ingest_speech=False, ingest_ocr=True, allowed_roots=(str(root),), rate=0,
                        shutdown_grace_s=5.0)
    with _serve(create_app(base / "index", settings)) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            r = client.post("/v1/ingest", json={"path": str(clip), "title": "Harbour sign"})
            assert r.status_code == 202, r.text
            job = _wait_job(client, r.json()["job_id"])
            assert job["status"] == "done", job
        yield {"url": url, "video_id": job["video_id"]}


def fmt_minutes(t: float) -> str:
    """The page's time format (m:ss.s)."""
    minutes, seconds = divmod(t, 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def test_search_page_finds_and_plays_the_moment(server):
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server["url"] + "/")
            box = page.get_by_label("Search query")
            box.fill("harbour 42")
            with page.expect_response(lambda r: "/v1/search" in r.url) as resp_info:
                box.press("Enter")
            resp = resp_info.value
            assert resp.status == 200, resp.text()
            hits = resp.json()["hits"]
            assert hits and hits[0]["video_id"] == server["video_id"]
            top = hits[0]
            # the moment is the text shot after the cut, so playing it means seeking into the file
            assert top["start"] == pytest.approx(CUT_AT, abs=0.5), top

            cards = page.locator("#results li.card")
            cards.first.wait_for()
            assert cards.count() == len(hits)
            assert page.locator("#status").inner_text().startswith(f"{len(hits)} moment")
            first = page.get_by_role("button", name=re.compile(r"^Play Harbour sign from "))
            assert first.count() == 1
            minutes, seconds = divmod(top["start"], 60)
            assert first.get_attribute("aria-label").endswith(f" {int(minutes)}:{seconds:04.1f}")
            assert "ocr" in cards.first.inner_text()  # the matched modality is shown
            # the signed thumbnail link loads in an <img> (which cannot send a key)
            page.wait_for_function(
                "() => { const i = document.querySelector('#results li.card img');"
                " return i && i.complete && i.naturalWidth > 0; }")

            page.evaluate("""() => {
                const v = document.getElementById('player');
                window.__seeked = []; window.__playing = false;
                v.addEventListener('seeked', () => window.__seeked.push(v.currentTime));
                v.addEventListener('playing', () => { window.__playing = true; });
            }""")
            first.click()
            page.wait_for_function("() => window.__seeked.length > 0 && window.__playing")
            state = page.evaluate("""() => { const v = document.getElementById('player');
                return {src: v.currentSrc, seeked: window.__seeked, time: v.currentTime, ready: v.readyState,
                        paused: v.paused, error: v.error && v.error.code,
                        hidden: document.getElementById('player-box').hidden}; }""")
            assert state["src"].startswith(f"{server['url']}/v1/videos/{server['video_id']}/media?t="), state
            assert state["seeked"][0] == pytest.approx(top["start"], abs=0.05), state
            assert state["time"] >= top["start"] - 0.05, state
            assert state["ready"] > 0 and state["error"] is None and not state["hidden"], state
            assert page.locator("#player-title").inner_text().startswith("Harbour sign")
            # the moment is marked on the player's timeline, with what cut it
            assert top["range_from"] in ("text", "shot", "segments"), top
            note = page.locator("#moment-note").inner_text()
            assert note.startswith("Moment ") and fmt_minutes(top["start"]) in note, note
            bar = page.evaluate("""() => { const v = document.getElementById('player');
                const r = document.getElementById('moment-range');
                return {left: parseFloat(r.style.left), width: parseFloat(r.style.width), duration: v.duration}; }""")
            assert bar["left"] == pytest.approx(100 * top["start"] / bar["duration"], abs=0.5), bar
            assert bar["width"] > 0, bar
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert errors == []
