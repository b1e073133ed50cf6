"""The benchmark suites at the ``ci`` preset: each runs, writes a valid JSON result and
a Markdown report whose PNGs exist, and ``compare`` finds a planted difference.

Vector suites run on a few thousand seeded synthetic vectors (seconds). The quality
and ingest suites run the real pipeline and models on the synthetic clips of
``tests/conftest.py`` (spoken sentence, burned-in text), with queries written here,
so they need no shared media. The whole module takes about 30-40 s on 2 busy cores,
most of it loading the models once for the quality and ingest suites."""
from __future__ import annotations

import copy
import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import compare as cmp
from benchmarks.core import TreeCpu, knn_recall, latency_summary, percentile, time_each, write_json
from benchmarks.metrics import Relevant
from benchmarks.peers import RankBM25Peer, SegmentText, make_quality_peer, raw_search_params
from benchmarks.presets import PRESETS, SUITES, get_preset
from benchmarks.report import write_report
from benchmarks.suites import QualityInputs, RunOptions, parse_suites, run_benchmarks
from benchmarks.suites.common import Metric
from benchmarks.suites.judged import Query
from benchmarks.suites.quality import cache_index_dir, select_subset
from engine.errors import InputError, UnknownNameError
from tests.conftest import E2E_SPEECH, E2E_TEXT

HAS_TXTAI = importlib.util.find_spec("txtai") is not None


# -- presets, statistics, selection (no models) -----------------------------------------------
def test_presets_cover_every_suite_and_unknown_names_are_listed() -> None:
    assert {"ci", "small", "medium", "large"} <= set(PRESETS)
    for p in PRESETS.values():
        assert p.latency.indexes and p.scale.points and p.ingest.repeats >= 1
    # large is the 1M / 10M point: the compressed layout at 10M.
    assert max(pt.n for pt in PRESETS["large"].scale.points) == 10_000_000
    with pytest.raises(UnknownNameError, match="small"):
        get_preset("tiny")
    assert parse_suites("ingest,quality") == ["quality", "ingest"]  # run order, not argument order
    assert parse_suites(None) == list(SUITES)
    with pytest.raises(UnknownNameError, match="latency"):
        parse_suites("latency,speed")


def test_latency_summary_hand_computed() -> None:
    s = latency_summary([[1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]])
    # Per-repeat medians 2.5 and 3.5: median 3.0, range [2.5, 3.5].
    assert s["p50_ms"] == pytest.approx(3.0) and s["p50_ms_range"] == [2.5, 3.5]
    assert s["mean_ms"] == pytest.approx(3.0)
    # Pooled [1,2,2,3,3,4,4,5]: quartiles 2 and 4.
    assert s["iqr_ms"] == pytest.approx(2.0)
    assert (s["repeats"], s["queries"], s["min_ms"], s["max_ms"]) == (2, 4, 1.0, 5.0)
    with pytest.raises(InputError):
        latency_summary([])


def test_knn_recall_ignores_padding() -> None:
    truth = np.array([[1, 2], [3, 4]])
    found = np.array([[2, -1], [4, 3]])
    assert knn_recall(found, truth) == pytest.approx(3 / 4)


def test_time_each_warms_up_untimed_and_returns_every_result() -> None:
    calls: list[int] = []

    def fn(x: int) -> int:
        calls.append(x)
        return x * 10

    ms, out = time_each(fn, [1, 2, 3], warmup=2)
    assert calls == [1, 2, 1, 2, 3]  # the warm-up calls come first and are not in the timings
    assert out == [10, 20, 30] and len(ms) == 3 and all(t >= 0 for t in ms)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert math.isnan(percentile([], 50))


def test_write_json_is_atomic_and_writes_what_json_cannot_hold_as_text(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er" / "r.json"
    write_json(out, {"path": tmp_path, "zh": "成龙", "n": 1})
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n") and "成龙" in text
    assert json.loads(text) == {"path": str(tmp_path), "zh": "成龙", "n": 1}
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]  # no temporary file left


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_tree_cpu_counts_a_grandchild_that_a_running_child_reaps() -> None:
    """The fork server's workers are grandchildren it reaps while it still runs:
    RUSAGE_CHILDREN never sees them, TreeCpu must."""
    import subprocess
    import sys

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass"
    child = ("import subprocess, sys, time\n"
             f"subprocess.run([sys.executable, '-c', {burn!r}])\n"
             "print('done', flush=True)\n"
             "time.sleep(30)")
    with TreeCpu(every=0.05) as meter:
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    assert line == "done"
    assert meter.seconds >= 0.8  # the grandchild's 1 s, less what it spent after the last look


