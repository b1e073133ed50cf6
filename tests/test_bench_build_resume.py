"""bench_search_latency's synthetic build goes on after a stop (--resume): the 10M
point takes longer than one sitting on 2 cores."""
from __future__ import annotations

import json

import pytest

from benchmarks import bench_search_latency as bsl
from engine.index import VideoIndex


def _segments(index_dir):
    idx = VideoIndex.open(index_dir)
    try:
        cat = idx.catalog
        vids = sorted(cat.list_videos(), key=lambda v: v.source)
        return [(v.source, v.title, [s.transcript for s in cat.segments_of(v.key)]) for v in vids]
    finally:
        idx.close()


def test_a_stopped_build_resumes_where_it_stopped_and_ends_as_one_run_would(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    bsl.build(whole, 200, shards=2, chunk=50)

    real = bsl._settle
    calls = []

    def stop_on_second(idx, a, b):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while settling, after 100 segments
        return real(idx, a, b)

    stopped = tmp_path / "stopped"
    monkeypatch.setattr(bsl, "_settle", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        bsl.build(stopped, 200, shards=2, chunk=50)
    monkeypatch.setattr(bsl, "_settle", real)
    progress = json.loads((stopped / bsl.PROGRESS).read_text())
    assert progress["segments_settled"] == 50 and progress["runs"] == 1
    with pytest.raises(SystemExit, match="n=200"):
        bsl.build(stopped, 300, shards=2, chunk=50, resume=True)
    out = bsl.build(stopped, 200, shards=2, chunk=50, resume=True)
    assert out["runs"] == 2 and out["vectors"] == 200 and out["lexical_docs"] == 200
    assert _segments(stopped) == _segments(whole)
    with pytest.raises(SystemExit, match="nothing to resume"):
        bsl.build(tmp_path / "new", 200, shards=2, chunk=50, resume=True)
