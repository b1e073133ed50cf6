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


# Real files no browser plays as they are (../shared/media/MANIFEST.tsv): MPEG-1/MP2 in
# MPEG-PS, Theora/Vorbis in Ogg. Ingested when the folder exists.
REAL = {"mpg": "c005.mpg", "ogg": "c016.ogg"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tools) -> Iterator[dict]:
    """The server in local mode (loopback, no keys) with the two-shot clip ingested (OCR
    on), and the real .mpg and .ogg clips when ../shared/media exists."""
    import shutil

    base = tmp_path_factory.mktemp("browser")
    root = base / "clips"
    root.mkdir()
    clip = _two_shot_clip(root)
    real: dict[str, str] = {}
    media = synth.shared_media_dir()
    if media is not None:
        for kind, name in REAL.items():
            shutil.copy(media / name, root / name)
            real[kind] = str(root / name)
    settings = Settings(ingest_speech=False, ingest_ocr=True, allowed_roots=(str(root),), rate=0,
                        shutdown_grace_s=5.0)
    with _serve(create_app(base / "index", settings)) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            videos = {}
            for path, title in [(str(clip), "Harbour sign"), *[(p, None) for p in real.values()]]:
                r = client.post("/v1/ingest", json={"path": path, "title": title})
                assert r.status_code == 202, r.text
                job = _wait_job(client, r.json()["job_id"])
                assert job["status"] == "done", job
                videos[path] = job["video_id"]
        yield {"url": url, "video_id": videos[str(clip)], "index": base / "index", "root": root,
               "real": {k: (p, videos[p]) for k, p in real.items()}}


def _mean_rgb(jpeg: bytes) -> tuple[float, float, float]:
    import io

    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float64)
    return tuple(float(x) for x in a.reshape(-1, 3).mean(axis=0))


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
            # ... and it is the frame of the moment, stored at ingest: the text shot, not the blue one
            thumb = httpx.get(server["url"] + top["thumbnail_url"])
            assert thumb.headers["x-thumbnail"] == "stored" and thumb.content[:2] == b"\xff\xd8"
            px = _mean_rgb(thumb.content)
            assert px[0] > 150, px  # white with black text (navy has no red): the moment, not the first shot
            # an H.264 MP4 plays as it is: its preview is the original file
            pv = httpx.get(server["url"] + top["preview_url"], headers={"Range": "bytes=0-99"})
            assert pv.status_code == 206 and pv.headers["x-preview"] == "original"
            assert cards.first.get_attribute("data-video-id") == server["video_id"]
            assert cards.first.get_attribute("data-position") == "1"
            assert float(cards.first.get_attribute("data-start")) == pytest.approx(top["start"], abs=1e-3)
            assert top["confidence"] in ("high", "medium") and "confidence" in cards.first.inner_text()

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
            # the page plays the preview link (for an H.264 MP4: the original itself)
            assert state["src"].startswith(f"{server['url']}/v1/videos/{server['video_id']}/preview?t="), state
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


# -- the page as people use it (issue 18) -----------------------------------------------------
SHOTS = Path("/tmp")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def _page(browser, server, width: int = 1280, height: int = 900):
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page
    finally:
        ctx.close()
    assert errors == []


def _search(page, text: str) -> dict:
    box = page.get_by_label("Search query")
    box.fill(text)
    with page.expect_response(lambda r: "/v1/search" in r.url) as info:
        box.press("Enter")
    page.wait_for_function("() => document.getElementById('results').getAttribute('aria-busy') === 'false'")
    return info.value.json()


def _query_of(url: str) -> dict:
    from urllib.parse import parse_qs, urlparse

    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def test_the_url_carries_the_search_and_the_back_button_restores_it(browser, server):
    with _page(browser, server) as page:
        page.goto(server["url"] + "/")
        first = _search(page, "harbour 42")
        assert _query_of(page.url)["q"] == "harbour 42"
        _search(page, '"purple elephant"')
        assert _query_of(page.url)["q"] == '"purple elephant"'
        with page.expect_response(lambda r: "/v1/search" in r.url):
            page.go_back()
        page.wait_for_function("() => document.querySelectorAll('#results li.card').length > 0")
        assert page.get_by_label("Search query").input_value() == "harbour 42"
        assert page.locator("#results li.card").count() == len(first["hits"])
        # a shared link repeats the search, filters included
        with page.expect_response(lambda r: "/v1/search" in r.url) as info:
            page.goto(server["url"] + "/?q=harbour+42&has=text&per_video=2")
        assert "has:text" in _query_of(info.value.url)["q"] and _query_of(info.value.url)["per_video"] == "2"
        assert page.locator("#has-text").is_checked() and page.locator("#per-video").input_value() == "2"