def test_stream_batches_ground_truth_is_exact_and_generation_is_timed() -> None:
    import faiss

    from benchmarks.suites.vectors_common import Dataset, stream_batches

    # 250 vectors in batches of 100: the last batch is 50, and k=60 is longer than it.
    ds = Dataset.make(250, 64, 7, seed=3, batch=100, clusters=5)
    seen: list[tuple[int, int]] = []
    timing: dict[str, float] = {}
    truth, gt_s = stream_batches(ds, 60, [lambda start, x: seen.append((start, len(x)))], timing=timing)
    assert seen == [(0, 100), (100, 100), (200, 50)]
    allx = np.concatenate([ds.make_batch(s) for s in ds.starts()])
    _, exact = faiss.knn(ds.queries, allx, 60, metric=faiss.METRIC_INNER_PRODUCT)
    assert truth.shape == (7, 60) and knn_recall(truth, exact) == 1.0
    assert timing["generate_s"] > 0 and gt_s > 0
    # The generator's settings travel with the data set: another shape is other data.
    assert not np.allclose(Dataset.make(250, 64, 7, seed=3, batch=100).queries, ds.queries)


def test_sweep_parsing_and_knobs_that_apply() -> None:
    from benchmarks.presets import SweepPoint
    from benchmarks.suites.vectors import parse_sweep
    from benchmarks.suites.vectors_common import knob_applies

    pts = parse_sweep("default; nprobe=32,k_factor=8;ef_search=64;")
    assert pts == (SweepPoint(), SweepPoint(nprobe=32, k_factor=8), SweepPoint(ef_search=64))
    assert [p.label() for p in pts] == ["default", "nprobe=32,k_factor=8", "ef_search=64"]
    with pytest.raises(InputError, match="bad --params item 'nlist=4'"):
        parse_sweep("nlist=4")
    with pytest.raises(InputError, match="integer"):
        parse_sweep("nprobe=x")
    assert knob_applies(SweepPoint(nprobe=8), "IVF{nlist},PQ48x4fs,Refine(SQfp16)")
    assert not knob_applies(SweepPoint(ef_search=8), "IVF{nlist},PQ48x4fs")
    assert not knob_applies(SweepPoint(nprobe=8), "HNSW32,Flat") and knob_applies(SweepPoint(), "HNSW32,Flat")


def test_bench_vectors_entry_runs_the_framework(tmp_path: Path, capsys) -> None:
    from benchmarks import bench_vectors

    out = tmp_path / "v.json"
    rc = bench_vectors.main(["--n", "1200", "--dim", "64", "--queries", "20", "--shards", "1", "--flat-max", "500",
                             "--train-sample", "1200", "--threads", "1", "--params", "default;nprobe=2;ef_search=8",
                             "--clusters", "20", "--tmp", str(tmp_path), "--out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert set(data) == {"benchmark", "when", "command", "machine", "data", "settings", "factory_template", "shards",
                         "build", "serving", "results"}
    assert set(data["build"]) == {"generate_s", "add_s", "ground_truth_s", "save_s", "add_vectors_per_s",
                                  "peak_rss_bytes", "rss_before_build_bytes", "rss_after_build_bytes", "disk_bytes",
                                  "disk_bytes_per_vector"}
    assert {"cpu", "logical_cores", "ram_bytes", "faiss", "faiss_omp_threads", "gpus"} <= set(data["machine"])
    # ef_search means nothing to an IVF factory: that row is left out.
    assert [r["params"] for r in data["results"]] == ["default", "nprobe=2"]
    assert data["shards"][0]["kind"] == "approx" and data["serving"]["count"] == 1200
    assert 0 < data["results"][1]["recall_at_10"] <= data["results"][0]["recall_at_10"] <= 1
    assert [p.name for p in tmp_path.iterdir()] == ["v.json"]  # the temporary index is removed
    assert "recall@10" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="bad --params item"):
        bench_vectors.main(["--params", "nlist=3", "--out", str(out)])


def test_metric_rejects_nan_and_unknown_direction() -> None:
    with pytest.raises(InputError, match="finite"):
        Metric("x", math.nan, "lower")
    with pytest.raises(InputError, match="better"):
        Metric("x", 1.0, "up")


