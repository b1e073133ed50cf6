"""The HTTP service through FastAPI's TestClient: endpoints, errors, tenancy, keys,
limits, Range, ingest jobs (with real models on tiny synthetic clips; speech and OCR
off where a test is not about them), concurrency and shutdown."""
from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart", reason="multipart uploads need python-multipart")

from fastapi.testclient import TestClient  # noqa: E402

from api import keys as keys_cli  # noqa: E402
from api.app import Settings, create_app  # noqa: E402
from api.auth import KeyStore, LinkSigner, RateLimiter, service_db_path  # noqa: E402
from tests import synth  # noqa: E402

POLL_S = 0.1


def _wait_job(client: TestClient, job_id: str, headers: dict, *, until=("done", "failed", "abandoned")) -> dict:
    for _ in range(3000):  # a generous cap; not a timing assertion
        j = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if j["status"] in until:
            return j
        time.sleep(POLL_S)
    raise RuntimeError(f"job {job_id} did not reach {until}: {j}")


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def env(tmp_path_factory, tools):
    """One service with two tenants' keys and one video each (A by upload, B by path)."""
    base = tmp_path_factory.mktemp("api")
    clips = base / "clips"
    root = base / "allowed"
    clips.mkdir()
    root.mkdir()
    a_clip = synth.make_text_clip(clips, "HARBOUR 42", name="sign.mp4")
    b_clip = synth.make_no_audio_clip(root, name="tenant_b.mp4")
    idx = base / "index"
    store = KeyStore(service_db_path(idx))
    a_key, _ = store.create("alpha", "search,ingest", name="alpha rw")
    a_read, _ = store.create("alpha", "search")
    a_admin, _ = store.create("alpha", "admin")
    b_key, _ = store.create("beta", "search,ingest")
    revoked, rec = store.create("alpha", "search")
    store.revoke(rec.key_id)
    store.close()
    # both tenants may read `root` (a shared folder, on purpose; per-tenant roots: below)
    settings = Settings(ingest_speech=False, ingest_ocr=False, tenant_roots={"alpha": (str(root),), "beta": (str(root),)},
                        max_upload_bytes=200_000, rate=0)
    app = create_app(idx, settings)
    with TestClient(app) as client:
        A, B = _bearer(a_key), _bearer(b_key)
        r = client.post("/v1/ingest", headers=A, files={"file": ("sign.mp4", a_clip.read_bytes(), "video/mp4")})
        assert r.status_code == 202, r.text
        ja = _wait_job(client, r.json()["job_id"], A)
        r = client.post("/v1/ingest", headers=B, json={"path": str(b_clip), "title": "beta clip"})
        assert r.status_code == 202, r.text
        jb = _wait_job(client, r.json()["job_id"], B)
        assert ja["status"] == "done" and jb["status"] == "done", (ja, jb)
        yield {
            "client": client, "app": app, "A": A, "B": B, "A_read": _bearer(a_read), "A_admin": _bearer(a_admin),
            "revoked": _bearer(revoked), "a_vid": ja["video_id"], "b_vid": jb["video_id"], "a_job": ja["job_id"],
            "b_job": jb["job_id"], "root": root, "clips": clips, "b_clip": b_clip, "a_clip": a_clip, "idx": idx,
        }


def _err(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]


# -- health, docs, page ------------------------------------------------------------------
def test_health_ready_openapi_and_page(env):
    c = env["client"]
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["models_loaded"]
    assert ready.json()["local_mode"] is False  # keys exist
    spec = c.get("/openapi.json").json()
    for path in ("/v1/search", "/v1/ingest", "/v1/jobs/{job_id}", "/v1/videos", "/v1/videos/{video_id}",
                 "/v1/videos/{video_id}/segments", "/v1/videos/{video_id}/segments/{segment_id}/thumbnail",
                 "/v1/videos/{video_id}/media"):
        assert path in spec["paths"], path
    assert "example" in spec["paths"]["/v1/ingest"]["post"]["requestBody"]["content"]["application/json"]
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'label for="q"' in page.text and 'id="image"' in page.text
    assert c.get("/static/app.js").status_code == 200


def test_unknown_route_is_json_404(env):
    _err(env["client"].get("/v1/nope", headers=env["A"]), 404, "not_found")


