"""The service's ingest jobs on a Ray cluster (``vidseek serve --ray``: ``Settings.ray_ingest``)
on a local cluster of two nodes with one CPU each: a job analysed on a Ray worker gives
the same video as the in-process job; several jobs run at once, one per CPU slot; the
job's stage and progress come from the worker; a worker killed mid-video is replaced and
the job completes; a video whose workers keep dying fails ``worker_crash`` with nothing
committed; jobs in flight at shutdown are abandoned and done after a restart.

Faults are injected as stages (``AnalysisPool.stages``: the stages of every call, set
before the first job starts an actor), as ``tests/test_ray.py`` does: a stage that kills
its own worker process with SIGKILL, and one that stalls. Skipped with the reason when
Ray cannot start here.
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
ray = pytest.importorskip("ray", reason="ray is not installed (pip install -c constraints.txt 'ray[data,serve]')")

from fastapi.testclient import TestClient  # noqa: E402

from api.app import Settings, create_app  # noqa: E402
from engine.index import VideoIndex  # noqa: E402
from indexer.options import IndexOptions  # noqa: E402
from indexer.stages import Stage, Work, build_stages  # noqa: E402
from tests import synth  # noqa: E402
from tests.test_ray import KillOnce, _by_source, two_node_cluster  # noqa: E402

# What the jobs of these services analyse with (speech off: the clips have no speech)
JOB = IndexOptions(speech=False, ocr=False)
WORKER = re.compile(r"^[0-9a-f]{8}/(\d+)$")  # a job's worker: Ray node id prefix / pid


class KillAlways(Stage):
    """Kills its worker process (SIGKILL) on every video named ``victim``."""

    name = "kill_always"
    needs = ("frames",)
    adds = ()
    at = 0.9

    def __init__(self, victim: str) -> None:
        self.victim = victim

    def run(self, work: Work) -> None:
        if os.path.basename(work.source) == self.victim:
            os.kill(os.getpid(), signal.SIGKILL)


class Stall(Stage):
    """Sleeps ``seconds`` on ``victim``, after writing ``marker`` (the stage began)."""

    name = "stall"
    needs = ("frames",)
    adds = ()
    at = 0.9

    def __init__(self, victim: str, marker: str, seconds: float = 120.0) -> None:
        self.victim, self.marker, self.seconds = victim, marker, seconds

    def run(self, work: Work) -> None:
        if os.path.basename(work.source) == self.victim:
            Path(self.marker).write_text(str(os.getpid()))
            time.sleep(self.seconds)


@pytest.fixture(scope="module")
def cluster():
    with two_node_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def media(tmp_path_factory, tools) -> Path:
    d = tmp_path_factory.mktemp("ray_jobs_media")
    synth.make_text_clip(d, "GRAND OPENING SALE", name="sign.mp4", size=(640, 360), fontsize=48)
    synth.make_cuts_clip(d, name="cuts.mp4")
    synth.make_no_audio_clip(d, seconds=3.0, name="silent.mp4")
    synth.make_no_audio_clip(d, seconds=2.5, name="victim.mp4")
    return d


def _settings(media: Path, **kw) -> Settings:
    return Settings(rate=0, warm_models=False, ingest_speech=False, ingest_ocr=kw.pop("ocr", False),
                    allowed_roots=(str(media),), shutdown_grace_s=kw.pop("grace", 30.0), **kw)


def _ray(media: Path, cluster, **kw) -> Settings:
    return _settings(media, ray_ingest=True, ray_address=cluster.address, **kw)


def _submit(c: TestClient, path: Path) -> str:
    r = c.post("/v1/ingest", json={"path": str(path), "title": path.stem})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def _follow(c: TestClient, job_ids: list[str], seen: list[dict] | None = None, rounds: list[dict] | None = None,
            cap_s: float = 600) -> dict[str, dict]:
    """Poll the jobs until each has ended; every answer goes to ``seen``, and each round's
    statuses (job -> status, read at one instant: one GET /v1/jobs) to ``rounds``. The
    cap only keeps a broken cluster from hanging the suite: not a timing assertion."""
    end = time.monotonic() + cap_s
    out: dict[str, dict] = {}
    while len(out) < len(job_ids) and time.monotonic() < end:
        if rounds is not None:
            rounds.append({j["job_id"]: j["status"] for j in c.get("/v1/jobs").json()["jobs"] if j["job_id"] in job_ids})
        for j in job_ids:
            if j in out:
                continue
            body = c.get(f"/v1/jobs/{j}").json()
            if seen is not None:
                seen.append(body)
            if body["status"] in ("done", "failed", "abandoned"):
                out[j] = body
        time.sleep(0.05)
    assert len(out) == len(job_ids), f"jobs did not end: {set(job_ids) - set(out)}"
    return out


def _with_stages(c: TestClient, extra: list[Stage]) -> None:
    """Run every analysis of this service's pool with ``extra`` after the job's stages."""
    pool = c.app.state.svc.ingest_pool
    assert pool is not None and pool.actors == 0  # no actor yet: the first job starts them with these stages
    pool.stages = build_stages(JOB, extra=extra)


def test_serve_ray_without_an_address_starts_and_ends_its_own_local_instance(media, tmp_path):
    """`vidseek serve --ray` with no address: the service starts a local Ray instance (a
    slot per core for the analyses), runs the job there, and shuts Ray down at exit.
    First in the file: the module's cluster fixture is not connected yet."""
    if ray.is_initialized():
        pytest.skip("this process is connected to Ray already (another test module's cluster)")
    try:
        with TestClient(create_app(tmp_path / "idx", _settings(media, ray_ingest=True))) as c:
            assert ray.is_initialized() and c.app.state.svc.ingest_pool.slots() == (os.cpu_count() or 1)
            (job,) = _follow(c, [_submit(c, media / "silent.mp4")]).values()
            assert job["status"] == "done" and WORKER.match(job["worker"] or ""), job
        assert not ray.is_initialized()
    finally:
        ray.shutdown()


