"""Quality-benchmark harness (``benchmarks.suites.judged``) on a fake searcher: query
loading, per-kind summaries, Markdown/JSON/PNG output, the --check-default acceptance
rule, and the ``bench_quality`` command line over it. No models."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks import bench_quality
from benchmarks.suites import judged
from benchmarks.suites.judged import Method, Query, check_default, load_queries, run, select_methods
from benchmarks.metrics import Relevant
from engine.errors import InputError, NotFoundError

QUERIES = [
    Query("q1", "a dog on a beach", "visual", (Relevant("c1", 0.0, 4.0),)),
    Query("q2", "a red car", "visual", (Relevant("c2"),)),
    Query("q3", "she says hello", "speech", (Relevant("c3"), Relevant("c4"))),
    Query("q4", "a unicorn reading", "negative", ()),
]

# method -> qid -> [(clip, start, end, score)], best first. Sources get a folder and an
# extension so the harness has to map them back to clip ids.
RANKINGS: dict[str, dict[str, list[tuple[str, float, float, float]]]] = {
    "bm25": {
        "q1": [("c9", 0, 2, 0.9), ("c1", 0, 4, 0.8)],
        "q2": [("c2", 0, 5, 0.7)],
        "q3": [("c3", 0, 2, 0.6), ("c3", 5, 7, 0.5), ("c4", 0, 1, 0.4)],
        "q4": [("c7", 0, 1, 0.2)],
    },
    "dense": {
        "q1": [("c1", 10, 14, 0.9)],  # right clip, wrong moment
        "q2": [("c8", 0, 1, 0.5), ("c8", 3, 4, 0.4), ("c2", 0, 1, 0.3)],
        "q3": [("c5", 0, 1, 0.6)],
        "q4": [],
    },
    "default": {
        "q1": [("c1", 1, 4, 0.95)],
        "q2": [("c2", 0, 1, 0.8)],
        "q3": [("c4", 0, 1, 0.7), ("c3", 0, 1, 0.6)],
        "q4": [("c7", 0, 1, 0.4)],
    },
}


def fake_search(rankings: dict[str, dict[str, list[tuple[str, float, float, float]]]]):
    by_text = {q.text: q.qid for q in QUERIES}
    calls: list[tuple[str, str]] = []

    def search(text: str, method: Method) -> Any:
        calls.append((text, method.name))
        hits = [SimpleNamespace(source=f"/media/{c}.mp4", start=s, end=e, score=sc)
                for c, s, e, sc in rankings[method.name][by_text[text]]]
        return SimpleNamespace(hits=hits, intent={"label": "visual"}, took_ms=2.0)

    search.calls = calls  # type: ignore[attr-defined]
    return search


def _methods() -> list[Method]:
    return select_methods("bm25,dense,default")


# -- queries file ------------------------------------------------------------------------
def test_load_queries_reads_windows_and_negatives(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    p.write_text(
        '{"qid": "a", "query": "x", "kind": "visual", "relevant": [{"clip": "c1", "start": 1, "end": 2.5}]}\n'
        "\n"
        '{"qid": "b", "query": "y", "kind": "negative", "relevant": []}\n'
    )
    qs = load_queries(p)
    assert [q.qid for q in qs] == ["a", "b"]
    assert qs[0].relevant == (Relevant("c1", 1.0, 2.5),)
    assert qs[1].is_negative and qs[1].relevant_clips == set()


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"qid": "a", "query": "x", "kind": "negative", "relevant": [{"clip": "c1"}]}', "has 1 relevant"),
        ('{"qid": "a", "query": "x", "kind": "visual", "relevant": []}', "has 0 relevant"),
        ('{"qid": "a", "kind": "visual"}', "not a query line"),
        ("not json", "not a query line"),
        ('{"qid": "a", "query": "x", "kind": "ocr", "relevant": [{"clip": "c1", "start": 3}]}', "only one of"),
    ],
)
def test_load_queries_rejects_bad_lines_with_location(tmp_path: Path, line: str, message: str) -> None:
    p = tmp_path / "q.jsonl"
    p.write_text(line + "\n")
    with pytest.raises(InputError, match=message) as info:
        load_queries(p)
    assert f"{p}:1" in str(info.value)


def test_load_queries_duplicate_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    line = '{"qid": "a", "query": "x", "kind": "negative", "relevant": []}\n'
    p.write_text(line + line)
    with pytest.raises(InputError, match="duplicate qid"):
        load_queries(p)
    with pytest.raises(NotFoundError, match="does not exist"):
        load_queries(tmp_path / "absent.jsonl")


def test_select_methods_lists_valid_names() -> None:
    assert [m.name for m in select_methods(None)] == [m.name for m in judged.METHODS]
    with pytest.raises(InputError, match="Supported") as info:
        select_methods("bm25,nope")
    assert "convex@0.7" in str(info.value)


def test_method_table_matches_the_issue() -> None:
    opts = {m.name: dict(m.options) for m in judged.METHODS}
    assert opts["bm25"]["retrievers"] == ("bm25",) and opts["dense"]["retrievers"] == ("dense",)
    assert opts["rrf"] == {"fusion": "rrf", "rerank": False}
    assert [opts[f"convex@{s}"]["dense_share"] for s in (0.5, 0.7, 0.9)] == [0.5, 0.7, 0.9]
    assert opts["rrf+rerank"]["rerank"] and opts["convex+rerank"]["rerank"]
    assert opts["default"] == {}


# -- evaluation and summary ----------------------------------------------------------------
def test_run_summary_per_kind_and_overall() -> None:
    search = fake_search(RANKINGS)
    report, _, _ = run(QUERIES, _methods(), search)
    assert len(search.calls) == 3 * 4  # every query through every method
    s = report["summary"]
    bm25 = s["bm25"]["kinds"]
    # visual: q1 rank 2, q2 rank 1 -> MRR 0.75, R@1 0.5.
    assert bm25["visual"]["MRR"] == pytest.approx(0.75)
    assert bm25["visual"]["R@1"] == pytest.approx(0.5)
    assert bm25["visual"]["n"] == 2
    # speech q3: c3 twice then c4 -> deduped [c3, c4]: R@1 = 1/2, R@5 = 1, nDCG = 1.
    assert bm25["speech"]["R@1"] == pytest.approx(0.5)
    assert bm25["speech"]["R@5"] == pytest.approx(1.0)
    assert bm25["speech"]["nDCG@10"] == pytest.approx(1.0)
    # overall over the three positive queries only: (0.5 + 1 + 1) / 3.
    assert bm25["overall"]["MRR"] == pytest.approx(2.5 / 3)
    assert bm25["overall"]["n"] == 3
    assert "negative" not in bm25
    # R1@IoU only over q1 (the one window): bm25's top hit is on c9 -> 0.
    assert bm25["visual"]["R1@IoU0.5"] == 0.0 and bm25["visual"]["n_iou"] == 1
    assert bm25["speech"]["R1@IoU0.5"] is None and bm25["speech"]["n_iou"] == 0
    # dense: right clip, disjoint window -> R@1 1 but R1@IoU 0; default: IoU 3/4 -> 1.
    assert s["dense"]["kinds"]["visual"]["R@1"] == pytest.approx(0.5)
    assert s["dense"]["kinds"]["visual"]["R1@IoU0.5"] == 0.0
    assert s["default"]["kinds"]["visual"]["R1@IoU0.5"] == 1.0
    # q2 under dense: c8 twice, then c2 -> rank 2 among distinct clips.
    q2_dense = next(r for r in report["per_query"] if r["qid"] == "q2" and r["method"] == "dense")
    assert q2_dense["first_relevant_rank"] == 2 and q2_dense["top5"] == ["c8", "c2"]
    # Negatives apart: mean top-1 score; dense returned nothing.
    assert s["bm25"]["negative"]["mean_top1_score"] == pytest.approx(0.2)
    assert s["dense"]["negative"] == {"n": 1, "mean_top1_score": None, "n_no_hits": 1,
                                      "positive_mean_top1_score": pytest.approx((0.9 + 0.5 + 0.6) / 3, abs=1e-6)}


def test_report_json_has_per_query_rows_and_is_serialisable() -> None:
    report, _, _ = run(QUERIES, _methods(), fake_search(RANKINGS), extra={"machine": {"cpu": "fake"}})
    data = json.loads(json.dumps(report))
    assert data["kinds"] == ["visual", "speech"]
    assert data["queries"]["by_kind"] == {"visual": 2, "speech": 1, "negative": 1}
    assert data["machine"] == {"cpu": "fake"}
    rows = data["per_query"]
    assert len(rows) == 12
    assert set(rows[0]) >= {"qid", "kind", "method", "top5", "first_relevant_rank", "metrics", "top1"}
    neg = next(r for r in rows if r["qid"] == "q4" and r["method"] == "bm25")
    assert neg["first_relevant_rank"] is None and neg["metrics"]["MRR"] is None
    assert neg["top1"] == {"clip": "c7", "start": 0.0, "end": 1.0, "score": 0.2}


def test_markdown_has_a_table_per_metric_with_every_method() -> None:
    _, md, _ = run(QUERIES, _methods(), fake_search(RANKINGS))
    for metric in judged.METRICS:
        assert f"### {metric}" in md
    mrr_table = md.split("### MRR")[1].split("###")[0]
    assert "| method | visual | speech | overall |" in mrr_table
    assert "| bm25 | 0.750 | 1.000 | 0.833 |" in mrr_table
    assert "| dense | 0.750 | 0.000 | 0.500 |" in mrr_table
    assert "visual (n=1)" in md  # R1@IoU columns say how many queries carry a window
    assert "### Negatives (1 queries)" in md


def test_write_report_writes_json_markdown_and_png(tmp_path: Path) -> None:
    report, md, _ = run(QUERIES, _methods(), fake_search(RANKINGS))
    out = tmp_path / "res" / "quality.json"
    paths = judged.write_report(out, report, md, report["summary"], report["kinds"])
    assert json.loads(out.read_text())["files"] == paths
    assert Path(paths["markdown"]).read_text() == md
    assert Path(paths["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- acceptance rule -----------------------------------------------------------------------
def _summary(mrr: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {m: {"kinds": {k: {"MRR": v} for k, v in kinds.items()}} for m, kinds in mrr.items()}


def test_check_default_passes_when_better_overall_and_never_worse() -> None:
    s = _summary({
        "bm25": {"visual": 0.2, "speech": 0.9, "overall": 0.5},
        "dense": {"visual": 0.6, "speech": 0.8, "overall": 0.6},
        "default": {"visual": 0.6, "speech": 0.95, "overall": 0.7},  # ties dense on visual: allowed
    })
    assert check_default(s, ["visual", "speech"]) == []


def test_check_default_names_each_losing_kind_and_overall() -> None:
    s = _summary({
        "bm25": {"visual": 0.2, "speech": 0.9, "overall": 0.6},
        "dense": {"visual": 0.6, "speech": 0.8, "overall": 0.6},
        "default": {"visual": 0.5, "speech": 0.95, "overall": 0.6},
    })
    failures = check_default(s, ["visual", "speech"])
    assert failures == [
        "visual: default MRR 0.5000 is worse than dense 0.6000",
        "overall: default MRR 0.6000 is not better than dense 0.6000",
    ]


def test_check_default_needs_the_three_methods() -> None:
    with pytest.raises(InputError, match="bm25"):
        check_default(_summary({"dense": {"overall": 0.1}, "default": {"overall": 0.2}}), [])


def test_run_reports_check_default_from_fake_results() -> None:
    report, _, failures = run(QUERIES, _methods(), fake_search(RANKINGS), check=True)
    # default: visual MRR 1.0, speech 1.0, overall 1.0 beats bm25 (0.833) and dense.
    assert failures == [] and report["check_default"] == {"ok": True, "failures": []}
    worse = {**RANKINGS, "default": {**RANKINGS["default"], "q3": [("c5", 0, 1, 0.9)]}}
    _, _, failures = run(QUERIES, _methods(), fake_search(worse), check=True)
    assert failures[0].startswith("speech: default MRR 0.0000 is worse than bm25 1.0000")


# -- command line ---------------------------------------------------------------------------
def _patch_backend(monkeypatch: pytest.MonkeyPatch, rankings: dict) -> None:
    """Replace the index and searcher with the fake (in the harness the entry calls);
    everything else is the real main()."""
    clips = {f"c{i}": f"/media/c{i}.mp4" for i in range(1, 10)}
    monkeypatch.setattr(judged, "list_clips", lambda media: clips)
    monkeypatch.setattr(judged, "ensure_index", lambda c, d, reuse, workers, image_encoder=None: {"reused": True, "built": None})
    monkeypatch.setattr(judged, "indexed_clips", lambda d: set(clips))
    monkeypatch.setattr(judged, "open_search", lambda d: (fake_search(rankings), lambda: None, 0.0))


def _queries_file(tmp_path: Path) -> Path:
    p = tmp_path / "q.jsonl"
    p.write_text("".join(
        json.dumps({"qid": q.qid, "query": q.text, "kind": q.kind,
                    "relevant": [{k: v for k, v in vars(r).items() if v is not None} for r in q.relevant]}) + "\n"
        for q in QUERIES))
    return p


@pytest.mark.parametrize("rankings, code", [
    (RANKINGS, 0),
    ({**RANKINGS, "default": RANKINGS["dense"]}, 1),
])
def test_main_check_default_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], rankings: dict, code: int) -> None:
    _patch_backend(monkeypatch, rankings)
    out = tmp_path / "quality.json"
    rc = bench_quality.main(["--media", str(tmp_path), "--queries", str(_queries_file(tmp_path)), "--index-dir",
                  str(tmp_path / "idx"), "--out", str(out), "--methods", "bm25,dense,default", "--check-default"])
    assert rc == code
    printed = capsys.readouterr().out
    assert "### MRR" in printed
    data = json.loads(out.read_text())
    assert data["check_default"]["ok"] is (code == 0)
    assert data["command"].startswith("python -m benchmarks.bench_quality --media")
    assert {"cpu", "cpu_count", "memory_bytes", "python", "versions"} <= set(data["machine"])
    if code:
        assert "check-default FAILED" in printed and "overall: default MRR" in printed


def test_main_fails_clearly_without_media_or_queries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = bench_quality.main(["--media", str(tmp_path / "no-media"), "--queries", str(_queries_file(tmp_path)),
                  "--out", str(tmp_path / "o.json"), "--index-dir", str(tmp_path / "idx")])
    assert rc == 2
    assert f"media folder {tmp_path / 'no-media'} does not exist" in capsys.readouterr().err
    rc = bench_quality.main(["--queries", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o.json")])
    assert rc == 2
    assert "none.jsonl does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_main_rejects_queries_naming_unknown_clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _patch_backend(monkeypatch, RANKINGS)
    monkeypatch.setattr(judged, "list_clips", lambda media: {"c1": "/media/c1.mp4"})
    rc = bench_quality.main(["--media", str(tmp_path), "--queries", str(_queries_file(tmp_path)),
                  "--out", str(tmp_path / "o.json"), "--index-dir", str(tmp_path / "idx")])
    assert rc == 2
    assert "not in" in capsys.readouterr().err
