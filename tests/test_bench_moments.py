"""``benchmarks.bench_moments``: each windowed query is searched within its own clip and
its top range scored against the window (a fake searcher; no models)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from benchmarks import bench_moments


def test_each_windowed_query_is_cut_within_its_clip(tmp_path: Path, monkeypatch) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for c in ("c1", "c2"):
        (media / f"{c}.mp4").write_bytes(b"\0" * 16)
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(q) for q in [
        {"qid": "a", "query": "a dog", "kind": "visual", "relevant": [{"clip": "c1", "start": 2.0, "end": 6.0}]},
        {"qid": "b", "query": "she says hi", "kind": "speech",
         "relevant": [{"clip": "c2", "start": 0.0, "end": 1.0}, {"clip": "c2", "start": 8.0, "end": 10.0}]},
        {"qid": "c", "query": "a red car", "kind": "visual", "relevant": [{"clip": "c1"}]},  # no window: skipped
    ]) + "\n")
    asked = []

    class FakeSearcher:
        def __init__(self, index):
            pass

        def search(self, text, options=None):
            asked.append(text)
            rng = {"a dog": (3.0, 6.0), "she says hi": (8.0, 9.0)}[text.split(" source:")[0]]
            return SimpleNamespace(hits=[SimpleNamespace(start=rng[0], end=rng[1], range_from="words")])

    monkeypatch.setattr("query.planner.Searcher", FakeSearcher)
    monkeypatch.setattr("engine.index.VideoIndex.open", classmethod(lambda cls, path, **k: object()))
    res = bench_moments.measure(tmp_path, [queries], media)
    assert [a.split(" source:")[1] for a in asked] == [f'"{media / "c1.mp4"}"', f'"{media / "c2.mp4"}"']
    iou = {r["qid"]: r["iou"] for r in res["queries"]}
    assert iou == {"a": 0.75, "b": 0.5}  # the best of the clip's windows
    rows = {(s["kind"]): s for s in res["summary"]}
    assert rows["overall"]["n"] == 2 and rows["overall"]["iou_0.5"] == 1.0 and rows["overall"]["iou_0.7"] == 0.5
    assert "| q.jsonl | visual | 1 | 0.750 |" in bench_moments.render(res)
