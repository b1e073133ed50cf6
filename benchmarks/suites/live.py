"""Live suite: how fresh a live index is, how fast it keeps up, and how its windows
compare with a whole-file ingest.

A stream is made from clips of the media folder with speech (``STREAM_CLIPS``, joined
and scaled to 480x270, H.264 with a keyframe a second, AAC), then replayed by a writer
*process* (``python -m indexer.live.replay``) as a growing MPEG-TS or an HLS playlist
at ``speed`` times real time, with a log of when each media second was written. A
``vidseek live --json`` process indexes it (every modality on, speech and OCR
included), printing when each window was committed. Measured per run:

- **freshness**: for each media second t, the wall time from t being written (the
  writer's log) to its window being committed (then a reader's next sync sees it):
  p50, p95, max. A growing file has no end marker, so its last window waits
  ``end_after`` quiet seconds: its seconds after the last window committed before
  the writer stopped are reported apart (``tail``);
- **throughput**: media seconds over wall seconds from the first write to the last
  commit, i.e. the largest speed-up the live indexer sustains on this machine when
  the writer is faster (a run with the stream written before the indexer starts,
  timed from when its models are loaded);
  and the live process's own CPU seconds per media second (what the speed-up would
  be on idle cores follows from it, the wall figures depend on the machine's load);
- **windows vs whole file** (``--finalise keep``, so the windows stay): segment
  boundaries of the whole-file ingest of the same recording found within 0.5 s,
  transcript words (aligned with difflib: equal, changed, missing, extra, and words
  repeated across a seam), OCR tokens (Jaccard);
- **live reel vs whole-file reel**: `vidseek highlight --live` follows the run; the
  seconds of the whole-file reel's source ranges that the last reel made while the
  video was live (and the final one) also cover.
"""
from __future__ import annotations

import difflib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from benchmarks.suites.common import Metric, SuiteResult

__all__ = ["STREAM_CLIPS", "make_stream", "run_once", "compare_videos", "reel_overlap", "run"]

REPO = Path(__file__).resolve().parents[2]
# speech-heavy clips of ../shared/media (MANIFEST.tsv: has_speech yes), 107 s together
STREAM_CLIPS = ("c034.mp4", "c031.mp4", "c059.mp4", "c046.mp4", "c055.mp4")


def make_stream(media: Path, out: Path, clips: Sequence[str] = STREAM_CLIPS) -> Path:
    """Join ``clips`` of ``media`` into one MPEG-TS at ``out``."""
    n = len(clips)
    chains = "".join(
        f"[{i}:v:0]scale=480:270:force_original_aspect_ratio=decrease,pad=480:270:(ow-iw)/2:(oh-ih)/2,setsar=1,"
        f"fps=25,format=yuv420p[v{i}];[{i}:a:0]aresample=44100,aformat=channel_layouts=stereo[a{i}];"
        for i in range(n))
    chains += "".join(f"[v{i}][a{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=1[v][a]"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for c in clips:
        args += ["-i", str(media / c)]
    args += ["-filter_complex", chains, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast",
             "-threads", "1", "-force_key_frames", "expr:gte(t,n_forced*1)", "-sc_threshold", "0", "-c:a", "aac",
             "-b:a", "128k", "-f", "mpegts", str(out)]
    subprocess.run(args, check=True, capture_output=True)
    return out


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]


