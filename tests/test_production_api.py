"""Clip export and highlight jobs over HTTP (FastAPI TestClient), on an index of synthetic
clips with hand-made catalogue rows and the default encoders (the query planner runs for
real: BM25 over the transcripts, MiniLM for the query)."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from api.app import Settings, create_app  # noqa: E402
from api.auth import KeyStore, service_db_path  # noqa: E402
from api.jobs import JobQueue, SharedWriter  # noqa: E402
from indexer.export import ExportLimits  # noqa: E402
from tests.test_export import FPS, frame_indices, make_counter_clip, make_index, streams  # noqa: E402
from tests.test_highlights import SPOKEN, check_reel_against_edl, make_burst_clip, segments_with_words  # noqa: E402

POLL_S = 0.1


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _wait_job(client: TestClient, job_id: str, headers: dict) -> dict:
    for _ in range(3000):  # a generous cap; not a timing assertion
        j = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if j["status"] in ("done", "failed", "abandoned"):
            return j
        time.sleep(POLL_S)
    raise RuntimeError(f"job {job_id} did not finish: {j}")


def _err(r, status: int, code: str, needle: str = "") -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    assert needle in body["error"]["message"], body
    return body["error"]["message"]


@pytest.fixture(scope="module")
def env(tmp_path_factory, tools):
    base = tmp_path_factory.mktemp("production_api")
    counter = make_counter_clip(base)
    match = make_burst_clip(base)
    other = make_counter_clip(base, seconds=2.0, audio=False, name="beta.mp4")
    idx = base / "index"
    ids = make_index(idx, [
        {"source": counter, "duration": 4.0, "shots": [(0.0, 4.0)], "segments": [(0.0, 2.0, []), (2.0, 4.0, [])],
         "tenant": "alpha"},
        {"source": match, "duration": 8.0, "shots": [(0.0, 3.0), (3.0, 6.0), (6.0, 8.0)],
         "segments": segments_with_words([0.0, 1.5, 3.0, 4.5, 6.0, 8.0], SPOKEN), "tenant": "alpha"},
        {"source": other, "duration": 2.0, "shots": [(0.0, 2.0)], "segments": [(0.0, 2.0, [])], "tenant": "beta"},
    ], real_encoders=True)
    store = KeyStore(service_db_path(idx))
    a_key, _ = store.create("alpha", "search,ingest")
    a_read, _ = store.create("alpha", "search")
    b_key, _ = store.create("beta", "search,ingest")
    g_key, _ = store.create("gamma", "search,ingest")  # a tenant with no videos
    store.close()
    app = create_app(idx, Settings(warm_models=False, rate=0, ingest_speech=False, ingest_ocr=False))
    with TestClient(app) as client:
        yield {
            "client": client, "app": app, "idx": idx, "A": _bearer(a_key), "A_read": _bearer(a_read),
            "B": _bearer(b_key), "G": _bearer(g_key), "counter": ids[str(counter)], "match": ids[str(match)],
            "match_path": match, "beta": ids[str(other)],
        }


def _save(r, path: Path) -> Path:
    path.write_bytes(r.content)
    return path


# -- clips ---------------------------------------------------------------------------------
def test_clip_streams_a_frame_accurate_mp4(env, tmp_path):
    c = env["client"]
    r = c.get(f"/v1/videos/{env['counter']}/clip", params={"start": 1.2, "end": 2.6}, headers=env["A_read"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["x-clip-mode"] == "reencode" and float(r.headers["x-clip-start"]) == pytest.approx(1.2)
    assert "attachment" in r.headers["content-disposition"]
    out = _save(r, tmp_path / "c.mp4")
    assert frame_indices(out) == list(range(30, 65))
    assert streams(out) == {"video": "h264", "audio": "aac"}
    assert list((env["idx"] / "tmp").glob("*.mp4")) == []  # the temporary file went with the response


def test_clip_stream_copies_an_aligned_range(env, tmp_path):
    r = env["client"].get(f"/v1/videos/{env['counter']}/clip", params={"start": 1, "end": 3}, headers=env["A"])
    assert r.status_code == 200 and r.headers["x-clip-mode"] == "copy"
    assert frame_indices(_save(r, tmp_path / "c.mp4")) == list(range(25, 75))


@pytest.mark.parametrize(("params", "needle"), [
    ({"start": 2, "end": 1}, "must be after start"),
    ({"start": -1, "end": 1}, "is negative"),
    ({"start": 1, "end": 9}, "past the end"),
    ({"start": 1.2, "end": 3, "copy": "always"}, "cannot stream-copy"),
    ({"start": "soon", "end": 1}, "start"),
    ({"end": 1}, "start"),
    ({"start": 0, "end": 1, "copy": "sometimes"}, "copy"),
])
def test_clip_bad_ranges_are_400_json(env, params, needle):
    r = env["client"].get(f"/v1/videos/{env['counter']}/clip", params=params, headers=env["A"])
    _err(r, 400, "bad_input", needle)


def test_clip_unknown_video_other_tenant_and_no_key(env):
    c = env["client"]
    _err(c.get("/v1/videos/vnope/clip", params={"start": 0, "end": 1}, headers=env["A"]), 404, "not_found", "vnope")
    # Tenant B's video with tenant A's key: exactly like a missing one.
    _err(c.get(f"/v1/videos/{env['beta']}/clip", params={"start": 0, "end": 1}, headers=env["A"]), 404, "not_found")
    assert c.get(f"/v1/videos/{env['beta']}/clip", params={"start": 0, "end": 1}, headers=env["B"]).status_code == 200
    _err(c.get(f"/v1/videos/{env['counter']}/clip", params={"start": 0, "end": 1}), 401, "unauthorized")


def test_clip_by_signed_link(env, tmp_path):
    svc = env["app"].state.svc
    t = svc.signer.sign("alpha", env["counter"])
    r = env["client"].get(f"/v1/videos/{env['counter']}/clip", params={"start": 0, "end": 1, "t": t})
    assert r.status_code == 200
    assert frame_indices(_save(r, tmp_path / "c.mp4")) == list(range(0, 25))
    # A link signed for one video does not open another.
    _err(env["client"].get(f"/v1/videos/{env['match']}/clip", params={"start": 0, "end": 1, "t": t}), 401,
         "unauthorized")


def test_clip_limits_are_413(env):
    svc, c = env["app"].state.svc, env["client"]
    default = svc.clip_limits
    try:
        svc.clip_limits = ExportLimits(max_duration_s=1.0)
        _err(c.get(f"/v1/videos/{env['counter']}/clip", params={"start": 0, "end": 2}, headers=env["A"]), 413,
             "too_large", "over the limit of 1.0 s")
        svc.clip_limits = ExportLimits(max_bytes=2000)
        _err(c.get(f"/v1/videos/{env['counter']}/clip", params={"start": 0, "end": 2}, headers=env["A"]), 413,
             "too_large", "size limit")
    finally:
        svc.clip_limits = default
    assert list((env["idx"] / "tmp").glob("*.mp4")) == []


# -- highlight jobs ------------------------------------------------------------------------
def test_highlight_job_of_a_video(env, tmp_path):
    c, A = env["client"], env["A"]
    r = c.post("/v1/highlights", json={"video_id": env["match"], "duration": 4, "order": "score", "fade": 0.3},
               headers=A)
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/jobs/{body['job_id']}" and body["status"] == "queued"
    job = _wait_job(c, body["job_id"], A)
    assert job["status"] == "done", job
    assert job["progress"] == 1.0 and job["result"] == "rendered" and job["video_id"] == env["match"]
    v = c.get(body["video_url"], headers=A)
    assert v.status_code == 200 and v.headers["content-type"] == "video/mp4"
    edl = c.get(body["edl_url"], headers=A).json()
    assert edl["order"] == "score" and edl["video_id"] == env["match"] and edl["target_duration"] == 4
    check_reel_against_edl(_save(v, tmp_path / "h.mp4"), edl, {str(env["match_path"]): FPS})
    # Range requests work (a <video> element seeks with them).
    part = c.get(body["video_url"], headers={**A, "Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    # Another tenant sees neither the job nor its result.
    _err(c.get(f"/v1/jobs/{body['job_id']}", headers=env["B"]), 404, "not_found")
    _err(c.get(body["video_url"], headers=env["B"]), 404, "not_found")
    _err(c.get(body["edl_url"], headers=env["B"]), 404, "not_found")


def test_highlight_job_of_a_query_uses_the_planner(env):
    c, A = env["client"], env["A"]
    r = c.post("/v1/highlights", json={"query": "goal", "duration": 3}, headers=A)
    assert r.status_code == 202, r.text
    job = _wait_job(c, r.json()["job_id"], A)
    assert job["status"] == "done", job
    edl = c.get(r.json()["edl_url"], headers=A).json()
    assert edl["query"] == "goal" and edl["duration"] <= 3
    assert "relevance" in edl["weights"]
    # The only segment that says "goal" (6-8 s of the match) scores highest on relevance.
    best = max(edl["entries"], key=lambda e: e["parts"]["relevance"])
    assert best["video_id"] == env["match"] and best["source_in"] >= 6.0 - 1e-6
    assert all(e["video_id"] in (env["match"], env["counter"]) for e in edl["entries"])  # only tenant alpha


def test_failed_highlight_job_reports_its_error(env):
    c, G = env["client"], env["G"]
    r = c.post("/v1/highlights", json={"query": "anything at all"}, headers=G)
    job = _wait_job(c, r.json()["job_id"], G)
    assert job["status"] == "failed" and job["error"]["code"] == "not_found"
    assert "no indexed moment matches" in job["error"]["message"]
    _err(c.get(r.json()["video_url"], headers=G), 409, "job_failed", "no indexed moment matches")
    # A failed highlight is not an indexing failure of some file.
    svc = env["app"].state.svc
    assert svc.index().catalog.failures(tenant="gamma") == []


@pytest.mark.parametrize(("body", "status", "code", "needle"), [
    ({}, 400, "bad_input", "exactly one of a video id or a query"),
    ({"video_id": "x", "query": "y"}, 400, "bad_input", "exactly one"),
    ({"query": "   "}, 400, "bad_input", "exactly one"),
    ({"video_id": "vnope"}, 404, "not_found", "vnope"),
    ({"query": "goal", "order": "random"}, 400, "bad_input", "order"),
    ({"query": "goal", "duration": 0}, 400, "bad_input", "duration"),
    ({"query": "goal", "fade": 5}, 400, "bad_input", "fade"),
])
def test_highlight_bad_requests(env, body, status, code, needle):
    _err(env["client"].post("/v1/highlights", json=body, headers=env["A"]), status, code, needle)


def test_highlight_needs_ingest_scope_and_tenant_video(env):
    c = env["client"]
    _err(c.post("/v1/highlights", json={"video_id": env["match"]}, headers=env["A_read"]), 403, "forbidden")
    _err(c.post("/v1/highlights", json={"video_id": env["beta"]}, headers=env["A"]), 404, "not_found")


def test_highlight_result_of_an_unfinished_or_other_job(env):
    c, A = env["client"], env["A"]
    _err(c.get("/v1/highlights/jnope/video", headers=A), 404, "not_found")
    # An ingest job is not a highlight job.
    svc = env["app"].state.svc
    from api.jobs import JobRequest

    ingest = svc.jobs.submit(JobRequest("alpha", str(env["idx"] / "missing.mp4"), speech=False, ocr=False))
    _wait_job(c, ingest.job_id, A)
    _err(c.get(f"/v1/highlights/{ingest.job_id}/edl", headers=A), 404, "not_found", "not a highlight job")
    # A job still queued behind another has no result yet: 409 until it is done.
    gate = threading.Event()
    svc.register_job_kind("wait", lambda writer, job_id, req, progress, ok: (gate.wait(60), ("waited", None))[1])
    try:
        blocker = svc.jobs.submit(JobRequest("alpha", "", "blocker", kind="wait"))
        r = c.post("/v1/highlights", json={"video_id": env["match"], "duration": 3}, headers=A)
        job_id = r.json()["job_id"]
        _err(c.get(f"/v1/highlights/{job_id}/video", headers=A), 409, "job_not_done", "is queued")
    finally:
        gate.set()
        _wait_job(c, blocker.job_id, A)
        del svc.job_kinds["wait"]
    assert _wait_job(c, job_id, A)["status"] == "done"
    assert c.get(f"/v1/highlights/{job_id}/video", headers=A).status_code == 200


def test_openapi_lists_the_production_routes(env):
    spec = env["client"].get("/openapi.json").json()
    for path in ("/v1/videos/{video_id}/clip", "/v1/highlights", "/v1/highlights/{job_id}/video",
                 "/v1/highlights/{job_id}/edl"):
        assert path in spec["paths"], path


# -- the job table ---------------------------------------------------------------------------
def test_old_job_table_gains_kind_and_params(tmp_path):
    db = tmp_path / "service.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE jobs (job_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, path TEXT NOT NULL, title TEXT,
            speech INTEGER NOT NULL, ocr INTEGER NOT NULL, visual INTEGER NOT NULL, owns_file INTEGER NOT NULL,
            status TEXT NOT NULL, stage TEXT, progress REAL NOT NULL DEFAULT 0, result TEXT, video_id TEXT,
            error_code TEXT, error_message TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL);
        INSERT INTO jobs VALUES ('j1', 't', '/x/a.mp4', NULL, 1, 1, 1, 0, 'done', 'done', 1.0, 'indexed', 'v1',
            NULL, NULL, 1.0, 2.0);
    """)
    conn.commit()
    conn.close()
    q = JobQueue(db, SharedWriter(tmp_path / "index"))
    job = q.get("j1", tenant="t")
    assert job.kind == "ingest" and job.result == "indexed" and job.source_name == "a.mp4"
    assert json.dumps(job.as_dict())  # still serialisable
    q.shutdown(0)
