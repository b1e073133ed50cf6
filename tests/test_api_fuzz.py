"""Property-based fuzz of the HTTP service against its own OpenAPI document (schemathesis).

Every operation in ``/openapi.json`` gets generated requests, valid and invalid
(schemathesis' positive and negative modes: wrong types, out-of-range numbers,
missing fields, odd strings and bytes), sent in-process to the ASGI app. The app
serves a real index (real models) with API keys for two tenants, ``alpha`` and
``beta``, each with one tiny synthetic clip ingested from its own allowed root; every
request carries one of the two keys. Path parameters name either tenant's real
video, segment and job half the time, and integer path and query parameters are
sometimes replaced by integers past SQLite's 64-bit range, so the requests reach the
code behind the 404s and the edges of every integer. The checks:

- "not a server error": whatever the input, a 2xx, 3xx or 4xx and never a 5xx;
- no cross-tenant leak: a request with one tenant's key never gets a 2xx for the other
  tenant's video or job named in its path, and never sees the other tenant's ids in a
  response when it did not name them.

Generation is deterministic (derandomised, no example database), bounded by
``MAX_EXAMPLES`` per operation in the fuzzing phase, plus schemathesis' example and
coverage phases.
"""
from __future__ import annotations

import json
import zlib
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
from api.auth import KeyStore, service_db_path  # noqa: E402
from tests import synth  # noqa: E402
from tests.test_api import _wait_job  # noqa: E402

# Generated cases per operation in the fuzzing phase; a few dozen already reaches every
# validation branch of this small API, and each search runs the real query encoders.
MAX_EXAMPLES = 30
TENANTS = ("alpha", "beta")
# Integers a client may send that no SQLite column holds (the first one answered 500).
BIG_INTS = (2**63, 2**63 - 1, 2**64, 10**30, -(2**63) - 1)


def _settings(roots: dict[str, Path]) -> Settings:
    return Settings(ingest_speech=False, ingest_ocr=False, tenant_roots={t: (str(r),) for t, r in roots.items()},
                    max_upload_bytes=200_000, max_image_bytes=200_000, rate=0, shutdown_grace_s=2.0)


@pytest.fixture(scope="module")
def known_ids(tmp_path_factory, tools) -> dict[str, Any]:
    """An index with one clip per tenant, each ingested by path from its own root
    through the API with that tenant's key (then that app is closed)."""
    base = tmp_path_factory.mktemp("api_fuzz")
    idx = base / "index"
    store = KeyStore(service_db_path(idx))
    keys = {t: store.create(t, "admin")[0] for t in TENANTS}
    store.close()
    roots = {t: base / f"root_{t}" for t in TENANTS}
    out: dict[str, Any] = {"idx": idx, "roots": roots, "keys": keys}
    with TestClient(create_app(idx, _settings(roots))) as c:
        for t, text in zip(TENANTS, ("HARBOUR 42", "MARKET 7")):
            roots[t].mkdir()
            clip = synth.make_text_clip(roots[t], text, name=f"{t}.mp4")
            h = {"Authorization": f"Bearer {keys[t]}"}
            r = c.post("/v1/ingest", headers=h, json={"path": str(clip), "title": t})
            assert r.status_code == 202, r.text
            job = _wait_job(c, r.json()["job_id"], h)
            assert job["status"] == "done", job
            segs = c.get(f"/v1/videos/{job['video_id']}/segments", headers=h).json()["segments"]
            out[t] = {"video_id": job["video_id"], "job_id": job["job_id"], "segment_id": segs[0]["segment_id"]}
    return out


def _with_big_ints(values: dict[str, Any]) -> st.SearchStrategy:
    """``values`` as drawn, or with some integers replaced by ones past int64."""
    ints = [k for k, v in values.items() if isinstance(v, int) and not isinstance(v, bool)]
    if not ints:
        return st.just(values)
    return st.fixed_dictionaries({k: st.sampled_from([v, *BIG_INTS]) if k in ints else st.just(v)
                                  for k, v in values.items()})


@pytest.fixture(scope="module")
def fuzz_schema(known_ids) -> Iterator[Any]:
    """The schema of a fresh app over that index; schemathesis runs the app's lifespan."""
    app = create_app(known_ids["idx"], _settings(known_ids["roots"]))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")

    @schema.hook
    def flatmap_path_parameters(context, path_parameters: dict[str, Any]):
        # A third of the cases name alpha's real video, segment and job, a third beta's.
        # Never for DELETE: deleting a tenant's one video would empty its part of the index.
        if not path_parameters or context.operation is None or context.operation.method.upper() == "DELETE":
            return _with_big_ints(path_parameters or {})
        options = [path_parameters]
        for t in TENANTS:
            known = {k: v for k, v in known_ids[t].items() if k in path_parameters}
            if known:
                options.append({**path_parameters, **known})
        return st.sampled_from(options).flatmap(_with_big_ints)

    @schema.hook
    def flatmap_query(context, query: dict[str, Any]):
        return _with_big_ints(query) if query else st.just(query)

    yield schema
    # Stop the app (its job worker, index handles) that schemathesis started.
    shutdown_lifespans()


