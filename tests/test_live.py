"""Live ingest (indexer.live): sources and their troubles, the seam reconciliation of
words, window commits that readers see while the stream is written, kill-and-resume,
finalisation, live highlights and the HTTP routes.

The streams are synthetic (tests/live_media.py: shots with hard cuts, on-screen text,
espeak-ng sentences at known times), replayed by indexer.live.replay's writers. Long
ones (speech over several windows, a second analysis at finalisation, a sentence in
the second minute in real time) carry the ``slow`` marker."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.catalog import Catalog
from engine.errors import InputError
from engine.index import VideoIndex
from indexer.live import LiveOptions, run_live
from indexer.live.replay import make_segments, write_growing, write_hls
from indexer.live.sources import ChunkFolderSource, GrowingFileSource, HlsSource, Spool, decodable_seconds
from indexer.live.window import SeamState, reconcile_words
from indexer.options import IndexOptions
from tests import synth
from tests.live_media import LATE_SENTENCES, SENTENCES, make_stream, words_of

QUICK = LiveOptions(min_window=2, max_window=8, end_after=1.0, stall_after=0.5, poll=0.1, finalise="keep",
                    covers=False)
VISUAL_ONLY = IndexOptions(speech=False, ocr=False, graph=False)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stream(tmp_path_factory, tools) -> Path:
    """20 s: shots cut every 5 s, "HARBOUR 42" on screen, three sentences (one across the 8 s seam)."""
    return make_stream(tmp_path_factory.mktemp("live_stream"))


def _segments(index_dir: Path):
    cat = Catalog(Path(index_dir) / "catalog.sqlite", read_only=True)
    try:
        videos = cat.list_videos()
        return videos, {v.video_id: cat.segments_of(v.key) for v in videos}
    finally:
        cat.close()


def _contiguous(segs) -> None:
    for a, b in zip(segs, segs[1:]):
        assert b.start == pytest.approx(a.end, abs=1e-6), (a.start, a.end, b.start, b.end)


# -- the seam rule --------------------------------------------------------------------------
def test_reconcile_drops_committed_words_and_repeats_and_defers_the_tail():
    seam = SeamState(word_end=1.0, last_word=" harbour")
    words = [(-0.8, -0.2, " the"), (0.4, 1.1, " harbour"), (1.05, 1.3, " harbour"), (1.4, 1.8, " at"),
             (2.0, 2.4, " seven"), (5.6, 6.3, " evening")]
    # (0.4, 1.1) has its middle before the seam: committed with the window before; the next
    # "harbour" repeats the last committed word within 0.3 s; "evening" ends too close to the data's end.
    assert reconcile_words(words, seam, data_end=7.0, speech_guard=1.0) == [(1.4, 1.8, " at"),
                                                                             (2.0, 2.4, " seven")]
    assert reconcile_words(words, seam, data_end=None, speech_guard=1.0)[-1] == (5.6, 6.3, " evening")
    fresh = SeamState()
    assert reconcile_words(words, fresh, data_end=None, speech_guard=1.0) == words


def test_reconcile_aligns_on_the_committed_words_when_whisper_retimes_the_seam_word():
    """Measured in bench_live: "let me tell | you a story" committed up to "tell" (ends
    0.22); the next window heard "you" at 0.10-0.30, whose middle (0.20) is before that
    end, so the timestamp rule alone lost it. Aligned on "let me tell", it is kept."""
    seam = SeamState(word_end=0.22, last_word=" tell",
                     tail=((-0.36, -0.2, " let"), (-0.2, -0.12, " me"), (-0.12, 0.22, " tell")))
    words = [(-0.4, -0.2, " let"), (-0.2, -0.1, " me"), (-0.1, 0.1, " tell"), (0.1, 0.3, " you"), (0.3, 0.4, " a"),
             (0.4, 0.9, " story")]
    assert [w for _, _, w in reconcile_words(words, seam, data_end=None, speech_guard=1.0)] == [" you", " a",
                                                                                                  " story"]
    # no run of two committed words in the new ones: the timestamp rule decides
    other = [(-0.1, 0.1, " bell"), (0.1, 0.3, " you"), (0.3, 0.4, " a")]
    assert [w for _, _, w in reconcile_words(other, seam, data_end=None, speech_guard=1.0)] == [" a"]


def test_has_live_filters_on_the_live_status():
    from query.filters import video_passes
    from query.parse import parse

    assert parse("goal has:live").filters.has == ("live",)
    assert parse("goal -has:live").filters.has_not == ("live",)

    class V:  # the fields video_passes reads
        tags, people, source, has_audio, stats, duration = [], [], "/x.ts", True, {}, 10.0
        width = height = fps = None
        language = created_at = mtime = None

    live, done = V(), V()
    live.status, done.status = "live", "indexed"
    assert video_passes(live, parse("goal has:live")) and not video_passes(done, parse("goal has:live"))
    assert video_passes(done, parse("goal -has:live")) and not video_passes(live, parse("goal -has:live"))


# -- sources ---------------------------------------------------------------------------------
def test_growing_file_is_copied_as_it_grows_and_a_restart_starts_an_epoch(tmp_path, stream):
    src = tmp_path / "grow.ts"
    data = stream.read_bytes()
    spool = Spool(tmp_path / "spool", str(src), ".ts")
    source = GrowingFileSource(str(src))
    assert [e.kind for e in source.poll(spool)] == ["missing"]
    src.write_bytes(data[:100_000])
    source.poll(spool)
    src.write_bytes(data[:250_000])
    source.poll(spool)
    assert spool.size(0) == 250_000 and spool.path(0).read_bytes() == data[:250_000]
    src.write_bytes(data[:50_000])  # the writer started again
    assert [e.kind for e in source.poll(spool)] == ["restart"]
    assert len(spool.epochs) == 2 and spool.size(1) == 50_000 and spool.size(0) == 250_000
    # a kill between writing bytes and recording them: the next open drops the unrecorded tail
    with open(spool.path(1), "ab") as f:
        f.write(b"\x00" * 999)
    again = Spool(tmp_path / "spool", str(src), ".ts")
    assert again.path(1).stat().st_size == 50_000 and again.cursor["pos"] == 50_000


def _hls_stage(tmp_path, stream) -> tuple[Path, list[tuple[str, float]]]:
    stage = tmp_path / "stage"
    return stage, make_segments(stream, stage, segment=2.0)


def _publish(folder: Path, stage: Path, entries, *, seq: int = 0, end: bool = False) -> Path:
    folder.mkdir(exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:3", f"#EXT-X-MEDIA-SEQUENCE:{seq}"]
    for name, dur in entries:
        if not (folder / name).exists():
            shutil.copy(stage / name, folder / name)
        lines += [f"#EXTINF:{dur:.3f},", name]
    if end:
        lines.append("#EXT-X-ENDLIST")
    (folder / "live.m3u8").write_text("\n".join(lines) + "\n")
    return folder / "live.m3u8"


def test_hls_takes_segments_in_order_and_reports_loops_truncation_and_restarts(tmp_path, stream):
    stage, segs = _hls_stage(tmp_path, stream)
    assert len(segs) >= 6
    out = tmp_path / "hls"
    pl = _publish(out, stage, segs[:2])
    spool = Spool(tmp_path / "spool", str(pl), ".ts")
    source = HlsSource(str(pl))
    assert source.poll(spool) == [] and spool.cursor["seq"] == 1
    size2 = spool.size(0)
    assert size2 == sum((stage / n).stat().st_size for n, _ in segs[:2])
    # a looping playlist: the same segment files again under new sequence numbers
    _publish(out, stage, segs[:2] + segs[:2])
    kinds = [e.kind for e in source.poll(spool)]
    assert kinds == ["loop", "loop"] and spool.size(0) == size2
    # a truncated segment: what decodes is kept, and reported
    name, dur = segs[2]
    cut = (stage / name).read_bytes()[: (stage / name).stat().st_size // 3]
    (out / name).write_bytes(cut)
    _publish(out, stage, segs[:2] + segs[:2] + [segs[2]])
    evs = source.poll(spool)
    assert [e.kind for e in evs] == ["truncated"] and evs[0].data["seconds"] < dur
    assert spool.size(0) == size2 + len(cut)
    # a listed segment not there yet: reported, taken on a later poll
    _publish(out, stage, segs[:2] + segs[:2] + segs[2:4])
    (out / segs[3][0]).unlink()
    assert [e.kind for e in source.poll(spool)] == ["missing"]
    shutil.copy(stage / segs[3][0], out / segs[3][0])
    assert source.poll(spool) == [] and not source.ended
    # the writer restarts: the media sequence goes back, with new content
    other = make_stream(tmp_path, seconds=4.0, text="RESTARTED", name="other.ts")
    stage2 = tmp_path / "stage2"
    segs2 = make_segments(other, stage2, segment=2.0)
    out.joinpath("r0.ts").write_bytes((stage2 / segs2[0][0]).read_bytes())
    (out / "live.m3u8").write_text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nr0.ts\n#EXT-X-ENDLIST\n")
    assert [e.kind for e in source.poll(spool)] == ["restart"]
    assert len(spool.epochs) == 2 and spool.size(1) > 0 and source.ended


def test_hls_rejects_a_master_playlist_and_non_playlists(tmp_path):
    p = tmp_path / "master.m3u8"
    p.write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n")
    with pytest.raises(InputError, match="master playlist"):
        HlsSource(str(p)).poll(Spool(tmp_path / "s", str(p), ".ts"))
    p.write_text("hello\n")
    with pytest.raises(InputError, match="not an HLS playlist"):
        HlsSource(str(p)).poll(Spool(tmp_path / "s2", str(p), ".ts"))


def test_hls_waits_out_a_playlist_caught_mid_rewrite(tmp_path):
    """A writer that rewrites the playlist in place leaves it empty or cut short for a
    moment: the source waits and reads it again; it fails only when it stays broken."""
    p = tmp_path / "live.m3u8"
    p.write_text("")
    source = HlsSource(str(p))
    spool = Spool(tmp_path / "s", str(p), ".ts")
    assert [e.kind for e in source.poll(spool)] == ["missing"]  # created, not yet written
    p.write_text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n")
    assert source.poll(spool) == []
    p.write_text("#EXT-X-MEDIA-SEQ")  # cut short mid-write
    for _ in range(HlsSource.REWRITE_POLLS - 1):
        assert [e.kind for e in source.poll(spool)] == ["missing"]
    with pytest.raises(InputError, match="not an HLS playlist"):
        source.poll(spool)  # still broken: the run fails with the reason
    p.write_text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n")
    assert HlsSource(str(p)).poll(Spool(tmp_path / "s3", str(p), ".ts")) == []


def test_chunk_folder_waits_for_a_chunk_to_settle_and_skips_undecodable_ones(tmp_path, stream):
    stage, segs = _hls_stage(tmp_path, stream)
    folder = tmp_path / "chunks"
    folder.mkdir()
    shutil.copy(stage / segs[0][0], folder / "c1.ts")
    spool = Spool(tmp_path / "spool", str(folder), ".ts")
    src = ChunkFolderSource(str(folder), settle=0.0)
    src.poll(spool)  # first sight of c1: its size has not been seen to hold yet
    assert spool.size(0) == 0
    src.poll(spool)
    assert spool.size(0) == (stage / segs[0][0]).stat().st_size
    (folder / "c2.ts").write_bytes(b"not video at all" * 100)
    shutil.copy(stage / segs[1][0], folder / "c3.ts")
    kinds = [e.kind for e in src.poll(spool)]
    assert kinds == ["truncated"]  # c2: nothing decodes, skipped; c3 (the newest) waits to settle
    src.poll(spool)
    assert spool.size(0) == sum((stage / n).stat().st_size for n, _ in segs[:2])
    assert decodable_seconds(folder / "c2.ts") == 0.0


# -- windows, seams, search while written ------------------------------------------------
@pytest.mark.slow
def test_live_windows_commit_every_word_once_and_match_the_whole_file(tmp_path, stream):
    events = []
    rep = run_live(str(stream), tmp_path / "idx", options=IndexOptions(graph=False), live=QUICK,
                   on_event=events.append)
    assert rep.status == "finalised" and rep.windows >= 3
    videos, segs = _segments(tmp_path / "idx")
    (v,) = videos
    assert v.status == "indexed" and v.stats["live"]["finalised"]
    s = segs[v.video_id]
    _contiguous(s)
    assert s[0].start == 0.0 and s[-1].end == pytest.approx(20.0, abs=0.2)
    seams = [e.data["end"] for e in events if e.kind == "window"][:-1]
    assert any(6.5 < t < 10.0 for t in seams) or any(a.start < 6.5 < a.end for a in s)
    words = [w for seg in s for w in seg.words]
    # in time order, none twice, each within its neighbours
    assert all(a[0] <= b[0] for a, b in zip(words, words[1:]))
    assert len({(round(w[0], 2), w[2]) for w in words}) == len(words)
    spoken = words_of(" ".join(t for _, t in SENTENCES))
    heard = words_of(" ".join(w[2] for w in words))
    # every sentence's words once: the count matches and most words are recognised exactly
    assert len(heard) == len(spoken), (heard, spoken)
    assert sum(a == b for a, b in zip(heard, spoken)) >= 0.8 * len(spoken)
    assert all("harbour" in seg.ocr_text.lower().replace(" ", "") or "42" in seg.ocr_text for seg in s)


def _watch_for(index_dir: Path, query: str, found: dict, stop: threading.Event, accept) -> None:
    """Search ``index_dir`` with a reader until a hit passes ``accept``; put it in ``found``."""
    from query.planner import SearchOptions, Searcher

    while not stop.is_set():
        if (index_dir / "catalog.sqlite").exists():
            try:
                with VideoIndex.open(index_dir) as r:
                    for h in Searcher(r).search(query, options=SearchOptions(k=3)).hits:
                        if accept(h):
                            found["hit"] = h.to_dict()
                            return
            except Exception:  # the index is being created
                pass
        stop.wait(0.3)


def _held_until(found_event: threading.Event, stop: threading.Event):
    """A writer's hold: wait until the reader found what it looks for (or the run is over)."""
    def hold() -> None:
        while not found_event.is_set() and not stop.is_set():
            time.sleep(0.1)
    return hold


