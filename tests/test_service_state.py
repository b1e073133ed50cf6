"""The service state (api.state.ServiceState): which index handles it opens, that it
syncs the handle it searches, that the job kinds are its own, and that the api modules
depend on each other through public names only, without cycles."""
from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from api.app import Settings, create_app  # noqa: E402

API = Path(__file__).resolve().parents[1] / "api"


@pytest.fixture
def opens(monkeypatch):
    """Every VideoIndex.open of the test: True for a writer, False for a read-only handle."""
    from engine.index import VideoIndex

    seen: list[bool] = []
    real = VideoIndex.open.__func__

    def spy(cls, path, **kw):
        seen.append(bool(kw.get("writer", False)))
        return real(cls, path, **kw)

    monkeypatch.setattr(VideoIndex, "open", classmethod(spy))
    return seen


def test_search_on_writer_opens_no_reader(tmp_path, opens):
    """With search_on_writer (the default) and the writer available, searches and reads
    run on the writer handle: no read-only VideoIndex (a second copy of the shards)."""
    with TestClient(create_app(tmp_path / "idx", Settings(rate=0, warm_models=False))) as c:
        svc = c.app.state.svc
        ready = c.get("/readyz").json()
        assert ready["ready"] and ready["index_open"] and ready["models_loaded"] and ready["writer"]
        assert c.get("/v1/videos").status_code == 200
        assert c.get("/v1/search", params={"q": "a red boat"}).status_code == 200
        assert c.get("/v1/videos/vnope/segments/1/thumbnail", params={"t": "1.x"}).status_code == 401
        assert c.get("/metrics").status_code == 200
        assert svc.reader is None
        assert opens == [True]  # the writer, once
        assert svc.index() is svc.writer.index
        assert svc.searcher().index is svc.writer.index
    assert opens == [True]


def test_reader_serves_when_search_on_writer_is_off(tmp_path, opens):
    with TestClient(create_app(tmp_path / "idx", Settings(rate=0, warm_models=False,
                                                          search_on_writer=False))) as c:
        svc = c.app.state.svc
        assert c.get("/readyz").json()["ready"]
        assert opens == [True, False] and svc.reader is not None
        assert svc.index() is svc.reader and svc.searcher().index is svc.reader
        assert c.get("/v1/search", params={"q": "a red boat"}).status_code == 200
        assert opens == [True, False]  # opened once, on first use
    assert svc.reader is None  # closed with the app


@pytest.mark.parametrize("search_on_writer", [True, False])
def test_searcher_syncs_the_handle_it_searches(tmp_path, search_on_writer):
    """The state refreshes the index it searches (Searcher.search does not)."""
    with TestClient(create_app(tmp_path / "idx", Settings(rate=0, warm_models=False,
                                                          search_on_writer=search_on_writer))) as c:
        svc = c.app.state.svc
        index = svc.index()
        calls = []
        real = index.sync
        index.sync = lambda **kw: calls.append(kw) or real(**kw)
        try:
            assert svc.searcher().index is index
            assert len(calls) == 1
            assert c.get("/v1/search", params={"q": "a red boat"}).status_code == 200
            assert len(calls) >= 2
        finally:
            del index.sync


def test_job_kinds_belong_to_the_state(tmp_path):
    import api.jobs
    from api.jobs import JobRequest
    from engine.errors import UnknownNameError

    assert not hasattr(api.jobs, "JOB_KINDS") and not hasattr(api.jobs, "register_job_kind")
    settings = Settings(rate=0, warm_models=False)
    with TestClient(create_app(tmp_path / "a", settings)) as a, TestClient(create_app(tmp_path / "b", settings)) as b:
        sa, sb = a.app.state.svc, b.app.state.svc
        assert set(sa.job_kinds) == {"highlight"} and sa.jobs.kinds is sa.job_kinds
        sa.register_job_kind("noop", lambda writer, job_id, req, progress, ok: ("nothing", None))
        assert "noop" in sa.job_kinds and "noop" not in sb.job_kinds  # no module global between apps
        with pytest.raises(ValueError):
            sa.register_job_kind("ingest", lambda *args: ("x", None))
        with pytest.raises(UnknownNameError):
            sb.jobs.submit(JobRequest("default", "", "x", kind="noop"))
        job = sa.jobs.submit(JobRequest("default", "", "x", kind="noop"))
        for _ in range(3000):  # a generous cap; not a timing assertion
            j = a.get(f"/v1/jobs/{job.job_id}").json()
            if j["status"] not in ("queued", "running"):
                break
            time.sleep(0.05)
        assert j["status"] == "done" and j["result"] == "nothing" and j["kind"] == "noop"


def test_lru_cache():
    from api.state import LruCache

    made = []
    cache = LruCache(2)

    def make(k):
        made.append(k)
        return k * 2

    assert [cache.get(k, lambda k=k: make(k)) for k in (1, 2, 1, 3, 2, 1)] == [2, 4, 2, 6, 4, 2]
    assert made == [1, 2, 3, 2, 1] and len(cache) == 2  # 2, then 1, was the least recently used


def _api_imports() -> dict[str, list[tuple[str, str]]]:
    """api module -> (imported api module, name) for every import, at any depth."""
    mods = {p.stem for p in API.glob("*.py") if p.stem != "__init__"}
    out: dict[str, list[tuple[str, str]]] = {m: [] for m in mods}
    for m in mods:
        for node in ast.walk(ast.parse((API / f"{m}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "api":
                out[m] += [(a.name, "") for a in node.names if a.name in mods]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("api."):
                target = node.module.split(".")[1]
                out[m] += [(target, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                out[m] += [(a.name.split(".")[1], "") for a in node.names if a.name.startswith("api.")]
    return out


def test_api_modules_use_public_names_and_have_no_cycles():
    imports = _api_imports()
    private = [f"{m} <- api.{t}.{n}" for m, deps in imports.items() for t, n in deps
               if n.startswith("_") and not n.startswith("__")]
    assert private == []
    edges = {m: {t for t, _ in deps if t != m} for m, deps in imports.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for t in edges.get(todo.pop(), ()):
                if t == goal:
                    return True
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return False

    assert [m for m in edges if reaches(m, m)] == []