def _q(qid: str, kind: str, *clips: str) -> Query:
    return Query(qid, f"query {qid}", kind, tuple(Relevant(c) for c in clips))


def test_select_subset_is_cheap_balanced_and_complete() -> None:
    durations = {"a": 2.0, "b": 3.0, "c": 30.0, "d": 4.0, "e": 1.0, "f": 50.0}
    queries = [
        _q("v1", "visual", "c"), _q("v2", "visual", "a"),
        _q("s1", "speech", "b"), _q("s2", "speech", "f"),
        _q("o1", "ocr", "d", "f"),  # needs f: too long for the budget
        _q("m1", "mixed", "e", "a"),
        _q("n1", "negative"),
    ]
    clips, picked = select_subset(durations, queries, max_clips=4, max_media_seconds=20.0)
    assert clips == ["a", "b", "e"]
    # Every picked query's ground truth is wholly inside the subset; negatives always come.
    assert [q.qid for q in picked] == ["v2", "s1", "m1", "n1"]
    clips2, _ = select_subset(durations, queries, max_clips=1, max_media_seconds=None)
    assert clips2 == ["a"]  # visual comes first and a is its cheapest
    with pytest.raises(InputError, match="no judged query fits"):
        select_subset(durations, queries, max_clips=1, max_media_seconds=0.5)


def test_cache_dir_is_keyed_by_the_clip_set(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"y" * 20)
    one = cache_index_dir({"a": str(a)}, tmp_path)
    assert one == cache_index_dir({"a": str(a)}, tmp_path)
    assert one != cache_index_dir({"a": str(a), "b": str(b)}, tmp_path)
    a.write_bytes(b"x" * 11)  # another file under the same name is another clip set
    assert one != cache_index_dir({"a": str(a)}, tmp_path)


# -- peers ---------------------------------------------------------------------------------
DOCS = [
    SegmentText("c1", "/m/c1.mp4", 0.0, 2.0, "the red boat leaves the harbour"),
    SegmentText("c1", "/m/c1.mp4", 2.0, 4.0, "boat boat boat in the harbour at night"),
    SegmentText("c2", "/m/c2.mp4", 0.0, 3.0, "a cat on the sofa"),
    SegmentText("c3", "/m/c3.mp4", 5.0, 9.0, "grand opening sale"),
    SegmentText("c4", "/m/c4.mp4", 0.0, 1.0, "a dog runs in the park"),
    SegmentText("c5", "/m/c5.mp4", 0.0, 1.0, "cooking pasta with tomatoes"),
    SegmentText("c6", "/m/c6.mp4", 0.0, 1.0, "snow on the mountain"),
]


def test_rank_bm25_peer_one_moment_per_clip_and_no_zero_matches() -> None:
    peer = RankBM25Peer(DOCS)
    resp = peer.search("boat harbour", 10)
    # c1's best segment (the one repeating "boat") only; no other clip shares a term.
    assert [(h.source, h.start) for h in resp.hits] == [("/m/c1.mp4", 2.0)]
    assert peer.search("sale", 10).hits[0].source == "/m/c3.mp4"
    assert peer.search("!!", 10).hits == []
    # A term in half of the segments has BM25Okapi idf 0, yet those segments still match.
    half = RankBM25Peer(DOCS[2:4])
    assert [h.source for h in half.search("sale", 10).hits] == ["/m/c3.mp4"]
    assert peer.describe()["package"] == "rank-bm25"
    with pytest.raises(UnknownNameError, match="rank-bm25"):
        make_quality_peer("lucene", DOCS)
    with pytest.raises(InputError, match="no segment text"):
        RankBM25Peer([])


def test_quality_suite_checks_named_peers_before_any_work(tmp_path: Path) -> None:
    from benchmarks.suites import quality

    inputs = QualityInputs({"c1": str(tmp_path / "c1.mp4")}, (Query("q", "x", "speech", (Relevant("c1"),)),))
    with pytest.raises(UnknownNameError, match="txtai-hybrid"):
        quality.run(get_preset("ci").quality, inputs, tmp_path / "cache", peers=("lucene",))
    assert not (tmp_path / "cache").exists()  # nothing was indexed