def test_a_growing_file_is_searchable_while_it_is_written(tmp_path, stream):
    """The writer holds its last 8 s back until a reader has found the stream's on-screen
    text in a hit flagged live; then it writes the rest, which is committed too. (A
    growing file has no end marker and the hold is quiet, so the run never ends by
    quiet here: the test stops it, and it stays live, resumable.)"""
    grow = tmp_path / "grow.ts"
    found: dict = {}
    seen, stop, stop_live = threading.Event(), threading.Event(), threading.Event()
    done = threading.Event()

    def writer():
        write_growing(stream, grow, speed=2.0, tick=0.2, hold=(12.0, _held_until(seen, stop)))
        done.set()

    def watch():
        _watch_for(tmp_path / "idx", "harbour 42", found, stop, lambda h: h.live)
        seen.set()

    def stopper():  # once all is written, stop when everything before the held-back last shot is in
        done.wait()
        while not stop.is_set():
            try:
                videos, segs = _segments(tmp_path / "idx")
                if segs[videos[0].video_id][-1].end >= 14.0:
                    break
            except Exception:
                pass
            time.sleep(0.2)
        stop_live.set()

    for target in (writer, watch, stopper):
        threading.Thread(target=target, daemon=True).start()
    rep = run_live(str(grow), tmp_path / "idx", options=IndexOptions(speech=False, ocr=True, graph=False),
                   live=LiveOptions(min_window=2, max_window=8, end_after=0, stall_after=1.0, poll=0.1,
                                    finalise="keep", covers=False), stop=stop_live)
    stop.set()
    assert rep.status == "stopped"
    assert found, "no search hit was flagged live while the file was still being written"
    assert found["hit"]["live"] is True and found["hit"]["end"] <= 12.0 + 1e-6
    videos, segs = _segments(tmp_path / "idx")
    assert videos[0].status == "live" and segs[videos[0].video_id][-1].end >= 14.0