# -- keys and scopes ---------------------------------------------------------------------
def test_keys_required_invalid_revoked_and_scopes(env):
    c = env["client"]
    _err(c.get("/v1/search", params={"q": "harbour"}), 401, "unauthorized")
    _err(c.get("/v1/search", params={"q": "harbour"}, headers=_bearer("vsk_000000000000_" + "x" * 43)), 401,
         "unauthorized")
    _err(c.get("/v1/search", params={"q": "harbour"}, headers={"Authorization": "Bearer nonsense"}), 401,
         "unauthorized")
    _err(c.get("/v1/search", params={"q": "harbour"}, headers=env["revoked"]), 401, "unauthorized")
    # X-API-Key works as well as Bearer
    key = env["A"]["Authorization"].split()[1]
    assert c.get("/v1/search", params={"q": "harbour"}, headers={"X-API-Key": key}).status_code == 200
    # a search-only key cannot ingest, read jobs or delete
    _err(c.post("/v1/ingest", headers=env["A_read"], json={"path": "/x"}), 403, "forbidden")
    _err(c.get(f"/v1/jobs/{env['a_job']}", headers=env["A_read"]), 403, "forbidden")
    _err(c.delete(f"/v1/videos/{env['a_vid']}", headers=env["A_read"]), 403, "forbidden")
    # admin implies every scope of its own tenant
    assert c.get(f"/v1/jobs/{env['a_job']}", headers=env["A_admin"]).status_code == 200