@pytest.mark.skipif(not HAS_TXTAI, reason="txtai is not installed (the bench extra)")
def test_txtai_hybrid_peer_uses_the_packaged_minilm() -> None:
    peer = make_quality_peer("txtai-hybrid", DOCS)
    assert Path(peer.describe()["config"]["path"]).is_dir()
    hits = peer.search("a ship in the port", 10).hits  # no shared word with c1: the dense half finds it
    assert hits[0].source == "/m/c1.mp4"
    assert len({h.source for h in hits}) == len(hits)


def test_raw_search_params_follow_the_index_structure() -> None:
    import faiss

    d = 32
    x = np.random.default_rng(0).standard_normal((500, d)).astype("float32")
    idx = faiss.IndexIDMap(faiss.index_factory(d, "IVF8,PQ8x4fs,Refine(SQfp16)", faiss.METRIC_INNER_PRODUCT))
    idx.train(x)
    idx.add_with_ids(x, np.arange(500, dtype=np.int64) + 1000)
    p = raw_search_params(idx, 10, nprobe=3, ef_search=None, k_factor=4)
    assert isinstance(p, faiss.IndexRefineSearchParameters) and p.k_factor == 4
    assert faiss.downcast_index(idx.index).base_index is not None
    _, ids = idx.search(x[:2], 3, params=p)
    assert ids[0, 0] == 1000 and ids[1, 0] == 1001  # the id map is kept
    hnsw = faiss.IndexHNSWFlat(d, 8, faiss.METRIC_INNER_PRODUCT)
    assert raw_search_params(hnsw, 10, nprobe=None, ef_search=4, k_factor=None).efSearch == 10  # at least k
    assert raw_search_params(faiss.IndexFlatIP(d), 10, nprobe=None, ef_search=None, k_factor=None) is None