def test_a_stalled_source_is_reported_then_ends_and_is_finalised(tmp_path, stream):
    grow = tmp_path / "grow.ts"
    grow.write_bytes(stream.read_bytes()[:200_000])
    events = []
    rep = run_live(str(grow), tmp_path / "idx", options=VISUAL_ONLY,
                   live=LiveOptions(min_window=2, max_window=8, stall_after=0.3, end_after=1.5, poll=0.1,
                                    finalise="keep", covers=False), on_event=events.append)
    kinds = [e.kind for e in events]
    assert "stalled" in kinds and kinds[-2:] == ["ended", "finalised"] and rep.status == "finalised"
    # a second run of a finalised stream is refused, naming the video
    with pytest.raises(InputError, match="already indexed live and finalised"):
        run_live(str(grow), tmp_path / "idx", options=VISUAL_ONLY, live=QUICK)


def test_a_growing_fragmented_mp4_is_indexed_as_it_grows(tmp_path, stream):
    frag = tmp_path / "src.mp4"
    synth._ffmpeg("-i", str(stream), "-c", "copy", "-bsf:a", "aac_adtstoasc", "-movflags", "frag_keyframe+empty_moov",
                  "-f", "mp4", str(frag))
    data = frag.read_bytes()
    grow = tmp_path / "grow.mp4"

    def writer():
        with open(grow, "wb") as f:
            for i in range(0, len(data), 40_000):
                f.write(data[i:i + 40_000])
                f.flush()
                time.sleep(0.2)

    threading.Thread(target=writer, daemon=True).start()
    events = []
    rep = run_live(str(grow), tmp_path / "idx", options=IndexOptions(speech=False, graph=False),
                   live=dataclasses.replace(QUICK, end_after=2.0), on_event=events.append)
    assert rep.status == "finalised" and [e.kind for e in events].count("window") >= 2
    videos, segs = _segments(tmp_path / "idx")
    s = segs[videos[0].video_id]
    _contiguous(s)
    assert s[-1].end == pytest.approx(20.0, abs=0.2) and all("42" in x.ocr_text for x in s)


