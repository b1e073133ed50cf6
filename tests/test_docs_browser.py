"""``/docs`` in a real browser with the network cut off (issue 22): Swagger UI comes
from the ``fastapi-offline`` package's files, renders the operations and has an Authorize
button for the bearer scheme. Every request that leaves the server is aborted and
recorded, so a CDN asset would fail the test. Needs Debian's /usr/bin/chromium and
playwright; skips with the reason otherwise."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)

import uvicorn  # noqa: E402

from api.app import Settings, create_app  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000  # a cap on each wait, not a speed assertion


def test_docs_render_offline_with_an_authorize_button(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(tmp_path / "idx", Settings(warm_models=False)),
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    outside: list[str] = []
    try:
        for _ in range(2000):  # a cap, not a timing assertion
            if server.started:
                break
            time.sleep(0.05)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                page = browser.new_page()
                page.set_default_timeout(WAIT_MS)

                def route(r):
                    if r.request.url.startswith(base):
                        r.continue_()
                    else:  # the network is "down": anything not from our server fails
                        outside.append(r.request.url)
                        r.abort()

                page.route("**/*", route)
                page.goto(base + "/docs")
                page.wait_for_selector("button.authorize")
                page.wait_for_selector('[data-path="/v1/search"]')  # the operation is listed
                page.click("button.authorize")
                dialog = page.wait_for_selector(".modal-ux")
                assert "bearer" in dialog.inner_text().lower()
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
    assert outside == []