# -- vector suites at ci size --------------------------------------------------------------
@pytest.fixture(scope="module")
def vector_run(tmp_path_factory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("bench_vec")
    opts = RunOptions(work_dir=root / "work", cache_dir=root / "cache", command="test", keep_going=False)
    result = run_benchmarks(get_preset("ci"), ["latency", "scale"], opts)
    out = root / "out"
    write_report(result, out)
    return result, out


def _check_report(out: Path, suites: list[str]) -> dict:
    data = json.loads((out / "result.json").read_text())
    md = (out / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == len(suites)
    for img in images:
        png = out / img
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["suites"] == suites
    assert data["machine"]["cpu_count"] and data["machine"]["versions"]["faiss-cpu"]
    for m in data["metrics"]:
        assert set(m) == {"name", "value", "better", "unit", "spread"} and math.isfinite(m["value"])
    assert len({m["name"] for m in data["metrics"]}) == len(data["metrics"])  # names are unique
    return data


def test_vector_suites_write_result_and_report(vector_run) -> None:
    result, out = vector_run
    data = _check_report(out, ["latency", "scale"])
    lat = data["results"]["latency"]
    rows = lat["details"]["rows"]
    # Every configuration is there, swept, with the raw FAISS peer beside each point.
    assert {r["config"] for r in rows} == {"flat", "ivfpq-fs-refine", "hnsw", "compressed", "faiss-flat"}
    assert {r["params"] for r in rows if r["config"] == "hnsw"} == {"default", "ef_search=16", "ef_search=64"}
    assert lat["config"]["indexes"][1]["shards"][0]["kind"] == "approx"
    assert "HNSW32" in lat["config"]["indexes"][2]["shards"][0]["factory"]


def test_latency_peers_search_the_same_index(vector_run) -> None:
    rows = vector_run[0]["results"]["latency"]["details"]["rows"]
    by = {(r["config"], r["system"], r["params"]): r for r in rows}
    exact = [r for r in rows if r["system"] == "faiss-flat"]
    assert len(exact) == 1 and exact[0]["recall_at_10"] == 1.0
    assert by[("flat", "vidseek", "default")]["recall_at_10"] == 1.0
    # The raw peer is the store's own index with the same resolved parameters:
    # identical results, so identical recall, at every point of every sweep.
    for (config, system, params), r in by.items():
        if system == "vidseek" and config != "compressed":
            assert by[(config, "faiss-raw", params)]["recall_at_10"] == r["recall_at_10"]
            assert "overhead_p50_ms" in r
    # The compressed layout keeps its refine rows on disk, which raw FAISS cannot read.
    assert not any(c == "compressed" and s == "faiss-raw" for c, s, _ in by)
    assert any(c == "compressed" and s == "vidseek" for c, s, _ in by)
    # More probes never find less (same index, same queries).
    ivf = [by[("ivfpq-fs-refine", "vidseek", p)]["recall_at_10"] for p in ("nprobe=2", "nprobe=8")]
    assert ivf[0] <= ivf[1]


def test_scale_suite_grows_from_flat_to_approximate(vector_run) -> None:
    rows = [r for r in vector_run[0]["results"]["scale"]["details"]["rows"] if r["system"] == "vidseek"]
    assert [r["n"] for r in rows] == [1000, 3000]
    # ci: 2 shards, flat_max 1000 -> 500 per shard stays exact, 1500 per shard does not.
    assert rows[0]["shard_kinds"] == ["flat"] and rows[0]["recall_at_10"] == 1.0
    assert rows[1]["shard_kinds"] == ["approx"]
    for r in rows:
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["p50_ms_range"][0] <= r["p50_ms"] <= r["p50_ms_range"][1]


# -- compare -------------------------------------------------------------------------------
def test_compare_finds_a_planted_regression(vector_run, tmp_path: Path, capsys) -> None:
    base = vector_run[0]
    worse = copy.deepcopy(base)
    metrics = {m["name"]: m for m in worse["metrics"]}
    p50 = metrics["latency/hnsw/default/p50_ms"]
    p50["value"] = p50["value"] * 3 + 5 * (p50["spread"] or 0) + 1.0  # far beyond its spread
    rec = metrics["latency/hnsw/ef_search=64/recall_at_10"]
    rec["value"] = rec["value"] - 0.2
    better = metrics["latency/flat/build_s"]
    better["value"] = better["value"] / 10 - 1.0
    worse["metrics"].append({"name": "latency/new/thing", "value": 1.0, "better": "none", "unit": "", "spread": None})
    diffs = {d.name: d for d in cmp.compare(base, worse)}
    assert diffs["latency/hnsw/default/p50_ms"].status == "regression"
    assert diffs["latency/hnsw/ef_search=64/recall_at_10"].status == "regression"
    assert diffs["latency/hnsw/ef_search=64/recall_at_10"].abs_diff == pytest.approx(-0.2)
    assert diffs["latency/flat/build_s"].status == "improved"
    assert diffs["latency/new/thing"].status == "new"
    unchanged = [d for d in diffs.values() if d.status == "same"]
    assert len(unchanged) == len(base["metrics"]) - 3
    # A change inside the spread is noise.
    m = {x["name"]: x for x in base["metrics"]}["latency/hnsw/default/p50_ms"]
    noisy = copy.deepcopy(base)
    for x in noisy["metrics"]:
        if x["name"] == m["name"]:
            x["value"] = m["value"] * 1.04
    assert {d.status for d in cmp.compare(base, noisy)} == {"same"}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(base))
    b.write_text(json.dumps(worse))
    from benchmarks.cli import main

    assert main(["compare", str(a), str(b)]) == 0
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == 1
    assert main(["compare", str(a), str(a), "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert "latency/hnsw/default/p50_ms" in out and "**regression**" in out
    assert main(["compare", str(a), str(tmp_path / "absent.json")]) == 2


def test_a_failing_suite_is_recorded_and_the_others_kept(tmp_path: Path) -> None:
    opts = RunOptions(work_dir=tmp_path / "w", cache_dir=tmp_path / "c", ingest_clips=[tmp_path / "absent.mp4"])
    result = run_benchmarks(get_preset("ci"), ["scale", "ingest"], opts)
    assert result["suites"] == ["scale"] and result["results"]["scale"]["metrics"]
    assert "ingest failed" in result["failed"]["ingest"]["error"]
    write_report(result, tmp_path / "out")
    assert "Suite ingest FAILED" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(InputError, match="ingest failed"):
        run_benchmarks(get_preset("ci"), ["ingest"], RunOptions(
            work_dir=tmp_path / "w", cache_dir=tmp_path / "c", ingest_clips=[tmp_path / "absent.mp4"],
            keep_going=False))


def test_compare_rejects_files_without_metrics(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(InputError, match="metrics"):
        cmp.load_result(p)


def test_cli_runs_a_suite_and_vidseek_bench_is_registered(tmp_path: Path) -> None:
    from api.cli import build_parser
    from benchmarks.cli import main

    out = tmp_path / "run"
    rc = main(["--suite", "scale", "--preset", "ci", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
               "--quiet", "--repeats", "1"])
    assert rc == 0
    data = _check_report(out, ["scale"])
    assert data["results"]["scale"]["config"]["repeats"] == 1
    assert data["command"].startswith("python -m benchmarks --suite scale")
    assert not any(p.name.startswith("scratch") for p in (tmp_path / "c").iterdir())  # scratch removed
    args = build_parser().parse_args(["bench", "--preset", "ci", "--suite", "latency"])
    assert args.preset == "ci" and args.suite == "latency" and callable(args.func)
    args = build_parser().parse_args(["bench", "compare", "a.json", "b.json", "--fail-on-regression"])
    assert args.bench_command == "compare" and args.fail_on_regression
    assert main(["--suite", "nope", "--preset", "ci", "--quiet", "--out", str(tmp_path / "x")]) == 2


# -- quality and ingest: real pipeline on synthetic clips -----------------------------------
QUERIES = (
    Query("t1", "we bake a chocolate cake with strawberries", "speech", (Relevant("talk"),)),
    Query("t2", "grand opening sale sign", "ocr", (Relevant("sign"),)),
    Query("t3", "a submarine under the arctic ice", "negative", ()),
)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, e2e_clips) -> tuple[dict, Path, Path]:
    """Every suite at the ci preset; quality over two synthetic clips (speech, text)
    indexed with the real pipeline into the cache, ingest over one."""
    root = tmp_path_factory.mktemp("bench_all")
    clips = {"talk": str(e2e_clips["speech"]), "sign": str(e2e_clips["text"])}
    opts = RunOptions(work_dir=root / "work", cache_dir=root / "cache",
                      quality_inputs=QualityInputs(clips, QUERIES, origin="synthetic clips"),
                      ingest_clips=[e2e_clips["text"]], command="test", keep_going=False)
    result = run_benchmarks(get_preset("ci"), list(SUITES), opts)
    write_report(result, root / "out")
    return result, root / "out", root


def test_all_suites_ci_write_result_and_report(full_run) -> None:
    _, out, _ = full_run
    data = _check_report(out, list(SUITES))
    assert not data["failed"]
    md = (out / "report.md").read_text()
    for title in ("## Quality", "## Latency", "## Scale", "## Ingest", "## Machine"):
        assert title in md


def test_quality_suite_scores_vidseek_and_peers(full_run) -> None:
    q = full_run[0]["results"]["quality"]
    summary = q["details"]["summary"]
    expected = {"bm25", "dense", "default", "rank-bm25"} | ({"txtai-hybrid"} if HAS_TXTAI else set())
    assert set(summary) == expected
    if not HAS_TXTAI:
        assert "txtai-hybrid" in q["config"]["peers_skipped"]
    # The spoken sentence and the burned-in text are found first by the product default
    # and by the BM25 peer (both words are in the transcript / OCR text).
    for method in ("default", "rank-bm25"):
        assert summary[method]["kinds"]["speech"]["R@1"] == 1.0, method
        assert summary[method]["kinds"]["ocr"]["MRR"] == 1.0, method
    assert summary["default"]["negative"]["n"] == 1
    assert q["config"]["index_config"]["shards"] >= 1
    names = {m["name"] for m in full_run[0]["metrics"]}
    assert "quality/default/overall/MRR" in names and "quality/rank-bm25/speech/R@1" in names
    assert E2E_SPEECH and E2E_TEXT  # the clips' known content the queries were written for


def test_quality_index_is_cached_by_clip_set(full_run, e2e_clips) -> None:
    result, _, root = full_run
    first = result["results"]["quality"]["config"]
    assert first["ingest"]["reused"] is False
    clips = {"talk": str(e2e_clips["speech"]), "sign": str(e2e_clips["text"])}
    opts = RunOptions(work_dir=root / "work2", cache_dir=root / "cache", peers=("rank-bm25",),
                      quality_inputs=QualityInputs(clips, QUERIES[:1]))
    again = run_benchmarks(get_preset("ci"), ["quality"], opts)["results"]["quality"]["config"]
    assert again["index_dir"] == first["index_dir"] and again["ingest"]["reused"] is True


def test_ingest_suite_reports_stages(full_run) -> None:
    ing = full_run[0]["results"]["ingest"]
    d = ing["details"]
    assert [c["name"] for c in d["clips"]] == ["sign.mp4"]
    assert d["media_s"] > 0 and d["speed_x_realtime"] > 0
    assert {"probe", "ocr", "text_embed"} <= set(d["stages"])
    assert all(s["range_s"][0] <= s["median_s"] <= s["range_s"][1] for s in d["stages"].values())