def test_truncated_hls_segment_is_reported_and_the_rest_indexed(tmp_path, stream):
    out = tmp_path / "hls"
    write_hls(stream, out, segment=2.0, speed=1000.0, truncate=3)
    events = []
    rep = run_live(str(out / "live.m3u8"), tmp_path / "idx", options=VISUAL_ONLY, live=QUICK,
                   on_event=events.append)
    assert rep.status == "finalised"
    assert [e for e in events if e.kind == "truncated"]
    videos, segs = _segments(tmp_path / "idx")
    s = segs[videos[0].video_id]
    _contiguous(s)
    assert s[-1].end > 15.0  # the segments after the truncated one are there


def test_a_writer_restart_continues_the_video_in_a_new_epoch(tmp_path, tools):
    """The playlist starts again at media sequence 0 with other content: reported, and
    its media placed after the first epoch's; the recording joins both at the end."""
    a = make_stream(tmp_path, seconds=10.0, text="FIRST", sentences=(), name="a.ts")
    b = make_stream(tmp_path, seconds=8.0, text="SECOND", sentences=(), name="b.ts")
    out = tmp_path / "hls"
    out.mkdir()
    playlists = []
    for tag, clip in (("a", a), ("b", b)):
        segs = make_segments(clip, tmp_path / f"stage_{tag}")
        for name, _ in segs:
            shutil.copy(tmp_path / f"stage_{tag}" / name, out / f"{tag}{name}")
        playlists.append("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n" + "".join(f"#EXTINF:{d:.3f},\n{tag}{n}\n"
                                                                       for n, d in segs))
    (out / "live.m3u8").write_text(playlists[0])
    events = []

    def on_event(ev):
        events.append(ev)
        if ev.kind == "window" and len([e for e in events if e.kind == "window"]) == 1:
            (out / "live.m3u8").write_text(playlists[1] + "#EXT-X-ENDLIST\n")  # the writer restarts

    rep = run_live(str(out / "live.m3u8"), tmp_path / "idx", options=IndexOptions(speech=False, graph=False),
                   live=dataclasses.replace(QUICK, end_after=0), on_event=on_event)
    assert rep.status == "finalised" and [e.kind for e in events].count("restart") == 1
    videos, segs = _segments(tmp_path / "idx")
    s = segs[videos[0].video_id]
    _contiguous(s)
    assert s[-1].end == pytest.approx(18.0, abs=0.2)
    assert all("FIRST" in x.ocr_text for x in s if x.end <= 10.0 + 1e-6)
    assert all("SECOND" in x.ocr_text for x in s if x.start >= 10.0 - 0.2)
    assert Path(videos[0].stats["live"]["recording"]).name == "recording.full.ts"


