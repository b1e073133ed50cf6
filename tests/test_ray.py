"""Vidseek on a Ray cluster of two local nodes (a head and a worker, one CPU each):
distributed ingest equals single-process ingest, a worker killed mid-video is retried
and nothing is lost, sharded search equals single-process search, and a killed replica
is replaced while searches keep succeeding.

One cluster and one pair of indexes per module (Ray starts in seconds, the models load
in each worker). Skipped with the reason when Ray cannot start here. The judged set of
``../shared/bench`` over ``../shared/media`` runs under the slow marker.
"""
from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from engine.catalog import MODALITIES
from engine.index import VideoIndex
from indexer.metadata import Sidecar
from indexer.options import IndexOptions
from indexer.pipeline import index_paths
from indexer.stages import Stage, Work, build_stages
from query.plan import SearchOptions
from tests import synth

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -c constraints.txt 'ray[data,serve]')")

# One thread a worker on both paths, so that the models compute the same floats.
FAST = IndexOptions(speech=False, ocr=False, workers=1, threads_per_worker=1)
TITLES = {
    "cuts.mp4": ("Harbour ferries at dawn", ["boats", "harbour"]),
    "sign.mp4": ("Grand opening sale sign", ["shop", "sale"]),
    "silent.mp4": ("Silent test pattern", ["pattern"]),
    "bars.mp4": ("Colour bars broadcast test", ["broadcast"]),
}
QUERIES = ["harbour ferries", "grand opening sale", "test pattern", "colour bars", "boats at dawn",
           "a shop sign", "broadcast", "moving shapes"]


class KillOnce(Stage):
    """Kills its own worker process (SIGKILL, as a crash or the OOM killer would) the
    first time it meets ``victim``; a marker file records the kill."""

    name = "kill_once"
    needs = ("frames",)
    adds = ()
    at = 0.9

    def __init__(self, victim: str, marker: str) -> None:
        self.victim, self.marker = victim, marker

    def run(self, work: Work) -> None:
        if os.path.basename(work.source) == self.victim and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def two_node_cluster():
    """A local Ray cluster of two nodes with one CPU each, this process connected (the
    test skips with the reason when Ray does not start here)."""
    from ray.cluster_utils import Cluster

    from engine.cluster import connect

    try:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        c.add_node(num_cpus=1)
        connect(c.address)
    except Exception as e:  # no Ray runtime on this machine
        pytest.skip(f"a local Ray cluster does not start here: {type(e).__name__}: {e}")
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def cluster():
    with two_node_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def clips(tmp_path_factory, tools) -> list[Path]:
    d = tmp_path_factory.mktemp("ray_clips")
    out = [synth.make_cuts_clip(d, name="cuts.mp4")[0],
           synth.make_text_clip(d, "GRAND OPENING SALE", name="sign.mp4", size=(640, 360), fontsize=48),
           synth.make_no_audio_clip(d, name="silent.mp4")]
    bars = d / "bars.mp4"
    synth._ffmpeg("-f", "lavfi", "-i", "smptebars=size=320x240:rate=10:duration=3", *synth._X264,
                  *synth._BITEXACT, str(bars))
    return out + [bars]


def _sidecar(clips: list[Path]) -> Sidecar:
    return Sidecar.from_mapping({str(p): {"title": TITLES[p.name][0], "tags": TITLES[p.name][1]} for p in clips})


@pytest.fixture(scope="module")
def single_index(tmp_path_factory, clips) -> Path:
    idx = tmp_path_factory.mktemp("single") / "index"
    report = index_paths([str(p) for p in clips], idx, options=FAST, metadata=_sidecar(clips))
    assert not report.failed, report.summary()
    return idx


@pytest.fixture(scope="module")
def ray_ingest(tmp_path_factory, cluster, clips):
    from indexer.distributed import index_paths_ray

    d = tmp_path_factory.mktemp("ray")
    marker = d / "killed.pid"
    stages = build_stages(FAST, extra=[KillOnce("sign.mp4", str(marker))])
    events = []
    report = index_paths_ray([str(p) for p in clips], d / "index", options=FAST, metadata=_sidecar(clips),
                             stages=stages, progress=events.append)
    return d / "index", report, marker, events


def _by_source(index_dir: Path) -> dict:
    with VideoIndex.open(index_dir) as index:
        out = {}
        for v in index.list_videos(limit=100):
            segs = index.catalog.segments_of(v.key)
            ids = [s.id for s in segs]
            vecs = index.modality_vectors(ids, list(MODALITIES))
            out[os.path.basename(v.source)] = {
                "video": (v.duration, v.width, v.height, v.title, tuple(v.tags)),
                "segments": [(s.start, s.end, s.transcript, s.ocr_text, json.dumps(s.labels)) for s in segs],
                "vectors": {m: [vecs[m][i] for i in ids if i in vecs[m]] for m in vecs},
            }
        return out


