"""Property-based fuzz of the HTTP service against its own OpenAPI document (schemathesis).

Every operation in ``/openapi.json`` gets generated requests, valid and invalid
(schemathesis' positive and negative modes: wrong types, out-of-range numbers,
missing fields, odd strings and bytes), sent in-process to the ASGI app; the only
check is "not a server error": whatever the input, the service answers with a 2xx,
3xx or 4xx and never a 5xx. The app serves a real index (real models) holding one
tiny synthetic clip, so the generated ids sometimes name a video, segment and job
that exist and the requests reach the code behind the 404s. The service runs in
local mode (loopback, no keys) so the fuzz is not stopped at 401.

Generation is deterministic (derandomised, no example database), bounded by
``MAX_EXAMPLES`` per operation in the fuzzing phase, plus schemathesis' example and
coverage phases.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart", reason="multipart uploads need python-multipart")
schemathesis = pytest.importorskip("schemathesis", reason="the API fuzz needs schemathesis (the `test` extra)")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.python.asgi import shutdown_lifespans  # noqa: E402

from api.app import Settings, create_app  # noqa: E402
from tests import synth  # noqa: E402
from tests.test_api import _wait_job  # noqa: E402

# Generated cases per operation in the fuzzing phase; a few dozen already reaches every
# validation branch of this small API, and each search runs the real query encoders.
MAX_EXAMPLES = 30


def _settings(root: Path) -> Settings:
    return Settings(ingest_speech=False, ingest_ocr=False, allowed_roots=(str(root),), max_upload_bytes=200_000,
                    max_image_bytes=200_000, rate=0, shutdown_grace_s=2.0)


@pytest.fixture(scope="module")
def known_ids(tmp_path_factory, tools) -> dict[str, Any]:
    """An index with one ingested clip, built through the API (then that app is closed)."""
    base = tmp_path_factory.mktemp("api_fuzz")
    root = base / "allowed"
    root.mkdir()
    clip = synth.make_text_clip(root, "HARBOUR 42", name="sign.mp4")
    idx = base / "index"
    with TestClient(create_app(idx, _settings(root))) as c:
        r = c.post("/v1/ingest", json={"path": str(clip), "title": "sign"})
        assert r.status_code == 202, r.text
        job = _wait_job(c, r.json()["job_id"], {})
        assert job["status"] == "done", job
        segs = c.get(f"/v1/videos/{job['video_id']}/segments").json()
    return {"idx": idx, "root": root, "video_id": job["video_id"], "job_id": job["job_id"],
            "segment_id": segs[0]["segment_id"]}


@pytest.fixture(scope="module")
def fuzz_schema(known_ids) -> Iterator[Any]:
    """The schema of a fresh app over that index; schemathesis runs the app's lifespan."""
    app = create_app(known_ids["idx"], _settings(known_ids["root"]))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")

    real = {k: known_ids[k] for k in ("video_id", "segment_id", "job_id")}

    @schema.hook
    def flatmap_path_parameters(context, path_parameters: dict[str, Any]):
        # Half the cases name the real video, segment and job, so the handlers past the
        # 404 run too. Never for DELETE: deleting the one video would empty the index.
        if not path_parameters or context.operation is None or context.operation.method.upper() == "DELETE":
            return st.just(path_parameters)
        known = {k: v for k, v in real.items() if k in path_parameters}
        if not known:
            return st.just(path_parameters)
        return st.sampled_from([path_parameters, {**path_parameters, **known}])

    yield schema
    # Stop the app (its job worker, index handles) that schemathesis started.
    shutdown_lifespans()


def test_regressions_found_by_fuzzing(known_ids) -> None:
    """Inputs that once answered 500: an OFFSET past SQLite's 64-bit integers, and
    signed-link tokens that made LinkSigner.verify raise (a non-ASCII MAC, a Unicode
    digit, an expiry past Python's int-parsing digit limit). All are client errors."""
    vid = known_ids["video_id"]
    seg = known_ids["segment_id"]
    with TestClient(create_app(known_ids["idx"], _settings(known_ids["root"]))) as c:
        r = c.get("/v1/videos", params={"offset": 2**63})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_input", r.text
        assert c.get("/v1/videos", params={"offset": 2**63 - 1}).json()["videos"] == []
        good = c.get(f"/v1/videos/{vid}").json()["media_url"].split("t=")[1]
        assert c.get(f"/v1/videos/{vid}/media", params={"t": good}).status_code == 200
        for bad in ("99999999999." + "\u00e9" * 32, "\u00b2." + "a" * 32, "9" * 5000 + "." + "a" * 32,
                    good.upper(), good + "0", " " + good):
            for path in (f"/v1/videos/{vid}/media", f"/v1/videos/{vid}/segments/{seg}/thumbnail"):
                r = c.get(path, params={"t": bad})
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (path, bad, r.text)


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.parametrize()
def test_no_server_error(case) -> None:
    case.call_and_validate(checks=[not_a_server_error])