@pytest.mark.slow
def test_finalise_reanalyse_equals_a_whole_file_ingest(tmp_path, stream):
    from indexer.pipeline import index_paths

    opts = IndexOptions(speech=False, graph=False)
    rep = run_live(str(stream), tmp_path / "live", options=opts,
                   live=LiveOptions(min_window=2, max_window=8, end_after=0.5, stall_after=0.3, poll=0.1,
                                    covers=False))
    videos, segs = _segments(tmp_path / "live")
    (v,) = videos
    assert v.video_id == rep.video_id and v.status == "indexed"  # the live id is kept
    index_paths([v.source], tmp_path / "whole", options=opts)
    wv, wsegs = _segments(tmp_path / "whole")
    a, b = segs[v.video_id], wsegs[wv[0].video_id]
    assert [(x.start, x.end, x.ocr_text, x.transcript) for x in a] == [(x.start, x.end, x.ocr_text, x.transcript)
                                                                       for x in b]
    assert v.content_hash == wv[0].content_hash


# -- kill -9 and resume ----------------------------------------------------------------------
def _live_cmd(source: Path, idx: Path) -> list[str]:
    return [sys.executable, "-m", "api.cli", "live", str(source), "--index", str(idx), "--json", "--no-speech",
            "--no-ocr", "--no-graph", "--no-covers", "--finalise", "keep", "--min-window", "2", "--max-window",
            "6", "--end-after", "1", "--stall-after", "0.5", "--poll", "0.1"]