def test_distributed_ingest_equals_single_process(single_index, ray_ingest):
    ray_dir, report, _, events = ray_ingest
    assert not report.failed, report.summary()
    assert sorted(r.status for r in report.results) == ["indexed"] * 4
    one, dist = _by_source(single_index), _by_source(ray_dir)
    assert sorted(one) == sorted(dist) == sorted(TITLES)
    for name in one:
        assert dist[name]["video"] == one[name]["video"], name
        assert dist[name]["segments"] == one[name]["segments"], name
        assert set(dist[name]["vectors"]) == set(one[name]["vectors"]), name
        for m, vs in one[name]["vectors"].items():
            assert len(dist[name]["vectors"][m]) == len(vs), (name, m)
            for a, b in zip(dist[name]["vectors"][m], vs):
                np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"{name} {m}")
    kinds = {e.kind for e in events}
    assert {"start", "stage", "file", "end"} <= kinds  # the workers' stages reach the driver's progress


def test_killed_worker_task_is_retried_and_nothing_is_lost(ray_ingest):
    ray_dir, report, marker, _ = ray_ingest
    assert marker.exists(), "the kill stage never ran: the test would prove nothing"
    killed_pid = int(marker.read_text())
    assert killed_pid != os.getpid()
    assert {os.path.basename(r.source): r.status for r in report.results}["sign.mp4"] == "indexed"
    with VideoIndex.open(ray_dir) as index:
        videos = index.list_videos(limit=100)
        assert sorted(os.path.basename(v.source) for v in videos) == sorted(TITLES)  # each once
        assert index.info()["catalog"]["segments"] == index.vectors.count() == index.lexical.count()
        assert not index.info()["failures"]


def _hits(resp) -> list[tuple]:
    return [(h.video_id, h.start, h.end, h.score) for h in resp.hits]


def _assert_same_ranking(got: dict, want: dict) -> None:
    """The same moments in the same order for every query; scores equal to 1e-5 (the
    exact rescoring multiplies the candidates' vectors in another row order when they
    come from several groups, which moves the last float32 digits)."""
    assert set(got) == set(want)
    for q in want:
        assert [h[:3] for h in got[q]] == [h[:3] for h in want[q]], q
        np.testing.assert_allclose([h[3] for h in got[q]], [h[3] for h in want[q]], atol=1e-5, err_msg=q)


def _single_results(index_dir: Path) -> dict[str, list[tuple]]:
    from query.planner import Searcher

    with VideoIndex.open(index_dir) as index:
        s = Searcher(index)
        return {q: _hits(s.search(q, options=SearchOptions(k=10, min_confidence="low"))) for q in QUERIES}


def test_sharded_search_in_process_equals_single_process(ray_ingest):
    from query.shards import ShardedSearcher

    ray_dir = ray_ingest[0]
    want = _single_results(ray_dir)
    assert any(want.values())
    s = ShardedSearcher(ray_dir, groups=3, ray=False, warm=False)
    try:
        n = s.base.config.shards
        assert sorted(sum(s.shards, [])) == list(range(n)) and all(s.shards)  # disjoint, every shard held
        router_bm25 = []
        s.base.lexical.search = lambda *a, **kw: router_bm25.append(a)  # the groups answer BM25, not the router
        got = {q: _hits(s.search(q, options=SearchOptions(k=10, min_confidence="low"))) for q in QUERIES}
        assert s.base.vectors.count() == 0  # the router holds no vectors: every dense read fanned out
        assert router_bm25 == []
    finally:
        s.close()
    _assert_same_ranking(got, want)


def test_sharded_search_on_ray_equals_single_process(ray_ingest, cluster):
    from query.shards import ShardedSearcher

    ray_dir = ray_ingest[0]
    want = _single_results(ray_dir)
    s = ShardedSearcher(ray_dir, groups=2, replicas=1, num_cpus=1, warm=False)
    try:
        pings = [ray.get(s.handles(g)[0].ping.remote()) for g in range(2)]
        assert sorted(p["shards"][0] for p in pings) == [0, 1]
        with VideoIndex.open(ray_dir) as one:
            assert sum(p["vectors"] for p in pings) == one.vectors.count()
            assert sum(p["bm25"]["docs"] for p in pings) == one.lexical.count()  # each group its videos' BM25
        assert len({p["node"] for p in pings}) == 2  # one CPU a node: the groups sit on both nodes
        got = {q: _hits(s.search(q, options=SearchOptions(k=10, min_confidence="low"))) for q in QUERIES}
    finally:
        s.close()
    _assert_same_ranking(got, want)