def test_ray_job_equals_the_in_process_job_and_shows_the_workers_stages(media, cluster, tmp_path):
    """One clip (OCR on) as a job in the server's own process and as a job on the cluster:
    the same video and segments; the Ray job's rows show the worker's stages and pid."""
    clip = media / "sign.mp4"
    with TestClient(create_app(tmp_path / "local", _settings(media, ocr=True))) as c:
        assert c.app.state.svc.ingest_pool is None and c.app.state.svc.jobs.cluster is None
        local = _follow(c, [_submit(c, clip)])
    seen: list[dict] = []
    with TestClient(create_app(tmp_path / "ray", _ray(media, cluster, ocr=True))) as c:
        assert c.app.state.svc.jobs.cluster is c.app.state.svc.ingest_pool is not None
        job = _submit(c, clip)
        remote = _follow(c, [job], seen)
        metrics = c.get("/metrics").text
    (lj,), (rj,) = local.values(), remote.values()
    assert lj["status"] == rj["status"] == "done" and lj["result"] == rj["result"] == "indexed", (lj, rj)
    assert lj["worker"] is None and lj["attempt"] == 1
    m = WORKER.match(rj["worker"] or "")
    assert m and int(m.group(1)) != os.getpid(), rj  # analysed in a Ray worker process, not here
    assert rj["attempt"] == 1 and rj["progress"] == 1.0 and rj["stage"] == "done"
    stages = {s["stage"] for s in seen if s["status"] == "running"}
    worker_stages = stages - {"start", "hash", "dispatched", None}
    assert worker_stages, f"no analysis stage reached the job's row: {stages}"
    assert {s["worker"] for s in seen if s["stage"] in worker_stages} == {rj["worker"]}
    assert "vidseek_ingest_ray_slots 2" in metrics and "vidseek_ingest_ray_workers 1" in metrics

    one, dist = _by_source(tmp_path / "local"), _by_source(tmp_path / "ray")
    assert list(one) == list(dist) == ["sign.mp4"]
    a, b = one["sign.mp4"], dist["sign.mp4"]
    assert b["video"] == a["video"]
    assert b["segments"] == a["segments"]  # times, transcript, OCR text, labels
    assert any("SALE" in s[3].upper() for s in a["segments"])  # the OCR ran on both sides
    assert set(b["vectors"]) == set(a["vectors"])
    for mod, vs in a["vectors"].items():
        assert len(b["vectors"][mod]) == len(vs), mod
        for x, y in zip(b["vectors"][mod], vs):
            np.testing.assert_allclose(x, y, atol=1e-5, err_msg=mod)


def test_jobs_run_side_by_side_one_per_cpu_slot(media, cluster, tmp_path):
    rounds: list[dict] = []
    with TestClient(create_app(tmp_path / "idx", _ray(media, cluster))) as c:
        jobs = [_submit(c, media / name) for name in ("cuts.mp4", "silent.mp4", "victim.mp4")]
        done = _follow(c, jobs, rounds=rounds)
        assert c.app.state.svc.ingest_pool.actors == 2
        with VideoIndex.open(tmp_path / "idx") as index:
            assert index.info()["catalog"]["videos"] == 3 and not index.info()["failures"]
    assert all(j["status"] == "done" and j["result"] == "indexed" for j in done.values()), done
    # two CPU slots: two jobs running at once, never three (the third waits queued)
    running = [sum(s == "running" for s in r.values()) for r in rounds]
    assert max(running) == 2, running
    assert len({j["worker"] for j in done.values()}) == 2  # both actors (one a node) analysed