def test_keys_cli_create_list_revoke(tmp_path, capsys):
    assert keys_cli.main(["create", "--index", str(tmp_path), "--tenant", "t1", "--scopes", "search,ingest"]) == 0
    token = capsys.readouterr().out.strip()
    store = KeyStore(service_db_path(tmp_path))
    key = store.verify(token)
    assert key is not None and key.tenant == "t1" and key.scopes == ("ingest", "search")
    raw = sqlite3.connect(service_db_path(tmp_path)).execute("SELECT hash FROM api_keys").fetchone()[0]
    secret = token.split("_", 2)[2]  # vsk_<id>_<secret>; the secret itself may hold "_" (base64url)
    assert secret and token.encode() not in raw and secret.encode() not in raw  # stored hashed only
    assert keys_cli.main(["list", "--index", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["key_id"] for k in listed] == [key.key_id] and "hash" not in listed[0]
    assert keys_cli.main(["revoke", key.key_id, "--index", str(tmp_path)]) == 0
    assert store.verify(token) is None
    assert keys_cli.main(["revoke", key.key_id, "--index", str(tmp_path)]) == 2  # already revoked
    assert keys_cli.main(["create", "--index", str(tmp_path), "--tenant", "../x", "--scopes", "search"]) == 2
    assert keys_cli.main(["create", "--index", str(tmp_path), "--tenant", "t", "--scopes", "root"]) == 2
    store.close()


# -- search ------------------------------------------------------------------------------
def test_search_get_and_tenant_isolation(env):
    c = env["client"]
    ra = c.get("/v1/search", params={"q": "sign", "k": 10}, headers=env["A"])
    assert ra.status_code == 200, ra.text
    body = ra.json()
    assert {h["video_id"] for h in body["hits"]} == {env["a_vid"]}
    hit = body["hits"][0]
    assert hit["end"] > hit["start"] >= 0 and hit["thumbnail_url"] and hit["media_url"]
    # B's one video matches "sign" weakly: shown with min_confidence=low, hidden by default
    rb = c.get("/v1/search", params={"q": "sign", "k": 10, "min_confidence": "low"}, headers=env["B"])
    assert {h["video_id"] for h in rb.json()["hits"]} == {env["b_vid"]}
    assert rb.json()["hits"][0]["confidence"] in ("low", "medium", "high")
    hidden = c.get("/v1/search", params={"q": "sign", "k": 10}, headers=env["B"]).json()
    assert hidden["min_confidence"] == "medium"
    assert hidden["no_good_match"] == (not hidden["hits"]) and hidden["hidden"] + len(hidden["hits"]) == 1


def test_search_errors(env):
    c, A = env["client"], env["A"]
    _err(c.get("/v1/search", params={"q": "x", "k": 0}, headers=A), 400, "bad_input")
    _err(c.get("/v1/search", params={"q": "x", "k": 101}, headers=A), 400, "bad_input")
    _err(c.get("/v1/search", params={"q": "x", "per_video": 0}, headers=A), 400, "bad_input")
    _err(c.get("/v1/search", params={"q": "x", "min_confidence": "sure"}, headers=A), 400, "bad_input")
    _err(c.get("/v1/search", params={"q": "a" * 1001}, headers=A), 400, "bad_input")
    _err(c.get("/v1/search", params={"q": 'open "quote'}, headers=A), 400, "bad_query")
    _err(c.get("/v1/search", headers=A), 400, "bad_input")
    _err(c.post("/v1/search", headers={**A, "Content-Type": "text/plain"}, content=b"q"), 415,
         "unsupported_content_type")
    _err(c.post("/v1/search", headers=A, json={"q": ""}), 400, "bad_input")
    _err(c.post("/v1/search", headers=A, json={"q": "x", "k": "many"}), 400, "bad_input")
    _err(c.post("/v1/search", headers={**A, "Content-Type": "application/json"}, content=b"{not json"), 400,
         "bad_input")


def test_search_post_json_and_image(env):
    from PIL import Image

    c, A = env["client"], env["A"]
    r = c.post("/v1/search", headers=A, json={"q": "sign", "k": 5})
    assert r.status_code == 200 and {h["video_id"] for h in r.json()["hits"]} == {env["a_vid"]}
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (250, 250, 250)).save(buf, format="PNG")
    r = c.post("/v1/search", headers=A, data={"k": "3"}, files={"image": ("white.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["intent"]["label"] == "image"
    assert {h["video_id"] for h in r.json()["hits"]} <= {env["a_vid"]}
    _err(c.post("/v1/search", headers=A, files={"image": ("x.png", b"not an image at all", "image/png")}), 415,
         "bad_media")


def test_one_query_length_limit_for_the_api_and_the_parser(env):
    """The API takes exactly the queries the parser takes (MAX_QUERY_CHARS), by GET, JSON
    and multipart: the longest passes the edge and parses; one more is refused at the edge."""
    from query.parse import MAX_QUERY_CHARS

    c, A = env["client"], env["A"]
    longest, over = "sign " * (MAX_QUERY_CHARS // 5), "a" * (MAX_QUERY_CHARS + 1)
    assert len(longest) == MAX_QUERY_CHARS
    assert c.get("/v1/search", params={"q": longest}, headers=A).status_code == 200
    assert c.post("/v1/search", headers=A, json={"q": longest}).status_code == 200
    assert c.post("/v1/search", headers=A, data={"q": longest}, files={"x": ("x", b"")}).status_code == 200
    for r in (c.get("/v1/search", params={"q": over}, headers=A), c.post("/v1/search", headers=A, json={"q": over}),
              c.post("/v1/search", headers=A, data={"q": over}, files={"x": ("x", b"")})):
        _err(r, 400, "bad_input")
        assert str(MAX_QUERY_CHARS) in r.json()["error"]["message"]
    spec = c.get("/openapi.json").json()
    q = next(p for p in spec["paths"]["/v1/search"]["get"]["parameters"] if p["name"] == "q")
    assert q["schema"]["maxLength"] == MAX_QUERY_CHARS


# -- videos, segments, thumbnails, media ---------------------------------------------------
def test_videos_segments_and_cross_tenant_404(env):
    c, A, B, a_vid, b_vid = env["client"], env["A"], env["B"], env["a_vid"], env["b_vid"]
    vids = c.get("/v1/videos", headers=A).json()["videos"]
    assert [v["video_id"] for v in vids] == [a_vid]
    assert vids[0]["title"] == "sign.mp4" and "tenant" not in vids[0]
    assert c.get(f"/v1/videos/{a_vid}", headers=A).json()["duration"] == pytest.approx(2.0, abs=0.2)
    body = c.get(f"/v1/videos/{a_vid}/segments", headers=A).json()
    segs = body["segments"]
    assert body["total"] == len(segs) and body["next_cursor"] is None and body["video_id"] == a_vid
    assert segs and segs[0]["start"] == 0.0 and segs[-1]["end"] > segs[0]["start"]
    seg = segs[0]["segment_id"]
    # tenant B: 404 (not 403) on everything of A's, the same as for a missing id
    for path in (f"/v1/videos/{a_vid}", f"/v1/videos/{a_vid}/segments", f"/v1/videos/{a_vid}/segments/{seg}/thumbnail",
                 f"/v1/videos/{a_vid}/media", f"/v1/jobs/{env['a_job']}", "/v1/videos/vdoesnotexist",
                 "/v1/jobs/jdoesnotexist"):
        _err(c.get(path, headers=B), 404, "not_found")
    _err(c.delete(f"/v1/videos/{a_vid}", headers=B), 404, "not_found")
    assert c.get(f"/v1/videos/{a_vid}", headers=A).status_code == 200  # still there
    _err(c.get(f"/v1/videos/{a_vid}/segments/999999/thumbnail", headers=A), 404, "not_found")
    _err(c.get(f"/v1/videos/{b_vid}/segments", headers=A), 404, "not_found")


def test_thumbnail_jpeg_and_signed_links(env):
    from PIL import Image

    c, A, B = env["client"], env["A"], env["B"]
    segs = c.get(f"/v1/videos/{env['a_vid']}/segments", headers=A).json()["segments"]
    r = c.get(f"/v1/videos/{env['a_vid']}/segments/{segs[0]['segment_id']}/thumbnail", headers=A)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(r.content))
    assert im.format == "JPEG" and max(im.size) <= 320
    # the signed link in the listing works without a key ...
    assert c.get(segs[0]["thumbnail_url"]).content == r.content
    # ... but not tampered, nor for another video
    url = segs[0]["thumbnail_url"]
    _err(c.get(url[:-3] + ("000" if not url.endswith("000") else "111")), 401, "unauthorized")
    b_link = c.get(f"/v1/videos/{env['b_vid']}", headers=B).json()["media_url"]
    token = b_link.split("t=")[1]
    _err(c.get(f"/v1/videos/{env['a_vid']}/media?t={token}"), 401, "unauthorized")
    signer = LinkSigner(b"k" * 32, ttl_s=10)
    tok = signer.sign("alpha", "v1", now=1000.0)
    assert signer.verify(tok, "v1", "alpha", now=1005.0)
    assert not signer.verify(tok, "v1", "alpha", now=1011.0)  # expired
    assert not signer.verify(tok, "v1", "beta", now=1005.0)


def test_media_full_and_range(env):
    c, A = env["client"], env["A"]
    data = env["a_clip"].read_bytes()
    full = c.get(f"/v1/videos/{env['a_vid']}/media", headers=A)
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "video/mp4" and full.headers.get("accept-ranges") == "bytes"
    part = c.get(f"/v1/videos/{env['a_vid']}/media", headers={**A, "Range": "bytes=100-299"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-299/{len(data)}"
    assert part.content == data[100:300]
    tail = c.get(f"/v1/videos/{env['a_vid']}/media", headers={**A, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    bad = c.get(f"/v1/videos/{env['a_vid']}/media", headers={**A, "Range": f"bytes={len(data) + 10}-"})
    assert bad.status_code == 416
    assert bad.json()["error"]["code"] == "range_not_satisfiable"
    assert bad.headers["content-range"] == f"bytes */{len(data)}"
    for header in ("bytes=5-2", "bytes=-", "pages=1-2", "bytes=a-b,c-d", "bytes", "bytes=0-1,5-2"):
        r = c.get(f"/v1/videos/{env['a_vid']}/media", headers={**A, "Range": header})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_range", header
    # multi-range requests are Starlette's to serve: their errors are JSON too
    r = c.get(f"/v1/videos/{env['a_vid']}/media", headers={**A, "Range": f"bytes=0-1,{len(data) + 5}-"})
    assert r.status_code == 416 and r.json()["error"]["code"] == "range_not_satisfiable", r.text
    assert r.headers["content-range"] == f"bytes */{len(data)}"
    two = c.get(f"/v1/videos/{env['a_vid']}/media", headers={**A, "Range": "bytes=0-1,10-11"})
    assert two.status_code == 206 and two.headers["content-type"].startswith("multipart/byteranges")
    # ... and so are the web page's static files
    size = len(c.get("/static/app.js").content)
    r = c.get("/static/app.js", headers={"Range": f"bytes={size + 1}-"})
    assert r.status_code == 416 and r.json()["error"]["code"] == "range_not_satisfiable", r.text
    r = c.get("/static/app.js", headers={"Range": "bytes=9-1"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_range", r.text


# -- ingest errors -----------------------------------------------------------------------
def test_ingest_upload_refusals(env, tmp_path):
    c, A = env["client"], env["A"]
    notes = synth.make_not_video(tmp_path)
    _err(c.post("/v1/ingest", headers=A, files={"file": ("movie.mp4", notes.read_bytes(), "video/mp4")}), 415,
         "bad_media")
    _err(c.post("/v1/ingest", headers=A, files={"file": ("empty.mp4", b"", "video/mp4")}), 415, "bad_media")
    still = synth.make_still_image(tmp_path)
    _err(c.post("/v1/ingest", headers=A, files={"file": ("still.mp4", still.read_bytes(), "video/mp4")}), 415,
         "bad_media")
    _err(c.post("/v1/ingest", headers=A, files={"file": ("big.mp4", b"\0" * 300_000, "video/mp4")}), 413,
         "too_large")
    _err(c.post("/v1/ingest", headers=A, data={"title": "no file"}, files={"other": ("a", b"a")}), 400, "bad_input")
    _err(c.post("/v1/ingest", headers={**A, "Content-Type": "text/plain"}, content=b"hello"), 415,
         "unsupported_content_type")
    # nothing refused was left in the uploads folder
    leftovers = [p.name for p in (env["idx"] / "uploads" / "alpha").iterdir()]
    assert len(leftovers) == 1 and leftovers[0].endswith(".mp4"), leftovers


def test_ingest_path_traversal_and_roots(env, tmp_path):
    c, A, root = env["client"], env["A"], env["root"]
    outside = synth.make_no_audio_clip(tmp_path, name="outside.mp4")
    _err(c.post("/v1/ingest", headers=A, json={"path": str(outside)}), 403, "path_not_allowed")
    _err(c.post("/v1/ingest", headers=A, json={"path": f"{root}/../{tmp_path.name}/outside.mp4"}), 403,
         "path_not_allowed")
    _err(c.post("/v1/ingest", headers=A, json={"path": f"{root}/../../../../../../etc/passwd"}), 403,
         "path_not_allowed")
    link = root / "escape.mp4"
    link.symlink_to(outside)
    _err(c.post("/v1/ingest", headers=A, json={"path": str(link)}), 403, "path_not_allowed")
    link.unlink()
    _err(c.post("/v1/ingest", headers=A, json={"path": str(root / "missing.mp4")}), 404, "not_found")
    _err(c.post("/v1/ingest", headers=A, json={"path": "relative/clip.mp4"}), 400, "bad_input")
    _err(c.post("/v1/ingest", headers=A, json={"path": str(root)}), 400, "not_a_file")
    os.mkfifo(root / "pipe.mp4")  # never opened: a read would block
    _err(c.post("/v1/ingest", headers=A, json={"path": str(root / "pipe.mp4")}), 400, "not_a_file")
    (root / "pipe.mp4").unlink()
    (root / "notes.mp4").write_text("not a video")
    _err(c.post("/v1/ingest", headers=A, json={"path": str(root / "notes.mp4")}), 415, "bad_media")
    _err(c.post("/v1/ingest", headers=A, json={"nopath": 1}), 400, "bad_input")


def test_error_messages_never_show_server_paths(env, tmp_path, monkeypatch):
    """Upload temporary names, the uploads folder and search-image temporary files stay
    on the server: the messages name the client's own file instead."""
    import tempfile

    from engine.errors import MediaError
    import indexer.mapper as mapper

    c, A = env["client"], env["A"]
    private = (str(env["idx"]), str(env["idx"].resolve()), ".upload-", tempfile.gettempdir() + "/tmp")
    notes = synth.make_not_video(tmp_path)
    r = c.post("/v1/ingest", headers=A, files={"file": ("holiday.mp4", notes.read_bytes(), "video/mp4")})
    _err(r, 415, "bad_media")
    msg = r.json()["error"]["message"]
    assert "'holiday.mp4'" in msg and not any(p in msg for p in private), msg
    r = c.post("/v1/search", headers=A, files={"image": ("cat.png", b"not an image", "image/png")})
    _err(r, 415, "bad_media")
    msg = r.json()["error"]["message"]
    assert "the uploaded image cannot be read" in msg and not any(p in msg for p in private), msg

    def failing(source, *args, **kw):  # an analysis failure that names the stored upload
        raise MediaError(f"{source}: the decoder gave up at frame 3")

    monkeypatch.setattr(mapper, "analyse", failing)
    clip = synth.make_no_audio_clip(tmp_path, seconds=1.2, name="up2.mp4")
    job = c.post("/v1/ingest", headers=A, files={"file": ("up2.mp4", clip.read_bytes(), "video/mp4")}).json()
    j = _wait_job(c, job["job_id"], A)
    msg = j["error"]["message"]
    assert j["status"] == "failed" and "the decoder gave up at frame 3" in msg, j
    assert "<server path>" in msg and not any(p in msg for p in private), msg


def test_allowed_roots_are_per_tenant(tmp_path, tools):
    """A tenant ingests by path only from its own roots: never from another tenant's
    root, nor the index folder (every tenant's uploads), nor the default tenant's."""
    idx = tmp_path / "idx"
    roots = {t: tmp_path / f"root_{t}" for t in ("alpha", "beta", "local")}
    for r in roots.values():
        r.mkdir()
    b_clip = synth.make_no_audio_clip(roots["beta"], name="b.mp4")
    l_clip = synth.make_no_audio_clip(roots["local"], seconds=2.5, name="l.mp4")
    store = KeyStore(service_db_path(idx))
    A, B = (_bearer(store.create(t, "search,ingest")[0]) for t in ("alpha", "beta"))
    store.close()
    settings = Settings(rate=0, ingest_speech=False, ingest_ocr=False, warm_models=False,
                        allowed_roots=(str(roots["local"]),),
                        tenant_roots={"alpha": (str(roots["alpha"]), str(tmp_path)), "beta": (str(roots["beta"]),)})
    with TestClient(create_app(idx, settings)) as c:
        jb = _wait_job(c, c.post("/v1/ingest", headers=B, json={"path": str(b_clip)}).json()["job_id"], B)
        assert jb["status"] == "done", jb
        # alpha's roots include tmp_path, which holds the index folder: its uploads (every
        # tenant's) are still never a path-ingest source
        up = c.post("/v1/ingest", headers=B, files={"file": ("u.mp4", l_clip.read_bytes(), "video/mp4")}).json()
        ju = _wait_job(c, up["job_id"], B)
        stored = next((idx / "uploads" / "beta").glob("*.mp4"))
        _err(c.post("/v1/ingest", headers=A, json={"path": str(stored)}), 403, "path_not_allowed")
        # the default tenant's (bare --allow-root) folder is not a keyed tenant's
        _err(c.post("/v1/ingest", headers=B, json={"path": str(l_clip)}), 403, "path_not_allowed")
        _err(c.post("/v1/ingest", headers=B, json={"path": str(roots["alpha"] / "x.mp4")}), 403, "path_not_allowed")
        assert ju["status"] == "done"
    narrow = Settings(rate=0, warm_models=False, tenant_roots={"alpha": (str(roots["alpha"]),),
                                                               "beta": (str(roots["beta"]),)})
    with TestClient(create_app(idx, narrow)) as c:
        r = c.post("/v1/ingest", headers=A, json={"path": str(b_clip)})
        _err(r, 403, "path_not_allowed")
        assert "'alpha'" in r.json()["error"]["message"]


def test_allow_root_flag_parsing(tmp_path):
    from api.settings import parse_allow_roots
    from engine.errors import InputError

    a, b = tmp_path / "a", tmp_path / "b=c"
    a.mkdir(), b.mkdir()
    default, per = parse_allow_roots([str(a), f"acme={a}", f"beta={b}", str(b)])
    assert default == (str(a), str(b)) and per == {"acme": (str(a),), "beta": (str(b),)}
    s = Settings(allowed_roots=default, tenant_roots=per)
    assert s.roots_for("default") == (str(a), str(b)) and s.roots_for("acme") == (str(a),)
    assert s.roots_for("nobody") == ()
    for bad, needle in ((f"bad tenant!={a}", "not a valid tenant name"), ("acme=", "no folder"),
                        (f"acme={tmp_path / 'missing'}", "is not a folder")):
        with pytest.raises(InputError, match=needle):
            parse_allow_roots([bad])


def test_path_ingest_off_without_roots(tmp_path, tools):
    clip = synth.make_no_audio_clip(tmp_path, name="c.mp4")
    with TestClient(create_app(tmp_path / "idx", Settings(rate=0, warm_models=False))) as c:
        _err(c.post("/v1/ingest", json={"path": str(clip)}), 403, "path_not_allowed")


# -- concurrency, delete, jobs ----------------------------------------------------------------
def test_search_runs_during_ingest_and_sees_result_after(env, monkeypatch):
    """An ingest job is held between analysis and commit: searches keep answering and do
    not see the new video; once released and committed, searches see it, no restart."""
    import indexer.mapper as mapper  # the jobs' analysis step (looked up at call time)

    c, A = env["client"], env["A"]
    real = mapper.analyse
    reached, release = threading.Event(), threading.Event()

    def held(*args, **kw):
        video = real(*args, **kw)
        reached.set()
        release.wait(120)
        return video

    monkeypatch.setattr(mapper, "analyse", held)
    clip = synth.make_text_clip(env["root"], "OPEN SALE", name="sale.mp4", size=(320, 120), fontsize=40)
    job = c.post("/v1/ingest", headers=A, json={"path": str(clip), "title": "sale"}).json()["job_id"]
    try:
        assert reached.wait(120)
        assert c.get(f"/v1/jobs/{job}", headers=A).json()["status"] == "running"
        results: list[tuple[int, set]] = []

        def searcher() -> None:
            for _ in range(3):
                r = c.get("/v1/search", params={"q": "sale sign", "k": 20}, headers=A)
                results.append((r.status_code, {h["video_id"] for h in r.json().get("hits", [])}))

        threads = [threading.Thread(target=searcher) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 9 and all(s == 200 for s, _ in results)
        assert all(ids <= {env["a_vid"]} for _, ids in results)  # nothing half-written is visible
    finally:
        release.set()
    done = _wait_job(c, job, A)
    assert done["status"] == "done" and done["result"] == "indexed" and done["progress"] == 1.0
    r = c.get("/v1/search", params={"q": "sale sign", "k": 20}, headers=A)
    assert done["video_id"] in {h["video_id"] for h in r.json()["hits"]}
    # same file again: unchanged, no new video
    again = c.post("/v1/ingest", headers=A, json={"path": str(clip)}).json()["job_id"]
    j2 = _wait_job(c, again, A)
    assert j2["result"] == "unchanged" and j2["video_id"] == done["video_id"]
    # delete it: gone from reads and search; deleting again is 404
    d = c.delete(f"/v1/videos/{done['video_id']}", headers=A)
    assert d.status_code == 200 and d.json()["deleted"] == done["video_id"]
    _err(c.get(f"/v1/videos/{done['video_id']}", headers=A), 404, "not_found")
    r = c.get("/v1/search", params={"q": "sale sign", "k": 20}, headers=A)
    assert done["video_id"] not in {h["video_id"] for h in r.json()["hits"]}
    _err(c.delete(f"/v1/videos/{done['video_id']}", headers=A), 404, "not_found")
    assert clip.exists()  # a path-ingested file is the customer's own: never removed


def test_delete_removes_uploaded_copy(env, tmp_path):
    c, B = env["client"], env["B"]
    clip = synth.make_no_audio_clip(tmp_path, seconds=1.5, name="up.mp4")
    job = c.post("/v1/ingest", headers=B, files={"file": ("up.mp4", clip.read_bytes(), "video/mp4")}).json()
    j = _wait_job(c, job["job_id"], B)
    assert j["status"] == "done", j
    src = c.get(f"/v1/videos/{j['video_id']}", headers=B).json()["source"]
    assert Path(src).is_file() and Path(src).parent == env["idx"] / "uploads" / "beta"
    thumbs = env["idx"] / "thumbs" / j["video_id"]
    assert list(thumbs.glob("*.jpg"))  # made at ingest
    assert c.delete(f"/v1/videos/{j['video_id']}", headers=B).status_code == 200
    assert not Path(src).exists() and not thumbs.exists()


def test_failed_job_reports_error(env, tmp_path):
    """A file that probes but fails later is a failed job with a code, not a crash."""
    c, A = env["client"], env["A"]
    clip = synth.make_no_audio_clip(env["root"], name="vanishing.mp4")
    r = c.post("/v1/ingest", headers=A, json={"path": str(clip)})
    # the file disappears before the worker gets to it
    clip.unlink()
    j = _wait_job(c, r.json()["job_id"], A)
    if j["status"] == "done":  # the worker was faster than the unlink: nothing to check
        pytest.skip("the job finished before the file was removed")
    assert j["status"] == "failed" and j["error"]["code"] and j["error"]["message"]


# -- metrics, logs -----------------------------------------------------------------------
def test_metrics_and_access_log(env, caplog):
    c = env["client"]
    with caplog.at_level(logging.INFO, logger="vidseek.access"):
        c.get("/v1/videos", headers=env["A"])
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "vidseek.access"]
    assert lines and lines[-1]["route"] == "/v1/videos" and lines[-1]["status"] == 200
    assert lines[-1]["tenant"] == "alpha" and lines[-1]["key_id"]
    _err(c.get("/metrics", headers=env["A_read"]), 403, "forbidden")
    _err(c.get("/metrics"), 401, "unauthorized")
    m = c.get("/metrics", headers=env["A_admin"])
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert 'vidseek_http_requests_total{method="GET",route="/v1/videos",status="200"}' in text
    assert 'vidseek_http_request_seconds_bucket{method="GET",route="/v1/search",le="+Inf"}' in text
    assert "vidseek_ingest_queue_length 0" in text
    videos = [ln for ln in text.splitlines() if ln.startswith("vidseek_index_videos ")]
    assert videos and int(float(videos[0].split()[1])) >= 2


# -- modes and limits -------------------------------------------------------------------------
def test_local_mode_and_non_loopback(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="vidseek.api"):
        with TestClient(create_app(tmp_path / "a", Settings(rate=0, warm_models=False))) as c:
            assert c.get("/readyz").json()["local_mode"] is True
            r = c.get("/v1/videos")
            assert r.status_code == 200 and r.json()["videos"] == []
    assert any("LOCAL MODE" in r.getMessage() for r in caplog.records)
    with TestClient(create_app(tmp_path / "b", Settings(host="0.0.0.0", rate=0, warm_models=False))) as c:
        _err(c.get("/v1/videos"), 401, "unauthorized")


def test_rate_limit_429(tmp_path):
    with TestClient(create_app(tmp_path / "idx", Settings(rate=0.01, burst=3, warm_models=False))) as c:
        codes = [c.get("/v1/videos").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/v1/videos")
        _err(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
    lim = RateLimiter(rate=2.0, burst=2)
    assert [lim.allow("k", now=0.0)[0] for _ in range(3)] == [True, True, False]
    assert lim.allow("k", now=0.5)[0] is True  # one token back after 0.5 s at 2/s
    assert lim.allow("other", now=0.5)[0] is True  # buckets are per key


# -- shutdown and restart ---------------------------------------------------------------------
def test_shutdown_abandons_in_flight_job_and_restart_requeues(tmp_path, tools, monkeypatch):
    import indexer.mapper as mapper

    root = tmp_path / "root"
    root.mkdir()
    clip = synth.make_no_audio_clip(root, name="slow.mp4")
    idx = tmp_path / "idx"
    settings = Settings(rate=0, ingest_speech=False, ingest_ocr=False, allowed_roots=(str(root),),
                        shutdown_grace_s=0.2, warm_models=False)
    real = mapper.analyse
    reached = threading.Event()

    def stuck(source, content_hash, config, options, meta=None, progress=None, **kw):
        reached.set()
        for _ in range(6000):  # a long stage that reports progress: stops at shutdown
            progress("slow", 0.5)
            time.sleep(0.01)
        return real(source, content_hash, config, options, meta, progress, **kw)

    monkeypatch.setattr(mapper, "analyse", stuck)
    with TestClient(create_app(idx, settings)) as c:
        job = c.post("/v1/ingest", json={"path": str(clip)}).json()["job_id"]
        assert reached.wait(60)
    row = sqlite3.connect(service_db_path(idx)).execute("SELECT status FROM jobs WHERE job_id = ?", (job,)).fetchone()
    assert row[0] == "abandoned"
    monkeypatch.setattr(mapper, "analyse", real)
    with TestClient(create_app(idx, settings)) as c:
        j = _wait_job(c, job, {})
        assert j["status"] == "done" and j["result"] == "indexed"
        assert [v["video_id"] for v in c.get("/v1/videos").json()["videos"]] == [j["video_id"]]


def test_writer_locked_elsewhere_gives_409(tmp_path, tools):
    from api.jobs import open_or_create_writer

    root = tmp_path / "root"
    root.mkdir()
    clip = synth.make_no_audio_clip(root, name="c.mp4")
    idx = tmp_path / "idx"
    other = open_or_create_writer(idx)  # another "process" holds the index's writer lock
    try:
        with TestClient(create_app(idx, Settings(rate=0, allowed_roots=(str(root),), warm_models=False))) as c:
            assert c.get("/readyz").json()["writer"] is False
            assert c.get("/v1/search", params={"q": "anything"}).status_code == 200  # reads still serve
            svc = c.app.state.svc
            assert svc.reader is not None and svc.index() is svc.reader  # the read-only handle serves
            _err(c.delete("/v1/videos/vnothere"), 409, "index_locked")
            job = c.post("/v1/ingest", json={"path": str(clip)}).json()["job_id"]
            j = _wait_job(c, job, {})
            assert j["status"] == "failed" and j["error"]["code"] == "index_locked"
    finally:
        other.close()
