"""Highlight reels: scoring and selection (pure, on hand-made signals), media features
(on synthetic audio with known bursts), and whole reels from an index (the EDL checked
against the rendered MP4 frame by frame)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError, NotFoundError, UnknownNameError
from query.highlights import (
    Candidate,
    HighlightWeights,
    VideoSignals,
    natural_boundaries,
    score_segments,
    select_highlights,
    trim_window,
)
from tests import synth
from tests.test_export import FPS, frame_indices, make_index, streams


class Track:
    """A hand-made time series (what indexer.highlight_features.FeatureTrack holds)."""

    def __init__(self, times, values) -> None:
        self.times = np.asarray(times, dtype=float)
        self.values = np.asarray(values, dtype=float)


def _step_track(duration: float, spans: dict[tuple[float, float], float], base: float, step: float = 0.1) -> Track:
    t = np.arange(0.0, duration, step) + step / 2
    v = np.full(len(t), base)
    for (a, b), val in spans.items():
        v[(t >= a) & (t < b)] = val
    return Track(t, v)


def _signals(vid: str = "v1", duration: float = 20.0, **kw) -> VideoSignals:
    return VideoSignals(video_id=vid, source=f"/media/{vid}.mp4", duration=duration, **kw)


# -- scoring ---------------------------------------------------------------------------
def test_loud_exciting_segment_scores_highest_without_a_query():
    sig = _signals(loudness=_step_track(20, {(10, 12): -6.0}, -30.0), onsets=_step_track(20, {(10.5, 10.6): 40.0}, 1.0),
                   peaks=(10.55,), motion=_step_track(20, {}, 0.1))
    cands = [Candidate("v1", a, a + 4.0, i) for i, a in enumerate((0.0, 4.0, 8.0, 12.0, 16.0))]
    scored = score_segments(cands, {"v1": sig})
    assert scored[0].candidate.start == 8.0
    assert scored[0].parts["audio"] == 1.0 and scored[0].parts["excitement"] == 1.0
    assert "relevance" not in scored[0].parts  # no query: relevance has no weight
    assert scored[0].raw["audio"] == pytest.approx(12.0)  # 2 s at +24 dB over 4 s, over the median
    # Equal motion everywhere does not separate anything: 0.5 for all.
    assert {s.parts["motion"] for s in scored} == {0.5}


def test_relevance_dominates_with_a_query_and_missing_parts_score_zero():
    loud = _signals("v1", loudness=_step_track(20, {(0, 4): -3.0}, -30.0))
    silent = _signals("v2")  # no audio at all
    cands = [Candidate("v1", 0.0, 4.0, 1, relevance=0.2), Candidate("v2", 0.0, 4.0, 2, relevance=0.9),
             Candidate("v1", 4.0, 8.0, 3, relevance=0.1)]
    scored = score_segments(cands, {"v1": loud, "v2": silent})
    assert [s.candidate.segment_id for s in scored][0] == 2
    assert scored[0].parts["relevance"] == 1.0
    by_id = {s.candidate.segment_id: s for s in scored}
    assert by_id[2].parts["audio"] == 0.0 and by_id[2].raw["audio"] is None
    assert sum(HighlightWeights().active(query=True).values()) == pytest.approx(1.0)


def test_speech_salience_is_words_per_second():
    words = tuple((0.2 * i, 0.2 * i + 0.15, f"w{i}") for i in range(20))  # 5 words/s in [0, 4)
    sig = _signals(words=words)
    scored = score_segments([Candidate("v1", 0.0, 4.0), Candidate("v1", 4.0, 8.0)], {"v1": sig})
    assert scored[0].candidate.start == 0.0
    assert scored[0].raw["speech"] == pytest.approx(5.0) and scored[1].raw["speech"] == 0.0


def test_unknown_video_in_candidates_is_an_error():
    with pytest.raises(InputError, match="has no signals"):
        score_segments([Candidate("nope", 0.0, 1.0)], {"v1": _signals()})


# -- natural boundaries and trimming ---------------------------------------------------
WORDS = ((1.0, 1.4, "the"), (1.45, 2.0, "red"), (2.05, 2.6, "boat"), (3.5, 4.0, "leaves"), (4.1, 4.9, "now"),
         (6.0, 6.5, "goal"))


def test_boundaries_are_shot_cuts_and_speech_pauses():
    sig = _signals(duration=10.0, shots=((0.0, 5.0), (5.0, 10.0)), words=WORDS)
    b = dict(natural_boundaries(sig))
    assert b[5.0] == "shot" and b[0.0] == "shot" and b[10.0] == "shot"
    assert b[3.05] == "pause"  # middle of the 0.9 s gap after "boat"
    assert b[5.45] == "pause"
    assert 1.425 not in b  # a 50 ms gap between words is no pause


def test_trim_never_cuts_inside_a_word_and_prefers_boundaries():
    sig = _signals(duration=10.0, shots=((0.0, 5.0), (5.0, 10.0)), words=WORDS)
    a, b, k_in, k_out = trim_window(sig, 0.0, 5.0, max_len=3.2, min_len=1.0)
    assert b - a <= 3.2 + 1e-9 and b - a >= 1.0
    for s, e, _ in WORDS:
        assert not s < a < e and not s < b < e
    assert k_in in ("shot", "pause") and k_out in ("shot", "pause")
    # A candidate edge inside a word moves out of it.
    a, b, k_in, k_out = trim_window(sig, 1.2, 4.5, max_len=8.0, min_len=1.0)
    assert (a, b) == (1.4, 4.1) and (k_in, k_out) == ("word", "word")
    # Too short to hold min_len: nothing.
    assert trim_window(sig, 0.0, 0.8, max_len=5.0, min_len=1.0) is None


# -- selection ---------------------------------------------------------------------------
def _scored(sig: VideoSignals, seg_len: float = 2.5):
    n = int(sig.duration // seg_len)
    cands = [Candidate(sig.video_id, i * seg_len, (i + 1) * seg_len, i) for i in range(n)]
    return score_segments(cands, {sig.video_id: sig})


def test_selection_fits_the_target_counting_crossfades():
    sig = _signals(duration=30.0, loudness=_step_track(30, {(20, 25): -3.0, (5, 7.5): -10.0}, -30.0))
    edl = select_highlights(_scored(sig), {"v1": sig}, target=7.0, fade=0.5, max_piece=2.5, min_piece=1.5)
    assert edl.duration <= 7.0 + 1e-9
    assert edl.duration == pytest.approx(sum(e.duration for e in edl.entries) - (len(edl.entries) - 1) * 0.5)
    assert len(edl.entries) == 3  # 2.5 + 2.5 + 2.5 - 2 x 0.5 = 6.5; a fourth would not fit
    assert [e.output_in for e in edl.entries] == pytest.approx([0.0, 2.0, 4.0])
    starts = [e.source_in for e in edl.entries]
    assert starts == sorted(starts)  # story order
    assert 20.0 in starts and 5.0 in starts  # the loudest parts are in


def test_score_order_puts_the_best_first():
    sig = _signals(duration=30.0, loudness=_step_track(30, {(20, 22.5): -3.0, (5, 7.5): -10.0}, -30.0))
    edl = select_highlights(_scored(sig), {"v1": sig}, target=6.0, fade=0.5, order="score", max_piece=2.5)
    scores = [e.score for e in edl.entries]
    assert scores == sorted(scores, reverse=True) and edl.entries[0].source_in == 20.0
    d = edl.to_dict()
    assert d["order"] == "score" and d["entries"][0]["reason"].startswith("score ")
    assert json.loads(edl.to_json())["duration"] == pytest.approx(edl.duration)


def test_overlapping_candidates_never_give_overlapping_ranges():
    sig = _signals(duration=12.0, loudness=_step_track(12, {(4, 6): -3.0}, -30.0))
    cands = [Candidate("v1", 3.0, 7.0, 1), Candidate("v1", 4.0, 8.0, 2), Candidate("v1", 2.0, 6.0, 3)]
    edl = select_highlights(score_segments(cands, {"v1": sig}), {"v1": sig}, target=20.0, fade=0.2,
                            max_piece=4.0, min_piece=1.0)
    ranges = sorted((e.source_in, e.source_out) for e in edl.entries)
    assert all(b <= c + 1e-9 for (_, b), (c, _) in zip(ranges, ranges[1:]))


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"target": 1.0}, InputError, "shorter than the shortest piece"),
    ({"target": 0.0}, InputError, "positive"),
    ({"target": 10.0, "fade": 1.0}, InputError, "longer than two fades"),
    ({"target": 10.0, "order": "random"}, UnknownNameError, "Unknown order 'random'"),
])
def test_selection_errors(kwargs, error, message):
    sig = _signals()
    with pytest.raises(error, match=message):
        select_highlights(_scored(sig), {"v1": sig}, **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.floats(5.0, 40.0), min_size=1, max_size=3),
    target=st.floats(2.0, 40.0),
    fade=st.floats(0.0, 0.7),
    seg_len=st.floats(1.0, 12.0),
    seed=st.integers(0, 1000),
)
def test_selection_invariants(durations, target, fade, seg_len, seed):
    rng = np.random.default_rng(seed)
    signals, cands = {}, []
    for i, dur in enumerate(durations):
        vid = f"v{i}"
        t = np.arange(0, dur, 0.1) + 0.05
        words = []
        w0 = 0.0
        while w0 < dur - 0.5:  # words with random gaps
            w1 = w0 + float(rng.uniform(0.1, 0.6))
            words.append((round(w0, 3), round(min(w1, dur), 3), "w"))
            w0 = w1 + float(rng.choice([0.05, 0.4]))
        signals[vid] = _signals(vid, dur, shots=((0.0, dur / 2), (dur / 2, dur)), words=tuple(words),
                                loudness=Track(t, rng.normal(-30, 5, len(t))), motion=Track(t, rng.random(len(t))))
        a = 0.0
        while a < dur:
            cands.append(Candidate(vid, a, min(dur, a + seg_len), relevance=float(rng.random())))
            a += seg_len * 0.75  # overlapping windows
    scored = score_segments(cands, signals)
    min_piece = max(1.5, 2 * fade + 0.1)
    if target < min_piece:
        return
    try:
        edl = select_highlights(scored, signals, target=target, fade=fade, min_piece=min_piece)
    except InputError as e:
        assert "no segment" in str(e)
        return
    assert edl.duration <= target + 1e-6
    for e in edl.entries:
        assert min_piece - 1e-6 <= e.duration <= 8.0 + 1e-6
        for s, w_end, _ in signals[e.video_id].words:
            assert not s + 1e-9 < e.source_in < w_end - 1e-9 and not s + 1e-9 < e.source_out < w_end - 1e-9
    for vid in signals:
        r = sorted((e.source_in, e.source_out) for e in edl.entries if e.video_id == vid)
        assert all(b <= c + 1e-9 for (_, b), (c, _) in zip(r, r[1:]))
    for a, b in zip(edl.entries, edl.entries[1:]):
        assert b.output_in == pytest.approx(a.output_out - fade)


# -- media features ----------------------------------------------------------------------
def test_audio_features_find_the_bursts():
    from indexer.highlight_features import audio_tracks

    sr = 16000
    t = np.arange(int(8 * sr)) / sr
    x = 0.02 * np.sin(2 * np.pi * 300 * t)
    for a in (2.5, 6.5):
        m = (t >= a) & (t < a + 0.2)
        x[m] += 0.8 * np.sin(2 * np.pi * 900 * t[m])
    loud, onsets, peaks = audio_tracks(x.astype(np.float32), sr)
    assert len(peaks) == 2 and all(abs(p - q) <= 0.1 for p, q in zip(peaks, (2.5, 6.5)))
    assert loud.values[26] > loud.values[10] + 20  # dB
    assert len(loud.times) == len(onsets.times) == 80


def test_motion_is_high_for_moving_pictures_and_cuts_are_filtered(tmp_path, tools):
    from indexer.highlight_features import motion_track

    still = synth.make_text_clip(tmp_path, "STILL", seconds=2.0, size=(128, 64), fontsize=24, name="still.mp4")
    moving = synth.make_no_audio_clip(tmp_path, seconds=2.0, name="moving.mp4")
    assert float(motion_track(still).values.max()) < 0.01
    assert float(motion_track(moving).values.mean()) > 0.02
    cuts, _ = synth.make_cuts_clip(tmp_path, (synth.ShotSpec("color=c=red", 2.0), synth.ShotSpec("color=c=blue", 2.0)))
    assert float(motion_track(cuts).values.max()) < 0.01  # one hard cut is not motion


def test_quality_uses_the_cover_scores(tmp_path, tools, visual_image):
    from indexer.highlight_features import quality_track

    photo = tmp_path / "photo.mp4"
    synth._ffmpeg("-loop", "1", "-i", str(visual_image), "-t", "1", "-r", "5", "-vf", "scale=320:-2",
                  *synth._X264, *synth._BITEXACT, str(photo))
    black = synth.make_cuts_clip(tmp_path, (synth.ShotSpec("color=c=black", 1.0),), name="black.mp4")[0]
    good = quality_track(photo, [0.5])
    assert abs(good.times[0] - 0.5) <= 0.2  # the frame on screen at 0.5 s (5 fps)
    assert good.values[0] > 0.5  # a sharp, well exposed photograph
    assert quality_track(black, [0.5]).values[0] == 0.0  # rejected as black


# -- whole reels ---------------------------------------------------------------------------
SPOKEN = [[0.5, 0.8, "hello"], [0.85, 1.2, "big"], [1.6, 2.0, "world"], [2.1, 2.6, "here"], [3.3, 3.7, "we"],
          [3.75, 4.4, "go"], [5.0, 5.4, "again"], [6.2, 6.9, "goal"]]


def make_burst_clip(out_dir: Path, name: str = "match.mp4") -> Path:
    """8 s of counter frames (25 fps, 64x32) over a quiet 300 Hz hum with loud 900 Hz
    bursts at 2.5-2.7 s and 6.5-6.7 s."""
    path = Path(out_dir) / name
    lum = "16+14*if(lt(X,W/2),mod(N,16),floor(N/16))"
    synth._ffmpeg(
        "-f", "lavfi", "-i", f"color=c=black:s=64x32:r={FPS}:d=8,format=yuv420p,geq=lum='{lum}':cb=128:cr=128",
        "-f", "lavfi", "-i",
        "aevalsrc='0.05*sin(2*PI*300*t)+if(between(mod(t,4),2.5,2.7),0.8*sin(2*PI*900*t),0)':s=44100:d=8",
        *synth._X264, "-g", "25", "-x264-params", "scenecut=0", "-c:a", "aac", "-b:a", "64k", "-shortest",
        *synth._BITEXACT, str(path))
    return path


def segments_with_words(bounds: list[float], words: list) -> list:
    """Segments between consecutive ``bounds``, each with the words that start in it."""
    return [(a, b, [w for w in words if a <= w[0] < b]) for a, b in zip(bounds, bounds[1:])]


@pytest.fixture(scope="module")
def reel_index(tmp_path_factory, tools):
    """Two counter clips (frames encode their index) with loud bursts at 2.5 s and 6.5 s
    in the first, indexed with hand-made shots, segments and word timings."""
    from tests.test_export import make_counter_clip

    d = tmp_path_factory.mktemp("reel")
    first = make_burst_clip(d)
    # Another size (same 2:1 shape, so that no bars hide the frame code) and frame rate.
    second = make_counter_clip(d, seconds=6.0, fps=10, size=(128, 64), audio=False, gop=10, name="second.mp4")

    ids = make_index(d / "index", [
        {"source": first, "duration": 8.0, "shots": [(0.0, 3.0), (3.0, 6.0), (6.0, 8.0)],
         "segments": segments_with_words([0.0, 1.5, 3.0, 4.5, 6.0, 8.0], SPOKEN)},
        {"source": second, "duration": 6.0, "shots": [(0.0, 6.0)],
         "segments": segments_with_words([0.0, 2.0, 4.0, 6.0], []),
         "tenant": "other"},
    ])
    return d / "index", ids[str(first)], ids[str(second)], first


def check_reel_against_edl(path: Path, edl: dict, source_fps: dict[str, int]) -> None:
    """The EDL's timing is the MP4's: its duration, and outside the cross-fades each
    output frame shows the source frame the EDL says."""
    from indexer import media

    info = media.probe(path)
    assert abs(info.duration - edl["duration"]) <= 1.0 / FPS
    assert edl["duration"] <= edl["target_duration"] + 1e-9
    entries = edl["entries"]
    total = sum(e["duration"] for e in entries) - (len(entries) - 1) * edl["fade"]
    assert total == pytest.approx(edl["duration"], abs=1e-6)
    idx = frame_indices(path)
    fps = edl["output"]["fps"]
    for k, e in enumerate(entries):
        assert e["output_out"] - e["output_in"] == pytest.approx(e["duration"], abs=1e-6)
        if k:
            assert e["output_in"] == pytest.approx(entries[k - 1]["output_out"] - edl["fade"], abs=1e-6)
        lo = e["output_in"] + (edl["fade"] if k else 0.0)
        hi = e["output_out"] - (edl["fade"] if k < len(entries) - 1 else 0.0)
        sfps = source_fps[e["source"]]
        for j in range(round(lo * fps), round(hi * fps)):
            src_t = e["source_in"] + (j / fps - e["output_in"])
            assert idx[j] == int(src_t * sfps + 1e-6), (k, j)
    ranges = sorted((e["source"], e["source_in"], e["source_out"]) for e in entries)
    for (s1, _, b), (s2, c, _) in zip(ranges, ranges[1:]):
        assert s1 != s2 or b <= c + 1e-9


def test_highlight_of_a_video_matches_its_edl(reel_index, tmp_path):
    from api.production import HighlightRequest, build_highlight
    from engine.index import VideoIndex

    index, vid, _, first = reel_index
    stages = []
    with VideoIndex.open(index) as idx:
        res = build_highlight(idx, HighlightRequest(video_id=vid, duration=5.0, fade=0.3), tmp_path / "h.mp4",
                              edl_path=tmp_path / "h.json", progress=lambda s, f: stages.append((s, f)))
    edl = json.loads((tmp_path / "h.json").read_text())
    assert edl == json.loads(json.dumps(res.edl.to_dict()))
    assert edl["video_id"] == vid and edl["order"] == "story" and edl["fade"] == pytest.approx(0.32)
    assert streams(res.path) == {"video": "h264", "audio": "aac"}
    check_reel_against_edl(Path(res.path), edl, {str(first): FPS})
    starts = [e["source_in"] for e in edl["entries"]]
    assert starts == sorted(starts)
    # Both loud bursts (2.5 s and 6.5 s) are in the reel.
    for burst in (2.6, 6.6):
        assert any(e["source_in"] <= burst < e["source_out"] for e in edl["entries"]), edl["entries"]
    for e in edl["entries"]:
        for s, w_end, _ in SPOKEN:  # no cut inside a word (up to the renderer's frame snapping)
            assert not s + 0.05 < e["source_in"] < w_end - 0.05
        assert e["in_boundary"] in ("shot", "pause", "segment", "word", "trim") and e["reason"]
    fracs = [f for _, f in stages]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0


def test_cli_highlight_and_its_errors(reel_index, tmp_path, capsys):
    from api.cli import main

    index, vid, other_vid, first = reel_index
    out, edl = tmp_path / "r.mp4", tmp_path / "r.json"
    rc = main(["highlight", vid, "--duration", "4", "--order", "score", "--out", str(out), "--index", str(index),
               "--edl", str(edl), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert text.startswith(f"wrote {out}") and "edit decision list" in text
    d = json.loads(edl.read_text())
    scores = [e["score"] for e in d["entries"]]
    assert scores == sorted(scores, reverse=True)
    check_reel_against_edl(out, d, {str(first): FPS})

    def err(argv, rc_want):
        rc = main(["highlight", *argv, "--out", str(tmp_path / "x.mp4"), "--index", str(index), "--quiet"])
        assert rc == rc_want
        return capsys.readouterr().err

    assert "exactly one of a video id or a query" in err([], 2)
    assert "exactly one of a video id or a query" in err([vid, "--query", "goal"], 2)
    assert "no video with id 'vnope'" in err(["vnope"], 1)
    assert "no video with id" in err([other_vid, "--tenant", "default"], 1)  # another tenant's video
    assert "shorter than the shortest piece" in err([vid, "--duration", "1"], 2)
    assert not (tmp_path / "x.mp4").exists()


def test_highlight_of_a_query_with_a_searcher(reel_index, tmp_path):
    """The query path with a stand-in searcher (the real planner is exercised in
    test_production_api): hits become candidates with their scores as relevance."""
    from api.production import HighlightRequest, build_highlight
    from engine.index import VideoIndex
    from query.planner import Hit, SearchResponse

    index, vid, other_vid, first = reel_index
    with VideoIndex.open(index) as idx:
        segs = idx.catalog.segments_of(idx.catalog.get_video(vid).key)
        other = idx.catalog.segments_of(idx.catalog.get_video(other_vid).key)

        class Searcher:
            def search(self, query, options):
                assert options.tenant is None and query == "goal"
                return SearchResponse(query, {}, 1.0, [
                    Hit(vid, str(first), segs[4].start, segs[4].end, 0.9, {}, "", segment_ids=[segs[4].id]),
                    Hit(other_vid, "", other[1].start, other[1].end, 0.5, {}, "", segment_ids=[other[1].id]),
                    Hit(vid, str(first), segs[0].start, segs[0].end, 0.2, {}, "", segment_ids=[segs[0].id]),
                ])

        res = build_highlight(idx, HighlightRequest(query="goal", duration=20.0, fade=0.2), tmp_path / "q.mp4",
                              searcher=Searcher())
    edl = res.edl.to_dict()
    assert edl["query"] == "goal" and "relevance" in edl["weights"]
    used = [(e["video_id"], e["segment_id"]) for e in edl["entries"]]
    assert used[0] == (vid, segs[0].id)
    assert set(used) == {(vid, segs[4].id), (other_vid, other[1].id), (vid, segs[0].id)}
    # Story order across videos: the best video first, each in time order.
    assert [u[0] for u in used] == [vid, vid, other_vid]
    assert res.reel.width == 64 and res.reel.height == 32  # the second clip (128x64, 10 fps) is normalised
    check_reel_against_edl(Path(res.path), edl, {str(first): FPS, edl["entries"][2]["source"]: 10})


def test_query_without_matches_is_not_found(reel_index, tmp_path):
    from api.production import HighlightRequest, build_highlight
    from engine.index import VideoIndex
    from query.planner import SearchResponse

    class Empty:
        def search(self, query, options):
            return SearchResponse(query, {}, 1.0, [])

    with VideoIndex.open(reel_index[0]) as idx, pytest.raises(NotFoundError, match="no indexed moment matches"):
        build_highlight(idx, HighlightRequest(query="zebra"), tmp_path / "q.mp4", searcher=Empty())