def test_pages_of_results(browser, server):
    with _page(browser, server) as page:
        with page.expect_response(lambda r: "/v1/search" in r.url) as info:
            page.goto(server["url"] + "/?q=harbour+sign+text&k=1&min_confidence=low")
        assert _query_of(info.value.url)["k"] == "1"
        page.wait_for_function("() => document.querySelectorAll('#results li.card').length === 1")
        one = page.locator("#results li.card").first.get_attribute("data-video-id")
        assert not page.locator("#pager").is_hidden() and page.locator("#prev-page").is_disabled()
        with page.expect_response(lambda r: "/v1/search" in r.url) as info:
            page.locator("#next-page").click()
        assert _query_of(info.value.url)["k"] == "2"  # page 2 of size 1
        page.wait_for_function("() => document.querySelector('#results li.card').dataset.position === '2'")
        assert _query_of(page.url)["page"] == "2"
        assert page.locator("#results li.card").count() == 1
        assert page.locator("#results li.card").first.get_attribute("data-video-id") != one
        with page.expect_response(lambda r: "/v1/search" in r.url):
            page.go_back()
        page.wait_for_function("() => document.querySelector('#results li.card').dataset.position === '1'")


def test_errors_clear_stale_results_and_a_new_search_closes_the_player(browser, server):
    with _page(browser, server) as page:
        page.goto(server["url"] + "/")
        _search(page, "harbour 42")
        page.locator("#results button.hit").first.click()
        page.wait_for_function("() => !document.getElementById('player-box').hidden")
        _search(page, "dur:>")  # a syntax error
        assert page.locator("#status").get_attribute("class") == "error"
        assert "dur" in page.locator("#status").inner_text()
        assert page.locator("#results li.card").count() == 0
        assert page.locator("#player-box").is_hidden()
        state = page.evaluate("() => { const v = document.getElementById('player'); return {paused: v.paused,"
                              " src: v.getAttribute('src')}; }")
        assert state == {"paused": True, "src": None}, state


def test_no_good_match_is_said_not_hidden(browser, server):
    with _page(browser, server) as page:
        page.goto(server["url"] + "/")
        body = _search(page, '"purple elephant"')
        assert body["hits"] == [] and body["no_good_match"] is True
        assert page.locator("#no-match").is_visible()
        assert "quoted phrase" in page.locator("#no-match").inner_text()
        assert page.locator("#pager").is_hidden() and page.locator("#results li.card").count() == 0
        page.screenshot(path=str(SHOTS / "vidseek-no-match.png"))


def test_keyboard_slash_arrows_and_enter(browser, server):
    with _page(browser, server) as page:
        page.goto(server["url"] + "/?q=harbour+sign+text&min_confidence=low")
        page.wait_for_function("() => document.querySelectorAll('#results button.hit').length >= 2")
        page.wait_for_function("() => Array.from(document.querySelectorAll('#results img')).every("
                               "(i) => i.complete && i.naturalWidth > 0)")  # every card's frame loads
        page.screenshot(path=str(SHOTS / "vidseek-results.png"), full_page=True)
        page.locator("h1").click()  # focus away from the box
        page.keyboard.press("/")
        assert page.evaluate("() => document.activeElement.id") == "q"
        page.keyboard.press("ArrowDown")
        pos = "() => document.activeElement.closest('li') && document.activeElement.closest('li').dataset.position"
        assert page.evaluate(pos) == "1"
        page.keyboard.press("ArrowRight")
        assert page.evaluate(pos) == "2"
        page.keyboard.press("ArrowLeft")
        assert page.evaluate(pos) == "1"
        page.keyboard.press("Enter")
        page.wait_for_function("() => !document.getElementById('player-box').hidden"
                               " && document.getElementById('player').getAttribute('src')")