def test_killed_worker_mid_video_is_retried_and_the_job_completes(media, cluster, tmp_path):
    marker = tmp_path / "killed.pid"
    with TestClient(create_app(tmp_path / "idx", _ray(media, cluster))) as c:
        _with_stages(c, [KillOnce("victim.mp4", str(marker))])
        j = _follow(c, [_submit(c, media / "victim.mp4")])
        (job,) = j.values()
        with VideoIndex.open(tmp_path / "idx") as index:
            videos = index.list_videos(limit=10)
            assert [os.path.basename(v.source) for v in videos] == ["victim.mp4"]  # once
            assert index.info()["catalog"]["segments"] == index.vectors.count() == index.lexical.count()
            assert not index.info()["failures"]
    assert marker.exists(), "the kill stage never ran: the test would prove nothing"
    killed = int(marker.read_text())
    assert job["status"] == "done" and job["result"] == "indexed", job
    assert job["attempt"] == 2  # the video was sent again after its worker died
    assert int(WORKER.match(job["worker"]).group(1)) != killed  # and finished on another process


def test_worker_dying_every_time_fails_the_job_with_nothing_committed(media, cluster, tmp_path):
    with TestClient(create_app(tmp_path / "idx", _ray(media, cluster))) as c:
        _with_stages(c, [KillAlways("victim.mp4")])
        c.app.state.svc.ingest_pool.resources.max_retries = 1
        bad = _follow(c, [_submit(c, media / "victim.mp4")])
        ok = _follow(c, [_submit(c, media / "silent.mp4")])  # the pool still works afterwards
        (job,), (good,) = bad.values(), ok.values()
        assert job["status"] == "failed" and job["attempt"] == 2, job
        assert job["error"]["code"] == "worker_crash"
        assert "died 2 times" in job["error"]["message"] and "nothing of it was committed" in job["error"]["message"]
        assert good["status"] == "done" and good["result"] == "indexed", good
        with VideoIndex.open(tmp_path / "idx") as index:
            assert [os.path.basename(v.source) for v in index.list_videos(limit=10)] == ["silent.mp4"]
            assert index.info()["catalog"]["segments"] == index.vectors.count()
            assert [f["code"] for f in index.info()["failures"]] == ["worker_crash"]


def test_jobs_in_flight_at_shutdown_are_abandoned_and_done_after_restart(media, cluster, tmp_path):
    marker = tmp_path / "stalled.pid"
    idx = tmp_path / "idx"
    with TestClient(create_app(idx, _ray(media, cluster, grace=0.5))) as c:
        _with_stages(c, [Stall("victim.mp4", str(marker))])
        job = _submit(c, media / "victim.mp4")
        for _ in range(2400):  # until the worker is inside the stalling stage
            if marker.exists():
                break
            time.sleep(0.05)
        assert marker.exists()
        row = c.get(f"/v1/jobs/{job}").json()
        assert row["status"] == "running" and WORKER.match(row["worker"] or ""), row
    with VideoIndex.open(idx) as index:
        assert index.list_videos() == []  # nothing committed
    with TestClient(create_app(idx, _ray(media, cluster))) as c:
        row = c.get(f"/v1/jobs/{job}").json()
        assert row["status"] in ("queued", "running"), row  # requeued at start
        (done,) = _follow(c, [job]).values()
    assert done["status"] == "done" and done["result"] == "indexed", done
    with VideoIndex.open(idx) as index:
        assert [os.path.basename(v.source) for v in index.list_videos()] == ["victim.mp4"]


def test_no_slot_left_for_ingest_is_refused_at_start_with_the_numbers(media, cluster, tmp_path):
    from engine.errors import InputError

    with pytest.raises(InputError, match="has 2 CPU slots, 2 of them left to the search replicas") as e:
        with TestClient(create_app(tmp_path / "idx", _ray(media, cluster, replicas=2))):
            pass
    assert "--ingest-slots 0" in str(e.value)
    for _ in range(600):  # the replicas started are ended again (Ray frees their slots shortly after)
        if ray.available_resources().get("CPU") == 2:
            break
        time.sleep(0.05)
    assert ray.available_resources().get("CPU") == 2


def test_serve_flags():
    from api.app import settings_from_args
    from api.cli import build_parser

    def settings(*flags: str) -> Settings:
        return settings_from_args(build_parser().parse_args(["serve", "--index", "x", *flags]))

    off = settings()
    assert not off.ray_ingest and off.replicas == 0
    both = settings("--ray", "head:6379")
    assert both.ray_ingest and both.ingest_slots is None and both.replicas == 2 and both.ray_address == "head:6379"
    only_ingest = settings("--ray", "--replicas", "0", "--ingest-slots", "3")
    assert only_ingest.ray_ingest and only_ingest.ingest_slots == 3 and only_ingest.replicas == 0
    only_search = settings("--ray", "--ingest-slots", "0")
    assert not only_search.ray_ingest and only_search.replicas == 2
    from engine.errors import InputError

    with pytest.raises(InputError, match="--ingest-slots must be >= 0"):
        settings("--ray", "--ingest-slots", "-1")