def _request_text(case) -> str:
    return " ".join([case.formatted_path, json.dumps(case.query, default=str),
                     json.dumps(case.body, default=str) if isinstance(case.body, (dict, list, str)) else ""])


def test_regressions_found_by_fuzzing(known_ids) -> None:
    """Inputs that once answered 500: an OFFSET past SQLite's 64-bit integers, and
    signed-link tokens that made LinkSigner.verify raise (a non-ASCII MAC, a Unicode
    digit, an expiry past Python's int-parsing digit limit), and entity ids past int64
    (OverflowError). All are client errors."""
    a = known_ids["alpha"]
    vid, seg = a["video_id"], a["segment_id"]
    key = {"Authorization": f"Bearer {known_ids['keys']['alpha']}"}
    with TestClient(create_app(known_ids["idx"], _settings(known_ids["roots"]))) as c:
        r = c.get("/v1/videos", params={"offset": 2**63}, headers=key)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_input", r.text
        assert c.get("/v1/videos", params={"offset": 2**63 - 1}, headers=key).json()["videos"] == []
        for path in ("/v1/entities/{}", "/v1/entities/{}/graph.png", f"/v1/videos/{vid}/segments/{{}}/thumbnail"):
            r = c.get(path.format(2**63), headers=key)
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_input", (path, r.text)
            assert c.get(path.format(2**63 - 1), headers=key).json()["error"]["code"] == "not_found", path
        good = c.get(f"/v1/videos/{vid}", headers=key).json()["media_url"].split("t=")[1]
        assert c.get(f"/v1/videos/{vid}/media", params={"t": good}).status_code == 200
        for bad in ("99999999999." + "\u00e9" * 32, "\u00b2." + "a" * 32, "9" * 5000 + "." + "a" * 32,
                    good.upper(), good + "0", " " + good):
            for path in (f"/v1/videos/{vid}/media", f"/v1/videos/{vid}/segments/{seg}/thumbnail"):
                r = c.get(path, params={"t": bad})
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (path, bad, r.text)


def test_every_integer_parameter_refuses_integers_past_int64(known_ids) -> None:
    """Each integer path and query parameter of every GET in the OpenAPI document, set
    to 2**63 (the others valid): a 4xx JSON error, never a 500."""
    a = known_ids["alpha"]
    key = {"Authorization": f"Bearer {known_ids['keys']['alpha']}"}
    fill = {"video_id": a["video_id"], "segment_id": a["segment_id"], "job_id": a["job_id"], "entity_id": 1}
    with TestClient(create_app(known_ids["idx"], _settings(known_ids["roots"]))) as c:
        spec = c.get("/openapi.json").json()
        tried = []
        for path, ops in spec["paths"].items():
            op = ops.get("get")
            if op is None:
                continue
            params = op.get("parameters", [])
            in_path = [q["name"] for q in params if q["in"] == "path"]
            required_query = [q["name"] for q in params if q["in"] == "query" and q.get("required")]
            for p in params:
                spec_of = p.get("schema", {})
                types = {spec_of.get("type")} | {s.get("type") for s in spec_of.get("anyOf", [])}
                if "integer" not in types:
                    continue
                path_values = {n: fill.get(n, 1) for n in in_path}
                query = {n: fill.get(n, 1) for n in required_query}
                (path_values if p["in"] == "path" else query)[p["name"]] = 2**63
                url = path.format(**path_values)
                r = c.get(url, params=query, headers=key)
                tried.append((path, p["name"]))
                assert 400 <= r.status_code < 500, (path, p["name"], r.status_code, r.text)
                assert r.json()["error"]["code"] == "bad_input", (path, p["name"], r.text)
        assert ("/v1/entities/{entity_id}", "entity_id") in tried and ("/v1/videos", "offset") in tried


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.parametrize()
def test_no_server_error_and_no_cross_tenant_leak(case, known_ids) -> None:
    text = _request_text(case)
    # Which tenant calls: chosen from the case itself, so the run stays deterministic.
    me = TENANTS[zlib.crc32(text.encode()) % 2]
    other = known_ids[TENANTS[1 - TENANTS.index(me)]]
    response = case.call(headers={"Authorization": f"Bearer {known_ids['keys'][me]}"})
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 300:
        return
    body = response.content.decode("utf-8", "replace")
    for name in ("video_id", "job_id"):
        if other[name] in case.formatted_path:
            pytest.fail(f"{me} got {response.status_code} for the other tenant's {name} in {case.formatted_path}")
        if other[name] not in text:
            assert other[name] not in body, f"{me} saw the other tenant's {name} in {case.formatted_path}"