def test_mobile_width_and_long_snippets_stay_inside(browser, server):
    long_word = "ArquivoEditarExibirFavoritos" * 12  # an OCR line without a space, 336 characters

    def lengthen(route):
        resp = route.fetch()
        body = resp.json()
        for h in body["hits"]:
            h["snippet"] = "on screen: " + long_word + " harbour " + "word " * 80
            h["highlights"] = []
        route.fulfill(response=resp, json=body)

    with _page(browser, server, width=375, height=740) as page:
        page.route("**/v1/search?*", lengthen)
        page.goto(server["url"] + "/?q=harbour+42&min_confidence=low")
        page.wait_for_function("() => document.querySelectorAll('#results li.card').length > 0")
        sizes = page.evaluate("""() => ({page: document.documentElement.scrollWidth, view: window.innerWidth,
            cards: Array.from(document.querySelectorAll('#results li.card')).map((c) => {
                const s = c.querySelector('.snippet').getBoundingClientRect(), r = c.getBoundingClientRect();
                return {card: [r.left, r.right, r.bottom], snip: [s.left, s.right, s.bottom]}; }),
            box: document.getElementById('q').getBoundingClientRect().width})""")
        assert sizes["page"] <= sizes["view"], sizes  # no sideways scrolling
        assert page.locator("#pager").is_hidden()  # one page of results: no pager
        assert sizes["box"] > 250, sizes  # the search box keeps the width of the screen
        for c in sizes["cards"]:
            assert c["card"][0] <= c["snip"][0] and c["snip"][1] <= c["card"][1] + 0.5, c
            assert c["snip"][2] <= c["card"][2] + 0.5, c
        page.screenshot(path=str(SHOTS / "vidseek-mobile.png"), full_page=True)


@pytest.mark.parametrize("kind", sorted(REAL))
def test_mpg_and_theora_play_in_the_page_from_the_moment(browser, server, kind):
    if kind not in server["real"]:
        pytest.skip("../shared/media is absent (set VIDSEEK_SHARED_MEDIA to the folder of real clips)")
    path, vid = server["real"][kind]
    src_filter = "source:" + path
    with _page(browser, server) as page:
        from urllib.parse import urlencode

        with page.expect_response(lambda r: "/v1/search" in r.url) as info:  # a link with the search in it
            page.goto(server["url"] + "/?" + urlencode({"q": f"a picture {src_filter}", "min_confidence": "low"}))
        body = info.value.json()
        page.wait_for_function("() => document.querySelectorAll('#results li.card').length > 0")
        assert body["hits"] and body["hits"][0]["video_id"] == vid, body
        hit = body["hits"][0]
        page.evaluate("""() => { const v = document.getElementById('player');
            window.__seeked = []; window.__playing = false;
            v.addEventListener('seeked', () => window.__seeked.push(v.currentTime));
            v.addEventListener('playing', () => { window.__playing = true; }); }""")
        page.locator("#results button.hit").first.click()
        page.wait_for_function("() => window.__seeked.length > 0 && window.__playing"
                               " || document.getElementById('player').error")
        state = page.evaluate("""() => { const v = document.getElementById('player');
            return {src: v.currentSrc, error: v.error && v.error.code, ready: v.readyState, seeked: window.__seeked,
                    msg: document.getElementById('player-error').hidden}; }""")
        assert state["error"] is None and state["ready"] > 0, state
        assert f"/v1/videos/{vid}/preview?t=" in state["src"], state
        assert state["seeked"][0] == pytest.approx(hit["start"], abs=0.1), state
        assert page.locator("#original-link").get_attribute("href").startswith(f"/v1/videos/{vid}/media?t=")
        page.screenshot(path=str(SHOTS / f"vidseek-play-{kind}.png"))
    # the preview is H.264/AAC MP4 made for it; the original is still served as it is
    r = httpx.get(server["url"] + hit["preview_url"], headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.headers["x-preview"] == "transcoded" and r.headers["content-type"] == "video/mp4"
    assert r.content[4:8] == b"ftyp"
    original = httpx.get(server["url"] + hit["media_url"], headers={"Range": "bytes=0-99"})
    assert original.status_code == 206 and original.content == Path(path).read_bytes()[:100]
    assert list((server["index"] / "previews").glob("*.mp4"))
