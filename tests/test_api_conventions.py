"""API conventions for B2B clients (issue 22): rate limits and their headers, local mode
without a limit, totals and cursors, search pages, Idempotency-Key, the jobs list,
metadata on ingest and PATCH, signed and retried webhooks against a local receiver,
offline /docs with a bearer scheme, and the owner token of server.json."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from api.app import Settings, create_app  # noqa: E402
from api.auth import KeyStore, RateLimiter, service_db_path  # noqa: E402
from api.conventions import decode_cursor, encode_cursor  # noqa: E402
from api.webhooks import SIGNATURE_HEADER, WebhookConfig, sign, verify_signature  # noqa: E402
from tests import synth  # noqa: E402

FAST = dict(ingest_speech=False, ingest_ocr=False)


def _wait_job(client, job_id: str, headers: dict | None = None) -> dict:
    for _ in range(3000):  # a generous cap, not a timing assertion
        j = client.get(f"/v1/jobs/{job_id}", headers=headers or {}).json()
        if j["status"] in ("done", "failed", "abandoned"):
            return j
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not finish: {j}")


# -- rate limits ------------------------------------------------------------------------
def test_local_mode_is_not_rate_limited_by_default_and_says_so_in_headers(tmp_path):
    with TestClient(create_app(tmp_path / "idx", Settings(warm_models=False))) as c:
        codes = {c.get("/v1/videos").status_code for _ in range(60)}  # more than the burst of 40
        assert codes == {200}
        r = c.get("/v1/videos")
        assert r.headers["x-ratelimit-policy"] == "none"
        assert c.get("/healthz").headers["x-ratelimit-policy"] == "none"  # every response


def test_keys_get_the_default_limit_and_rate_zero_turns_it_off(tmp_path):
    store = KeyStore(service_db_path(tmp_path / "a"))
    key, _ = store.create("acme", "search")
    store.close()
    H = {"Authorization": f"Bearer {key}"}
    # a slow refill, so that a busy machine's slow requests cannot earn a token back mid-test
    with TestClient(create_app(tmp_path / "a", Settings(warm_models=False, burst=5, rate=0.01))) as c:
        codes = [c.get("/v1/videos", headers=H).status_code for _ in range(6)]
        assert codes[:5] == [200] * 5 and codes[5] == 429
        r = c.get("/v1/videos", headers=H)
        assert r.headers["x-ratelimit-limit"] == "5" and r.headers["x-ratelimit-remaining"] == "0"
        assert int(r.headers["x-ratelimit-reset"]) >= 1
        # the headers are on responses of routes that take no token from the bucket, too
        assert c.get("/healthz", headers=H).headers["x-ratelimit-limit"] == "5"
    store = KeyStore(service_db_path(tmp_path / "b"))
    key, _ = store.create("acme", "search")
    store.close()
    with TestClient(create_app(tmp_path / "b", Settings(warm_models=False, burst=5, rate=0))) as c:
        codes = {c.get("/v1/videos", headers={"Authorization": f"Bearer {key}"}).status_code for _ in range(20)}
        assert codes == {200}


def test_rate_flag_zero_reaches_the_settings():
    from api.app import settings_from_args
    from api.cli import build_parser

    off = settings_from_args(build_parser().parse_args(["serve", "--index", "x", "--rate", "0"]))
    assert off.rate == 0 and off.rate_for(False) == 0 and off.rate_for(True) == 0  # off, not the default
    default = settings_from_args(build_parser().parse_args(["serve", "--index", "x"]))
    assert default.rate is None and default.rate_for(True) == 0 and default.rate_for(False) == 20
    assert default.advertise is True  # `vidseek serve` writes server.json
    five = settings_from_args(build_parser().parse_args(["serve", "--index", "x", "--rate", "5"]))
    assert five.rate_for(True) == 5  # asked for: applies in local mode too


def test_rate_limiter_state_does_not_take_tokens():
    lim = RateLimiter(rate=1.0, burst=3)
    assert lim.state("k", now=0.0) == {"limit": 3.0, "remaining": 3.0, "reset": 0.0, "rate": 1.0}
    lim.allow("k", now=0.0)
    assert lim.state("k", now=0.0)["remaining"] == 2.0
    assert lim.state("k", now=0.0)["remaining"] == 2.0
    assert lim.allow("k", now=0.0, rate=0) == (True, 0.0)  # a rate of 0 passed per call: no limit
    assert lim.state("k", rate=0) is None


# -- a service with videos -----------------------------------------------------------------
@pytest.fixture(scope="module")
def svc(tmp_path_factory, tools):
    base = tmp_path_factory.mktemp("conv")
    root = base / "root"
    root.mkdir()
    clips = [synth.make_no_audio_clip(root, seconds=2.0 + i, name=f"c{i}.mp4") for i in range(3)]
    app = create_app(base / "idx", Settings(tenant_roots={"default": (str(root),)}, **FAST))
    with TestClient(app) as client:
        jobs = [client.post("/v1/ingest", json={"path": str(p)}).json()["job_id"] for p in clips]
        done = [_wait_job(client, j) for j in jobs]
        assert all(j["status"] == "done" for j in done), done
        yield {"client": client, "root": root, "clips": clips, "vids": [j["video_id"] for j in done], "app": app}


def test_lists_return_total_and_a_cursor(svc):
    c = svc["client"]
    r = c.get("/v1/videos", params={"limit": 2}).json()
    assert r["total"] == 3 and len(r["videos"]) == 2 and r["next_cursor"]
    r2 = c.get("/v1/videos", params={"limit": 2, "cursor": r["next_cursor"]}).json()
    assert len(r2["videos"]) == 1 and r2["next_cursor"] is None and r2["offset"] == 2
    ids = {v["video_id"] for v in r["videos"]} | {v["video_id"] for v in r2["videos"]}
    assert ids == set(svc["vids"])
    bad = c.get("/v1/videos", params={"cursor": "not-a-cursor!"})
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]["message"]
    assert decode_cursor(encode_cursor(17)) == 17


def test_jobs_list_with_filters_and_paging(svc):
    c = svc["client"]
    r = c.get("/v1/jobs", params={"limit": 2}).json()
    assert r["total"] >= 3 and len(r["jobs"]) == 2 and r["next_cursor"]
    assert r["jobs"][0]["created_at"] >= r["jobs"][1]["created_at"]  # newest first
    done = c.get("/v1/jobs", params={"status": "done", "limit": 100}).json()
    assert done["total"] == len(done["jobs"]) and all(j["status"] == "done" for j in done["jobs"])
    bad = c.get("/v1/jobs", params={"status": "finished"})
    assert bad.status_code == 400 and "done" in bad.json()["error"]["message"]


def test_search_pages_with_offset_and_cursor(svc):
    c = svc["client"]  # every moment (min_confidence=low): the synthetic clips are weak matches
    full = c.get("/v1/search", params={"q": "video", "k": 3, "per_video": 1, "min_confidence": "low"}).json()
    assert len(full["hits"]) == 3
    p1 = c.get("/v1/search", params={"q": "video", "k": 2, "min_confidence": "low"}).json()
    assert p1["offset"] == 0 and p1["next_cursor"]
    p2 = c.get("/v1/search", params={"q": "video", "k": 2, "cursor": p1["next_cursor"], "min_confidence": "low"}).json()
    assert p2["offset"] == 2 and len(p2["hits"]) == 1 and p2["next_cursor"] is None
    key = lambda h: (h["video_id"], h["start"])  # noqa: E731
    assert [key(h) for h in p1["hits"] + p2["hits"]] == [key(h) for h in full["hits"]]
    p2b = c.post("/v1/search", json={"q": "video", "k": 2, "offset": 2, "min_confidence": "low"}).json()
    assert [key(h) for h in p2b["hits"]] == [key(h) for h in p2["hits"]]
    deep = c.get("/v1/search", params={"q": "video", "k": 10, "offset": 995})
    assert deep.status_code == 400 and "offset + k" in deep.json()["error"]["message"]


def test_idempotency_key_returns_the_first_job(svc):
    c = svc["client"]
    body = {"path": str(svc["clips"][0]), "title": "same request"}
    r1 = c.post("/v1/ingest", json=body, headers={"Idempotency-Key": "abc-1"})
    r2 = c.post("/v1/ingest", json=body, headers={"Idempotency-Key": "abc-1"})
    assert r1.status_code == r2.status_code == 202
    assert r1.json()["job_id"] == r2.json()["job_id"]
    assert r2.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in r1.headers
    other = c.post("/v1/ingest", json={**body, "title": "another"}, headers={"Idempotency-Key": "abc-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    r3 = c.post("/v1/ingest", json=body)  # no key: a new job each time
    assert r3.json()["job_id"] != r1.json()["job_id"]
    for j in (r1.json()["job_id"], r3.json()["job_id"]):
        _wait_job(c, j)


def test_ingest_takes_full_metadata_and_patch_changes_it(svc):
    c = svc["client"]
    clip = synth.make_no_audio_clip(svc["root"], seconds=2.5, name="meta.mp4")
    r = c.post("/v1/ingest", json={"path": str(clip), "title": "Harbour", "description": "boats at dusk",
                                   "tags": ["drone", "harbour"], "people": ["Ada Lovelace"],
                                   "extra": {"license": "CC-BY"}})
    j = _wait_job(c, r.json()["job_id"])
    assert j["status"] == "done", j
    vid = j["video_id"]
    v = c.get(f"/v1/videos/{vid}").json()
    assert (v["title"], v["description"], v["tags"], v["people"], v["extra"]) == (
        "Harbour", "boats at dusk", ["drone", "harbour"], ["Ada Lovelace"], {"license": "CC-BY"})
    assert c.get("/v1/search", params={"q": "tag:zeppelin"}).json()["hits"] == []
    # the same metadata again: nothing to do
    same = c.patch(f"/v1/videos/{vid}", json={"tags": ["drone", "harbour"]})
    assert same.status_code == 200 and same.json()["changed"] is False
    p = c.patch(f"/v1/videos/{vid}", json={"tags": ["zeppelin"], "extra": {"license": None, "shot": "2024"}})
    assert p.status_code == 202 and p.json()["changed"] is True
    assert _wait_job(c, p.json()["job_id"])["result"] == "replaced"
    v = c.get(f"/v1/videos/{vid}").json()  # same content: same id
    assert v["tags"] == ["zeppelin"] and v["title"] == "Harbour" and v["extra"] == {"shot": "2024"}
    hits = c.get("/v1/search", params={"q": "tag:zeppelin"}).json()["hits"]
    assert [h["video_id"] for h in hits] == [vid]
    # multipart: tags as comma-separated text, extra as JSON
    up = synth.make_no_audio_clip(svc["root"], seconds=1.5, name="up.mp4")
    r = c.post("/v1/ingest", files={"file": ("up.mp4", up.read_bytes(), "video/mp4")},
               data={"description": "uploaded", "tags": "a, b", "people": '["Grace"]', "extra": '{"k": 1}'})
    j = _wait_job(c, r.json()["job_id"])
    v = c.get(f"/v1/videos/{j['video_id']}").json()
    assert (v["title"], v["description"], v["tags"], v["people"], v["extra"]) == (
        "up.mp4", "uploaded", ["a", "b"], ["Grace"], {"k": 1})
    bad = c.post("/v1/ingest", files={"file": ("up.mp4", up.read_bytes(), "video/mp4")}, data={"extra": "{nope"})
    assert bad.status_code == 400 and "extra" in bad.json()["error"]["message"]


def test_docs_are_served_offline_with_a_bearer_scheme(svc):
    c = svc["client"]
    page = c.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    js = c.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    spec = c.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {**spec["components"]["securitySchemes"]["bearer"],
                                                              "type": "http", "scheme": "bearer"}
    assert {"bearer": []} in spec["security"]
    assert "admin" in spec["info"]["description"]
    assert "/v1/jobs" in spec["paths"] and "patch" in spec["paths"]["/v1/videos/{video_id}"]


def test_owner_token_ingests_any_readable_path_and_a_wrong_one_is_refused(svc, tmp_path):
    c = svc["client"]
    state = svc["app"].state.svc
    outside = synth.make_no_audio_clip(tmp_path, seconds=1.5, name="outside.mp4")  # not under an allowed root
    r = c.post("/v1/ingest", json={"path": str(outside)}, headers={"X-Vidseek-Owner": state.owner_token})
    assert r.status_code == 202, r.text
    assert _wait_job(c, r.json()["job_id"])["status"] == "done"
    bad = c.post("/v1/ingest", json={"path": str(outside)}, headers={"X-Vidseek-Owner": "x" * 43})
    assert bad.status_code == 401


# -- webhooks --------------------------------------------------------------------------------
class _Receiver:
    """A local HTTP receiver that fails the first ``fail`` deliveries with 500."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.got: list[tuple[dict, bytes]] = []
        me = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                me.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(500 if len(me.got) <= me.fail else 204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_webhook_is_signed_retried_and_delivered(tmp_path, tools):
    root = tmp_path / "root"
    root.mkdir()
    clip = synth.make_no_audio_clip(root, seconds=2.0, name="w.mp4")
    rec = _Receiver(fail=2)
    secret = b"s3cret-for-the-test-0123456789"
    settings = Settings(tenant_roots={"default": (str(root),)}, warm_models=False,
                        webhook=WebhookConfig(rec.url, attempts=4, backoff_s=0.05), webhook_secret=secret, **FAST)
    try:
        with TestClient(create_app(tmp_path / "idx", settings)) as c:
            job = _wait_job(c, c.post("/v1/ingest", json={"path": str(clip)}).json()["job_id"])
            hooks = c.app.state.svc.webhooks
            for _ in range(300):  # a cap, not a timing assertion
                if hooks.delivered:
                    break
                time.sleep(0.05)
            assert hooks.delivered == 1 and hooks.dropped == 0
    finally:
        rec.close()
    assert len(rec.got) == 3  # two 500s, then taken
    ids = {h["x-vidseek-delivery"] for h, _ in rec.got}
    assert len(ids) == 1  # one delivery, retried under one id
    for headers, body in rec.got:
        assert verify_signature(secret, body, headers[SIGNATURE_HEADER.lower()])
        assert not verify_signature(b"wrong", body, headers[SIGNATURE_HEADER.lower()])
        event = json.loads(body)
        assert event["event"] == "job.done" and event["job"]["job_id"] == job["job_id"]
        assert headers["x-vidseek-event"] == "job.done"
    h, body = rec.got[-1]
    assert not verify_signature(secret, body + b" ", h[SIGNATURE_HEADER.lower()])  # tampered body


def test_webhook_gives_up_after_its_tries_and_signature_expires():
    from api.webhooks import Webhooks

    rec = _Receiver(fail=100)
    try:
        hooks = Webhooks(WebhookConfig(rec.url, attempts=3, backoff_s=0.01), b"k" * 20)
        hooks.notify({"job_id": "j1", "status": "failed"})
        hooks.close(grace_s=30)
    finally:
        rec.close()
    assert hooks.dropped == 1 and hooks.delivered == 0 and len(rec.got) == 3
    assert json.loads(rec.got[0][1])["event"] == "job.failed"
    old = sign(b"k", b"{}", t=1000)
    assert verify_signature(b"k", b"{}", old, now=1100)
    assert not verify_signature(b"k", b"{}", old, now=1000 + 3600)  # a replay an hour later
    with pytest.raises(ValueError):
        WebhookConfig("ftp://example.com/x")


def test_first_key_while_running_ends_local_mode_and_the_server_says_so(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="vidseek.api"):
        with TestClient(create_app(tmp_path / "idx", Settings(warm_models=False))) as c:
            assert c.get("/v1/videos").status_code == 200
            store = KeyStore(service_db_path(tmp_path / "idx"))
            key, rec = store.create("default", "search")
            assert c.get("/v1/videos").status_code == 401
            assert c.get("/v1/videos", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            store.revoke(rec.key_id)
            assert c.get("/v1/videos").status_code == 200  # back to local mode
            store.close()
    said = [r.getMessage() for r in caplog.records if "local single-user mode" in r.getMessage()]
    assert any("OFF" in m for m in said) and any("ON" in m for m in said)


# -- totals and cursors on every list; Idempotency-Key on every job-creating POST -----------
def test_entities_and_segments_page_with_totals_and_cursors(tmp_path, tools):
    root = tmp_path / "root"
    root.mkdir()
    clip = synth.make_no_audio_clip(root, seconds=24.0, name="long.mp4")  # several 10 s windows
    app = create_app(tmp_path / "idx", Settings(tenant_roots={"default": (str(root),)}, **FAST))
    with TestClient(app) as c:
        r = c.post("/v1/ingest", json={"path": str(clip), "title": "People",
                                       "people": ["Ada Lovelace", "Ada Yonath", "Adam Smith", "Grace Hopper"]})
        j = _wait_job(c, r.json()["job_id"])
        assert j["status"] == "done", j
        vid = j["video_id"]
        # segments: the whole list, then pages of 2 that add up to it
        full = c.get(f"/v1/videos/{vid}/segments").json()
        assert full["total"] == len(full["segments"]) >= 3 and full["next_cursor"] is None
        seen, cursor = [], None
        while True:
            page = c.get(f"/v1/videos/{vid}/segments", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            assert page["total"] == full["total"] and len(page["segments"]) <= 2
            seen += [s["segment_id"] for s in page["segments"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [s["segment_id"] for s in full["segments"]]
        assert [s["start"] for s in full["segments"]] == sorted(s["start"] for s in full["segments"])
        # entities: three match "ada" (Ada Lovelace, Ada Yonath, Adam Smith), paged 2 + 1, never twice
        e1 = c.get("/v1/entities", params={"q": "ada", "limit": 2}).json()
        assert e1["total"] == 3 and len(e1["entities"]) == 2 and e1["next_cursor"] and e1["offset"] == 0
        e2 = c.get("/v1/entities", params={"q": "ada", "limit": 2, "cursor": e1["next_cursor"]}).json()
        assert e2["total"] == 3 and len(e2["entities"]) == 1 and e2["next_cursor"] is None and e2["offset"] == 2
        names = [e["name"] for e in e1["entities"] + e2["entities"]]
        assert sorted(names) == ["Ada Lovelace", "Ada Yonath", "Adam Smith"]
        one = c.get("/v1/entities", params={"q": "grace hopper"}).json()
        assert one["total"] == 1 and one["entities"][0]["name"] == "Grace Hopper" and one["next_cursor"] is None
        bad = c.get("/v1/entities", params={"q": "ada", "cursor": "zzz"})
        assert bad.status_code == 400 and "cursor" in bad.json()["error"]["message"]
        # a highlight job: a retried POST with the same key is the same job; another body under it is refused
        body = {"video_id": vid, "duration": 4}
        h1 = c.post("/v1/highlights", json=body, headers={"Idempotency-Key": "reel-1"})
        h2 = c.post("/v1/highlights", json=body, headers={"Idempotency-Key": "reel-1"})
        assert h1.status_code == h2.status_code == 202 and h1.json()["job_id"] == h2.json()["job_id"]
        assert h2.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in h1.headers
        other = c.post("/v1/highlights", json={**body, "duration": 5}, headers={"Idempotency-Key": "reel-1"})
        assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
        assert c.post("/v1/highlights", json=body).json()["job_id"] != h1.json()["job_id"]
        assert _wait_job(c, h1.json()["job_id"])["status"] in ("done", "failed")