def run_once(stream: Path, work: Path, *, mode: str = "hls", speed: float = 1.0, prewritten: bool = False,
             finalise: str = "keep", reel: float | None = 30.0, end_after: float = 8.0, min_window: float = 4.0,
             say=print) -> dict:
    """One replay of ``stream`` into a fresh index under ``work``; the measurements."""
    from indexer.media import probe

    work.mkdir(parents=True, exist_ok=True)
    duration = float(probe(str(stream)).duration)
    log = work / "writes.jsonl"
    target = work / ("live.ts" if mode == "ts" else "hls")
    wargs = [sys.executable, "-m", "indexer.live.replay", str(stream), "--speed", str(speed), "--log", str(log)]
    wargs += ["--ts", str(target)] if mode == "ts" else ["--hls", str(target)]
    source = target if mode == "ts" else target / "live.m3u8"
    if mode == "hls":
        target.mkdir(parents=True, exist_ok=True)

    def start_writer() -> subprocess.Popen:
        return subprocess.Popen(wargs, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    writer = None
    if prewritten:  # the whole stream is there before the indexer starts: its throughput
        writer = start_writer()
        if writer.wait() != 0:
            raise RuntimeError(f"the writer failed: {writer.stderr.read().decode()[-500:]}")
    idx = work / "idx"
    largs = [sys.executable, "-m", "api.cli", "live", str(source), "--index", str(idx), "--json", "--finalise",
             finalise, "--end-after", str(end_after), "--stall-after", "5", "--no-covers", "--min-window",
             str(min_window)]
    t_start = time.time()
    live = subprocess.Popen(largs, env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    events: list[dict] = []
    reel_updates: list[dict] = []
    reel_thread = None
    ready_s, ready_at = None, t_start
    for line in live.stdout:
        ev = json.loads(line)
        events.append(ev)
        if ev["kind"] == "ready":
            # the stream goes on air once the indexer has loaded its models, as when a
            # desk starts live ingest before the match (the loading time is reported)
            ready_at = time.time()
            ready_s = round(ready_at - t_start, 2)
            say(f"  {ev['message']}")
            if writer is None:
                writer = start_writer()
        if ev["kind"] == "window":
            say(f"  {ev['message']}")
            if reel and reel_thread is None:
                reel_thread = threading.Thread(target=_follow_reel, args=(idx, work, reel, reel_updates),
                                               daemon=True)
                reel_thread.start()
    _, status, usage = os.wait4(live.pid, 0)  # the live process's own CPU seconds
    live.returncode = os.waitstatus_to_exitcode(status)
    if writer is not None:
        writer.wait()
    if reel_thread is not None:
        reel_thread.join()
    writes = [json.loads(x) for x in log.read_text().splitlines()]
    windows = [e for e in events if e["kind"] == "window"]
    summary = next((e for e in events if e["kind"] == "summary"), {})
    writer_end = writes[-1]["wall"]
    fresh, tail = [], []
    for t in range(0, int(duration)):
        w = next((x["wall"] for x in writes if x["media"] >= t + 1e-6), None)
        c = next((x["committed_at"] for x in windows if x["end"] >= t + 1e-6), None)
        if w is None or c is None:
            continue
        (tail if c > writer_end and mode == "ts" else fresh).append(c - w)
    first_write = writes[0]["wall"]
    last_commit = windows[-1]["committed_at"] if windows else None
    out = {
        "mode": mode, "speed": speed if not prewritten else None, "prewritten": prewritten,
        "duration": round(duration, 3), "windows": len(windows), "finalise": finalise,
        "freshness_p50_s": _round(statistics.median(fresh) if fresh else None),
        "freshness_p95_s": _round(_pct(fresh, 0.95)), "freshness_max_s": _round(max(fresh) if fresh else None),
        "freshness_n": len(fresh), "tail_n": len(tail), "tail_max_s": _round(max(tail) if tail else None),
        "throughput_x": _round(duration / (last_commit - (first_write if not prewritten else ready_at)))
        if last_commit else None,
        "events": {k: v for k, v in summary.get("events", {}).items()},
        "live_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "live_cpu_s_per_media_s": round((usage.ru_utime + usage.ru_stime) / duration, 3),
        "window_ends": [w["end"] for w in windows],
        "status": summary.get("status"), "index": str(idx), "reel_updates": reel_updates, "models_ready_s": ready_s,
    }
    return out


def _round(x: float | None, n: int = 2) -> float | None:
    return None if x is None else round(float(x), n)


def _follow_reel(idx: Path, work: Path, duration: float, updates: list) -> None:
    from api.live_highlights import follow_live_reel

    spool = next((idx / "live").iterdir())
    vid = json.loads((spool / "spool.json").read_text())["video_id"]
    try:
        follow_live_reel(idx, vid, work / "reel.mp4", duration=duration, every=5.0,
                         on_update=lambda st: updates.append(st.as_dict()))
    except Exception as e:  # reported in the result, never a crash of the measurement
        updates.append({"state": "failed", "error": f"{type(e).__name__}: {e}"})


def _video(index_dir: Path):
    from engine.catalog import Catalog

    cat = Catalog(Path(index_dir) / "catalog.sqlite", read_only=True)
    try:
        (v,) = cat.list_videos()
        return v, cat.segments_of(v.key)
    finally:
        cat.close()


def _norm(w: str) -> str:
    return "".join(c for c in w.lower() if c.isalnum() or c == "'")


def compare_videos(live_dir: Path, whole_dir: Path, seams: Sequence[float] = ()) -> dict:
    """Windowed (live) vs whole-file index of the same recording; ``seams``: where the
    windows were cut (video seconds), near which missing, extra and repeated words are
    counted apart (within 1.5 s)."""
    (_, ls), (_, ws) = _video(live_dir), _video(whole_dir)
    lb = [s.start for s in ls[1:]]
    wb = [s.start for s in ws[1:]]
    found = sum(1 for b in wb if any(abs(b - x) <= 0.5 for x in lb))
    lw = [(float(w[0]), float(w[1]), _norm(str(w[2]))) for s in ls for w in s.words]
    ww = [(float(w[0]), float(w[1]), _norm(str(w[2]))) for s in ws for w in s.words]
    sm = difflib.SequenceMatcher(a=[w[2] for w in ww], b=[w[2] for w in lw], autojunk=False)
    def near(w) -> bool:
        return any(w[0] - 1.5 <= t <= w[1] + 1.5 for t in seams)

    ops = {"equal": 0, "replace_whole": 0, "replace_live": 0, "delete": 0, "insert": 0, "seam_missing": 0,
           "seam_extra": 0, "seam_changed": 0}
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            ops["equal"] += i2 - i1
        elif tag == "replace":
            ops["replace_whole"] += i2 - i1
            ops["replace_live"] += j2 - j1
            ops["seam_changed"] += sum(1 for w in ww[i1:i2] if near(w))
        elif tag == "delete":
            ops["delete"] += i2 - i1
            ops["seam_missing"] += sum(1 for w in ww[i1:i2] if near(w))
        else:
            ops["insert"] += j2 - j1
            ops["seam_extra"] += sum(1 for w in lw[j1:j2] if near(w))
    repeated = sum(1 for a, b in zip(lw, lw[1:]) if a[2] == b[2] and b[0] - a[1] < 0.5 and (near(a) or near(b)))
    lt = {t for s in ls for t in _norm_tokens(s.ocr_text)}
    wt = {t for s in ws for t in _norm_tokens(s.ocr_text)}
    return {
        "segments_live": len(ls), "segments_whole": len(ws),
        "boundaries_found": f"{found}/{len(wb)}", "boundary_recall": _round(found / len(wb) if wb else 1.0, 3),
        "words_live": len(lw), "words_whole": len(ww), "words_equal": ops["equal"],
        "word_agreement": _round(ops["equal"] / len(ww) if ww else 1.0, 3),
        "words_changed": ops["replace_whole"], "words_missing": ops["delete"], "words_extra": ops["insert"],
        "window_seams": len(seams), "seam_words_missing": ops["seam_missing"], "seam_words_extra": ops["seam_extra"],
        "seam_words_changed": ops["seam_changed"], "seam_words_repeated": repeated,
        "ocr_tokens_live": len(lt), "ocr_tokens_whole": len(wt),
        "ocr_jaccard": _round(len(lt & wt) / len(lt | wt) if lt | wt else 1.0, 3),
    }


def _norm_tokens(text: str) -> list[str]:
    return [t for t in (_norm(x) for x in text.split()) if t]


def reel_overlap(pieces: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]) -> float | None:
    """Seconds of ``reference`` ranges also covered by ``pieces``, over the reference's seconds."""
    total = sum(b - a for a, b in reference)
    if total <= 0:
        return None
    inter = sum(max(0.0, min(b, d) - max(a, c)) for a, b in reference for c, d in pieces)
    return round(inter / total, 3)


def whole_file(recording: Path, work: Path, reel: float | None) -> tuple[Path, list | None, float]:
    """Whole-file ingest of ``recording`` into ``work/whole`` (and its reel); (index, reel ranges, seconds)."""
    from api.production import HighlightRequest, build_highlight
    from engine.index import VideoIndex
    from indexer.options import IndexOptions
    from indexer.pipeline import index_paths

    whole = work / "whole"
    t0 = time.perf_counter()
    index_paths([str(recording)], whole, options=IndexOptions(graph=False))
    secs = time.perf_counter() - t0
    ranges = None
    if reel:
        with VideoIndex.open(whole) as idx:
            v = idx.list_videos()[0]
            res = build_highlight(idx, HighlightRequest(video_id=v.video_id, duration=reel), work / "whole-reel.mp4")
            ranges = [[e.source_in, e.source_out] for e in res.edl.entries]
    return whole, ranges, secs


def run(media: Path, work: Path, *, speeds: Sequence[float] = (1.0, 2.0), modes: Sequence[str] = ("hls", "ts"),
        fast: bool = True, reel: float = 30.0, min_window: float = 4.0, say=print) -> SuiteResult:
    """The live suite: 1x in each mode, the other speeds over HLS, a prewritten run for
    throughput, then the first run's windows and reel against the whole file's."""
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    stream = make_stream(media, work / "stream.ts")
    runs = []
    plan = [(m, 1.0, False) for m in modes] + [("hls", s, False) for s in speeds if s != 1.0]
    if fast:
        plan.append(("hls", 1.0, True))
    for i, (mode, speed, pre) in enumerate(plan):
        say(f"run {i + 1}/{len(plan)}: {mode} {'prewritten' if pre else f'{speed:g}x'}")
        r = run_once(stream, work / f"run{i}", mode=mode, speed=speed, prewritten=pre,
                     reel=reel if i == 0 else None, min_window=min_window, say=say)
        say(f"  freshness p50 {r['freshness_p50_s']} s, p95 {r['freshness_p95_s']} s, max {r['freshness_max_s']} s;"
            f" throughput {r['throughput_x']}x; events {r['events']}")
        runs.append(r)
    first = runs[0]
    lv, _ = _video(Path(first["index"]))
    recording = Path(lv.stats["live"]["recording"])
    say("whole-file ingest of the first run's recording")
    whole, whole_reel, whole_secs = whole_file(recording, work, reel)
    cmp = compare_videos(Path(first["index"]), whole, first["window_ends"][:-1])
    live_reels = [u for u in first["reel_updates"] if u.get("state") == "live" and u.get("pieces")]
    final_reels = [u for u in first["reel_updates"] if u.get("state") == "done"]
    overlap = {
        "whole_file_pieces": whole_reel,
        "last_live_pieces": live_reels[-1]["pieces"] if live_reels else None,
        "last_live_at_video_s": live_reels[-1]["video_duration"] if live_reels else None,
        "final_pieces": final_reels[-1]["pieces"] if final_reels else None,
        "last_live_overlap": reel_overlap(live_reels[-1]["pieces"], whole_reel) if live_reels and whole_reel else None,
        "final_overlap": reel_overlap(final_reels[-1]["pieces"], whole_reel) if final_reels and whole_reel else None,
        "updates": len(first["reel_updates"]),
    }
    metrics = []
    for r in runs:
        tag = f"live/{r['mode']}/{'prewritten' if r['prewritten'] else str(r['speed']) + 'x'}"
        for k in ("freshness_p50_s", "freshness_p95_s"):
            if r[k] is not None:
                metrics.append(Metric(f"{tag}/{k}", r[k], "lower", "s"))
        if r["throughput_x"] is not None:
            metrics.append(Metric(f"{tag}/throughput_x", r["throughput_x"], "higher", "x"))
    metrics.append(Metric("live/windows_vs_whole/word_agreement", cmp["word_agreement"], "higher"))
    metrics.append(Metric("live/windows_vs_whole/boundary_recall", cmp["boundary_recall"], "higher"))
    if overlap["final_overlap"] is not None:
        metrics.append(Metric("live/reel/final_overlap", overlap["final_overlap"], "higher"))
    for r in runs:
        r.pop("reel_updates", None)
    return SuiteResult("live", {"clips": list(STREAM_CLIPS), "speeds": list(speeds), "modes": list(modes),
                                "min_window": min_window},
                       metrics, {"runs": runs, "windows_vs_whole": cmp, "reel": overlap,
                                 "whole_file_ingest_s": round(whole_secs, 2)}, time.perf_counter() - t0)