def test_kill_dash_nine_and_restart_resumes_without_duplicates(tmp_path, stream):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    idx = tmp_path / "idx"
    proc = subprocess.Popen(_live_cmd(stream, idx), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=REPO, text=True)
    first = None
    for line in proc.stdout:
        ev = json.loads(line)
        if ev["kind"] == "window":
            first = ev
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first is not None, "the run ended before its first window"
    videos, segs = _segments(idx)
    (v,) = videos
    assert v.status == "live"
    committed = segs[v.video_id]
    assert committed[-1].end == pytest.approx(first["end"], abs=1e-3)
    out = subprocess.run(_live_cmd(stream, idx), capture_output=True, env=env, cwd=REPO, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    evs = [json.loads(x) for x in out.stdout.splitlines()]
    assert evs[0]["kind"] == "resumed" and evs[0]["committed"] == pytest.approx(first["end"], abs=1e-3)
    videos, segs = _segments(idx)
    (v2,) = videos
    assert v2.video_id == v.video_id and v2.status == "indexed"
    s = segs[v.video_id]
    _contiguous(s)
    assert [x.id for x in s[:len(committed)]] == [x.id for x in committed]  # the first run's windows stay
    assert s[-1].end == pytest.approx(20.0, abs=0.2)
    with VideoIndex.open(idx) as r:  # derived indexes: each segment once
        info = r.info()
        assert info["catalog"]["segments"] == len(s) and info["lexical"]["docs"] == len(s)
        assert info["vectors"]["count"] == len(s)


# -- live highlights ---------------------------------------------------------------------------
def test_live_reel_follows_the_video_until_it_is_finalised(tmp_path, stream):
    from api.live_highlights import follow_live_reel, status_path

    grow = tmp_path / "grow.ts"
    threading.Thread(target=write_growing, args=(stream, grow), kwargs={"speed": 2.0, "tick": 0.2},
                     daemon=True).start()
    reports = {}

    def live():
        reports["live"] = run_live(str(grow), tmp_path / "idx", options=VISUAL_ONLY,
                                   # end_after leaves room for a busy machine starving the writer thread
                                   live=LiveOptions(min_window=2, max_window=8, end_after=4.0, stall_after=1.0,
                                                    poll=0.1, finalise="keep", covers=False))

    t = threading.Thread(target=live)
    t.start()
    vid = None
    while vid is None and t.is_alive():  # the spool exists before its video does (a busy machine shows the gap)
        time.sleep(0.1)
        spools = list((tmp_path / "idx" / "live").glob("*/spool.json"))
        if spools:
            try:
                vid = json.loads(spools[0].read_text()).get("video_id")
            except ValueError:  # caught mid-write
                pass
    assert vid is not None, reports
    updates = []
    st = follow_live_reel(tmp_path / "idx", vid, tmp_path / "reel.mp4", duration=8.0, every=0.5,
                          on_update=lambda s: updates.append((s.state, s.video_duration, list(s.pieces))))
    t.join()
    assert st.state == "done" and st.updates >= 2
    assert updates[0][0] == "live" and updates[-1][0] == "done"
    assert updates[-1][1] > updates[0][1]  # the reel grew with the video
    edl = json.loads((tmp_path / "reel.mp4.edl.json").read_text())
    assert edl["video_id"] == vid and edl["entries"] and edl["duration"] <= 8.0 + 1e-6
    assert json.loads(status_path(tmp_path / "reel.mp4").read_text())["state"] == "done"


# -- slow: real time, a sentence in the second minute ---------------------------------------
@pytest.mark.slow
def test_a_sentence_in_the_second_minute_is_found_while_the_stream_is_written(tmp_path, tools):
    """A 120 s stream written as HLS at real time: the sentence spoken at 78 s is found by a
    search (hit flagged live) while the writer holds everything after 96 s back; then
    the stream is written to its end and finalises whole."""
    src = make_stream(tmp_path, seconds=120.0, shot=6.0, sentences=LATE_SENTENCES, size=(320, 180))
    out = tmp_path / "hls"
    found: dict = {}
    seen, stop = threading.Event(), threading.Event()
    threading.Thread(target=write_hls, args=(src, out),
                     kwargs={"segment": 2.0, "speed": 1.0, "hold": (96.0, _held_until(seen, stop))},
                     daemon=True).start()

    def watch():
        _watch_for(tmp_path / "idx", "purple giraffe violin lighthouse", found, stop,
                   lambda h: h.live and h.start <= 80.0 and "giraffe" in h.snippet.lower())
        seen.set()

    while not (out / "live.m3u8").exists():
        time.sleep(0.1)
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    rep = run_live(str(out / "live.m3u8"), tmp_path / "idx", options=IndexOptions(graph=False),
                   live=LiveOptions(end_after=30.0, covers=False))
    stop.set()
    w.join()
    assert rep.status == "finalised"
    assert found, "the sentence of the second minute was not found while the stream was written"
    assert found["hit"]["end"] <= 96.0 + 1e-6
    videos, segs = _segments(tmp_path / "idx")
    words = words_of(" ".join(s.transcript for s in segs[videos[0].video_id]))
    assert "giraffe" in words and words.count("giraffe") == 1


# -- over HTTP ---------------------------------------------------------------------------------
def test_live_over_http_is_listed_stoppable_and_searchable(tmp_path, stream):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from api.app import Settings, create_app
    from api.auth import KeyStore, service_db_path

    root = tmp_path / "streams"
    root.mkdir()
    shutil.copy(stream, root / "match.ts")
    idx = tmp_path / "idx"
    app = create_app(idx, Settings(warm_models=False, rate=0, tenant_roots={"alpha": (str(root),)}))
    with TestClient(app) as client:
        store = KeyStore(service_db_path(idx))
        key, _ = store.create("alpha", "search,ingest")
        other, _ = store.create("beta", "search,ingest")
        store.close()
        h, hb = {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {other}"}
        assert client.post("/v1/live", json={"source": "/etc/passwd"}, headers=h).status_code == 403
        assert client.post("/v1/live", json={"source": str(root / "match.ts")}, headers=hb).status_code == 403
        r = client.post("/v1/live", headers=h, json={
            "source": str(root / "match.ts"), "speech": False, "ocr": True, "min_window": 2, "end_after": 1,
            "stall_after": 0.5, "finalise": "keep", "highlight": {"duration": 6, "every": 1}})
        assert r.status_code == 202, r.text
        live_id, vid = r.json()["live_id"], r.json()["video_id"]
        assert vid and r.headers["Location"] == f"/v1/live/{live_id}"
        assert client.post("/v1/live", headers=h, json={"source": str(root / "match.ts")}).status_code == 409
        assert [j["live_id"] for j in client.get("/v1/live", headers=h).json()["jobs"]] == [live_id]
        assert client.get("/v1/live", headers=hb).json()["jobs"] == []
        assert client.get(f"/v1/live/{live_id}", headers=hb).status_code == 404
        for _ in range(6000):  # a generous cap; not a timing assertion
            j = client.get(f"/v1/live/{live_id}", headers=h).json()
            if j["status"] not in ("starting", "running") and (j["reel"] or {}).get("state") in ("done", "failed"):
                break
            time.sleep(0.1)
        assert j["status"] == "finalised" and j["video_id"] == vid and j["windows"] >= 2, j
        assert j["reel"]["state"] == "done" and j["reel"]["updates"] >= 1, j["reel"]
        kinds = [e["kind"] for e in j["events"]]
        assert "window" in kinds and kinds[-1] == "finalised"
        reel = client.get(f"/v1/live/{live_id}/reel", headers=h)
        assert reel.status_code == 200 and reel.headers["content-type"] == "video/mp4" and len(reel.content) > 1000
        edl = client.get(f"/v1/live/{live_id}/edl", headers=h).json()
        assert edl["video_id"] == vid and edl["entries"]
        hits = client.get("/v1/search", params={"q": "harbour 42", "min_confidence": "low"}, headers=h).json()["hits"]
        assert hits and hits[0]["video_id"] == vid and hits[0]["live"] is False  # finalised
        page = client.get("/live")
        assert page.status_code == 200 and "/v1/live" in page.text
        # a second stream, stopped over HTTP: it stays live (resumable)
        shutil.copy(stream, root / "second.ts")
        r = client.post("/v1/live", headers=h, json={"source": str(root / "second.ts"), "speech": False,
                                                     "ocr": False, "end_after": 0})
        lid2 = r.json()["live_id"]
        for _ in range(6000):
            j2 = client.get(f"/v1/live/{lid2}", headers=h).json()
            if j2["windows"] >= 1:
                break
            time.sleep(0.1)
        assert client.delete(f"/v1/live/{lid2}", headers=h).json()["status"] in ("stopping", "stopped")
        for _ in range(6000):
            j2 = client.get(f"/v1/live/{lid2}", headers=h).json()
            if j2["status"] != "running":
                break
            time.sleep(0.1)
        assert j2["status"] == "stopped"
        live_hits = client.get("/v1/search", params={"q": "harbour has:live", "min_confidence": "low"}, headers=h).json()["hits"]
        assert live_hits and all(x["live"] for x in live_hits) and live_hits[0]["video_id"] == j2["video_id"]
        assert client.get(f"/v1/live/{lid2}/reel", headers=h).status_code == 404  # no reel asked for


def test_http_live_jobs_survive_a_service_restart_and_honour_idempotency_keys(tmp_path, stream):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from api.app import Settings, create_app

    root = tmp_path / "streams"
    root.mkdir()
    shutil.copy(stream, root / "a.ts")
    shutil.copy(stream, root / "b.ts")
    idx = tmp_path / "idx"
    settings = Settings(warm_models=False, rate=0, tenant_roots={"default": (str(root),)})
    body = {"source": str(root / "a.ts"), "speech": False, "ocr": False, "end_after": 0, "min_window": 2}

    def wait(client, live_id, ok) -> dict:
        for _ in range(6000):  # a generous cap; not a timing assertion
            j = client.get(f"/v1/live/{live_id}").json()
            if ok(j):
                return j
            time.sleep(0.1)
        raise AssertionError(j)

    with TestClient(create_app(idx, settings)) as client:
        r1 = client.post("/v1/live", json=body, headers={"Idempotency-Key": "stream-a"})
        r2 = client.post("/v1/live", json=body, headers={"Idempotency-Key": "stream-a"})  # a retry: the same job
        assert r1.status_code == r2.status_code == 202 and r1.json()["live_id"] == r2.json()["live_id"]
        assert r2.headers["idempotent-replayed"] == "true"
        clash = client.post("/v1/live", json={**body, "min_window": 3}, headers={"Idempotency-Key": "stream-a"})
        assert clash.status_code == 409 and clash.json()["error"]["code"] == "idempotency_conflict"
        assert client.post("/v1/live", json=body).status_code == 409  # no key: the source is already live
        live_a = r1.json()["live_id"]
        first = wait(client, live_a, lambda j: j["windows"] >= 1)
        live_b = client.post("/v1/live", json={**body, "source": str(root / "b.ts")}).json()["live_id"]
        wait(client, live_b, lambda j: j["windows"] >= 1)
        client.delete(f"/v1/live/{live_b}")
        wait(client, live_b, lambda j: j["status"] == "stopped")
    # the service stopped while stream a ran: the next start resumes it, under the same id
    with TestClient(create_app(idx, settings)) as client:
        j = client.get(f"/v1/live/{live_a}").json()
        assert j["video_id"] == first["video_id"] and any(e["kind"] == "resumed" for e in j["events"]), j
        j = wait(client, live_a, lambda j: j["status"] == "running")
        assert client.get(f"/v1/live/{live_b}").json()["status"] == "stopped"  # stopped by DELETE: stays stopped
        assert sorted(x["live_id"] for x in client.get("/v1/live").json()["jobs"]) == sorted([live_a, live_b])
        client.delete(f"/v1/live/{live_a}")
        wait(client, live_a, lambda j: j["status"] == "stopped")
        hits = client.get("/v1/search", params={"q": "harbour", "min_confidence": "low"}).json()["hits"]
        assert {h["video_id"] for h in hits} >= {first["video_id"]}
    videos, segs = _segments(idx)
    for v in videos:  # resumed from the last committed window: no window twice
        _contiguous(segs[v.video_id])
    with TestClient(create_app(idx, settings)) as client:  # nothing to resume now
        assert client.get(f"/v1/live/{live_a}").json()["status"] == "stopped"


def test_live_segments_are_cut_at_the_live_segment_max_and_the_option_is_checked(tmp_path, tools):
    """A long shot while live is cut into segments of at most ``segment_max`` (so a moment
    waits at most that long for its segment to close); the finalised video keeps them
    with finalise=keep."""
    clip = synth.make_no_audio_clip(tmp_path, seconds=14.0, name="long_shot.mp4")
    ts = tmp_path / "long_shot.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-c:v", "libx264", "-f", "mpegts", str(ts)],
                   check=True)
    rep = run_live(str(ts), tmp_path / "idx", options=VISUAL_ONLY,
                   live=dataclasses.replace(QUICK, segment_max=3.0, max_window=8))
    assert rep.status == "finalised", rep.summary()
    videos, segs = _segments(tmp_path / "idx")
    got = segs[videos[0].video_id]
    assert got and max(s.end - s.start for s in got) <= 3.0 + 1e-6, [(s.start, s.end) for s in got]
    assert got[-1].end == pytest.approx(videos[0].duration, abs=0.6)
    _contiguous(got)
    with pytest.raises(InputError, match="segment_max"):
        LiveOptions(segment_max=0)