def test_more_replicas_than_the_cluster_has_slots_is_refused_with_the_numbers(ray_ingest, cluster):
    from engine.errors import InputError
    from query.shards import ShardedSearcher

    with pytest.raises(InputError, match="2 shard groups x 3 replicas need 6 CPU slots; the Ray cluster has 2"):
        ShardedSearcher(ray_ingest[0], groups=2, replicas=3, warm=False)


def test_killed_replica_is_replaced_and_searches_keep_succeeding(ray_ingest, cluster):
    from query.shards import ShardedSearcher

    ray_dir = ray_ingest[0]
    s = ShardedSearcher(ray_dir, groups=1, replicas=2, num_cpus=1, warm=False)
    try:
        opts = SearchOptions(k=10, min_confidence="low")
        before = _hits(s.search(QUERIES[0], options=opts))
        victim = s.handles(0)[0]
        old = ray.get(victim.ping.remote())["pid"]
        os.kill(old, signal.SIGKILL)  # kill -9 of the replica's process
        after = [_hits(s.search(q, options=opts)) for q in [QUERIES[0]] * 6]
        assert all(a == before for a in after)  # one group: the same process order, the same floats
        new = _ping_after_restart(victim)["pid"]
        assert new != old
        assert _hits(s.search(QUERIES[0], options=opts)) == before
    finally:
        s.close()


def test_serve_with_ray_routes_http_searches_through_the_shard_groups(ray_ingest, cluster, tmp_path):
    """`vidseek serve --ray --shard-groups 2 --replicas 1`: the service's searches go to
    the router (no vector in the server process) and rank as one process does."""
    import shutil

    from fastapi.testclient import TestClient

    from api.app import Settings, create_app

    from query.planner import Searcher

    idx = tmp_path / "served"
    shutil.copytree(ray_ingest[0], idx)

    def key(hits: list[dict]) -> list[tuple]:
        return [(h["video_id"], h["start"], h["end"], h["score"]) for h in hits]


    with VideoIndex.open(idx) as index:  # what the route asks for: k + 1 moments, as JSON
        s = Searcher(index)
        want = {q: key(s.search(q, options=SearchOptions(k=11, min_confidence="low")).to_dict()["hits"][:10])
                for q in QUERIES[:3]}
    settings = Settings(rate=0, warm_models=False, replicas=1, shard_groups=2, ray_address=cluster.address)
    with TestClient(create_app(idx, settings)) as c:
        svc = c.app.state.svc
        assert svc.router is not None and svc.router.base.vectors.count() == 0
        got = {}
        for q in QUERIES[:3]:
            r = c.get("/v1/search", params={"q": q, "k": 10, "min_confidence": "low"})
            assert r.status_code == 200, r.text
            got[q] = key(r.json()["hits"])
    assert all(want.values())
    _assert_same_ranking(got, want)


def test_vidseek_index_with_ray_indexes_through_the_cli(cluster, clips, tmp_path, capsys):
    from api.cli import main

    rc = main(["index", str(clips[2]), "--index", str(tmp_path / "cli"), "--ray", cluster.address,
               "--no-speech", "--no-ocr", "--quiet", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["by_status"] == {"indexed": 1}
    with VideoIndex.open(tmp_path / "cli") as index:
        assert [os.path.basename(v.source) for v in index.list_videos()] == ["silent.mp4"]


def _ping_after_restart(handle) -> dict:
    """The replica's ping once Ray has restarted it (calls meanwhile say "restarting").
    The attempt cap only keeps a broken cluster from hanging the suite."""
    import time

    from ray.exceptions import ActorUnavailableError

    for _ in range(2400):
        try:
            return ray.get(handle.ping.remote())
        except ActorUnavailableError:
            time.sleep(0.25)
    raise AssertionError("the killed replica was never restarted")


@pytest.mark.slow
def test_sharded_search_equals_single_process_on_the_judged_set(shared_media, cluster, tmp_path_factory):
    """The real clips indexed on the cluster, then every judged query searched both ways."""
    from indexer.distributed import index_paths_ray
    from query.shards import ShardedSearcher

    queries_file = shared_media.parent / "bench" / "queries-public.jsonl"
    if not queries_file.exists():
        pytest.skip(f"{queries_file} is absent")
    queries = [json.loads(line)["query"] for line in queries_file.read_text().splitlines() if line.strip()]
    idx = tmp_path_factory.mktemp("judged") / "index"
    report = index_paths_ray([str(shared_media)], idx, options=IndexOptions())
    assert not report.failed, report.summary()
    from query.planner import Searcher

    opts = SearchOptions(k=10)
    with VideoIndex.open(idx) as index:
        single = Searcher(index)
        want = {q: _hits(single.search(q, options=opts)) for q in queries}
    s = ShardedSearcher(idx, groups=2, replicas=1, num_cpus=1)
    try:
        got = {q: _hits(s.search(q, options=opts)) for q in queries}
    finally:
        s.close()
    _assert_same_ranking(got, want)
