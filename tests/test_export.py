"""Moment export and reel rendering on synthetic clips whose frames encode their own index.

Every frame of the counter clip is flat grey in two halves: the left half's luma
level gives ``index % 16``, the right half's ``index // 16`` (levels 16 + 14 k, far
apart enough to survive H.264). Reading the levels back tells exactly which source
frames a clip holds, so frame accuracy is checked frame by frame, not by duration only.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from engine.errors import InputError, NotFoundError
from indexer.export import (
    ExportLimitError,
    ExportLimits,
    export_clip,
    export_to_temp,
    iter_file,
    keyframe_times,
    plan_export,
)
from indexer.reel import ReelPiece, render_reel
from tests import synth

FPS = 25
FRAME = 1.0 / FPS


def make_counter_clip(out_dir: Path, *, seconds: float = 4.0, fps: int = FPS, size: tuple[int, int] = (64, 32),
                      audio: bool = True, gop: int = 25, codec: str = "h264", name: str = "counter.mp4") -> Path:
    """Frames that encode their index (see the module docstring), a keyframe every ``gop``
    frames exactly (no scene-cut keyframes), and optionally a 440 Hz tone."""
    lum = "16+14*if(lt(X,W/2),mod(N,16),floor(N/16))"
    args = ["-f", "lavfi", "-i",
            f"color=c=black:s={size[0]}x{size[1]}:r={fps}:d={seconds},format=yuv420p,geq=lum='{lum}':cb=128:cr=128"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=44100", "-c:a", "aac", "-b:a", "64k"]
    if codec == "h264":
        args += [*synth._X264, "-g", str(gop), "-x264-params", "scenecut=0"]
    else:
        args += ["-c:v", codec, "-g", str(gop), "-q:v", "2"]
    path = Path(out_dir) / name
    synth._ffmpeg(*args, "-shortest", *synth._BITEXACT, str(path))
    return path


def frame_indices(path: str | Path) -> list[int]:
    """The source frame index each frame of ``path`` shows, in order."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            p = f.planes[0]
            y = np.frombuffer(p, np.uint8).reshape(f.height, p.line_size)[:, : f.width].astype(float)
            w = f.width
            lo = int(round((y[:, 2 : w // 2 - 4].mean() - 16) / 14))
            hi = int(round((y[:, w // 2 + 4 : w - 2].mean() - 16) / 14))
            out.append(lo + 16 * hi)
    return out


def streams(path: str | Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        return {s.type: s.codec_context.name for s in c.streams if s.type in ("video", "audio")}


def video_duration(path: str | Path) -> float:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return float(v.duration * v.time_base)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, tools) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("export_clips")
    return {
        "counter": make_counter_clip(d),
        "silent": make_counter_clip(d, audio=False, name="silent.mp4"),
        # No audio: AAC's priming delay would shift this file's video by 23 ms.
        "mpeg4": make_counter_clip(d, codec="mpeg4", audio=False, name="mpeg4.mkv"),
    }


# -- frame accuracy ------------------------------------------------------------------
def test_unaligned_range_is_reencoded_frame_exact(clips, tmp_path):
    res = export_clip(clips["counter"], 1.2, 2.6, tmp_path / "c.mp4")
    assert res.plan.mode == "reencode" and "not on a keyframe" in res.plan.reason
    assert frame_indices(res.path) == list(range(30, 65))  # frames shown during [1.2, 2.6)
    assert abs(res.duration - 1.4) <= FRAME
    assert abs(video_duration(res.path) - 1.4) <= FRAME
    assert streams(res.path) == {"video": "h264", "audio": "aac"}


def test_times_between_frames_snap_to_the_nearest_frame(clips, tmp_path):
    res = export_clip(clips["counter"], 1.21, 2.61, tmp_path / "c.mp4")
    assert (res.plan.start, res.plan.end) == pytest.approx((1.2, 2.6))
    idx = frame_indices(res.path)
    assert idx[0] == 30 and idx[-1] == 64  # frame 30 is on screen at 1.21 s
    assert idx == list(range(idx[0], idx[-1] + 1))  # no frame repeated or dropped


def test_keyframe_aligned_range_is_stream_copied(clips, tmp_path):
    res = export_clip(clips["counter"], 1.0, 3.0, tmp_path / "c.mp4")
    assert res.plan.mode == "copy", res.plan.reason
    assert frame_indices(res.path) == list(range(25, 75))
    assert abs(res.duration - 2.0) <= FRAME
    assert streams(res.path) == {"video": "h264", "audio": "aac"}
    # Copied, not re-encoded: the video packets are the source's bytes.
    with av.open(str(clips["counter"])) as src, av.open(res.path) as out:
        sv, ov = src.streams.video[0], out.streams.video[0]
        src_pk = {round(float(p.pts * sv.time_base), 3): bytes(p) for p in src.demux(sv) if p.size}
        out_pk = [(round(float(p.pts * ov.time_base), 3), bytes(p)) for p in out.demux(ov) if p.size]
    assert len(out_pk) == 50
    assert all(src_pk[round(t + 1.0, 3)] == data for t, data in out_pk)


def test_copy_up_to_the_end_of_the_video(clips, tmp_path):
    res = export_clip(clips["counter"], 2.0, 4.0, tmp_path / "c.mp4")
    assert res.plan.mode == "copy"
    assert frame_indices(res.path) == list(range(50, 100))


def test_copy_never_reencodes_an_aligned_range(clips, tmp_path):
    res = export_clip(clips["counter"], 1.0, 3.0, tmp_path / "c.mp4", copy="never")
    assert res.plan.mode == "reencode" and "copy=never" in res.plan.reason
    assert frame_indices(res.path) == list(range(25, 75))


def test_copy_always_refuses_an_unaligned_range(clips, tmp_path):
    with pytest.raises(InputError, match="not on a keyframe") as e:
        export_clip(clips["counter"], 1.2, 3.0, tmp_path / "c.mp4", copy="always")
    assert "nearest: 1.000, 2.000 s" in str(e.value)
    assert not (tmp_path / "c.mp4").exists()


def test_end_inside_a_gop_is_reencoded(clips):
    plan = plan_export(clips["counter"], 1.0, 2.6)
    assert plan.mode == "reencode" and "end 2.600 s is neither on a keyframe" in plan.reason


def test_other_codecs_are_reencoded_to_h264(clips, tmp_path):
    res = export_clip(clips["mpeg4"], 1.0, 2.0, tmp_path / "c.mp4")
    assert res.plan.mode == "reencode" and "mpeg4, not H.264" in res.plan.reason
    assert streams(res.path) == {"video": "h264"}
    assert frame_indices(res.path) == list(range(25, 50))


def test_no_audio_source_gives_no_audio_stream(clips, tmp_path):
    for copy in ("auto", "never"):
        res = export_clip(clips["silent"], 1.0, 2.0, tmp_path / f"{copy}.mp4", copy=copy)
        assert streams(res.path) == {"video": "h264"}
        assert frame_indices(res.path) == list(range(25, 50))


def test_keyframe_times_are_presentation_times(clips):
    assert keyframe_times(clips["counter"]) == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert keyframe_times(clips["counter"], 0.5, 2.5) == pytest.approx([1.0, 2.0])


# -- errors and limits ---------------------------------------------------------------
@pytest.mark.parametrize(("start", "end", "message"), [
    (-1.0, 1.0, "start -1.0 s is negative"),
    (2.0, 2.0, "must be after start"),
    (2.0, 1.0, "must be after start"),
    (1.0, 5.0, "past the end"),
    (4.5, 5.0, "past the end"),
    (float("nan"), 1.0, "finite"),
])
def test_invalid_ranges_are_named(clips, tmp_path, start, end, message):
    with pytest.raises(InputError, match=message):
        export_clip(clips["counter"], start, end, tmp_path / "c.mp4")


def test_missing_source_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="no such file"):
        export_clip(tmp_path / "gone.mp4", 0.0, 1.0, tmp_path / "c.mp4")


def test_duration_limit_is_checked_before_any_work(clips, tmp_path):
    with pytest.raises(ExportLimitError, match="over the limit of 1.5 s") as e:
        export_clip(clips["counter"], 0.0, 2.0, tmp_path / "c.mp4", limits=ExportLimits(max_duration_s=1.5))
    assert e.value.code == "too_large" and "--max-duration" in str(e.value)


@pytest.mark.parametrize("copy", ["auto", "never"])
def test_size_limit_stops_the_export_and_leaves_nothing(clips, tmp_path, copy):
    with pytest.raises(ExportLimitError, match="size limit|over the limit"):
        export_clip(clips["counter"], 1.0, 3.0, tmp_path / "c.mp4", copy=copy, limits=ExportLimits(max_bytes=2000))
    assert list(tmp_path.iterdir()) == []  # neither the clip nor a temporary file


def test_progress_reaches_one_and_never_goes_back(clips, tmp_path):
    seen: list[tuple[str, float]] = []
    export_clip(clips["counter"], 0.2, 3.8, tmp_path / "c.mp4", progress=lambda s, f: seen.append((s, f)))
    fracs = [f for _, f in seen]
    assert fracs and fracs[-1] == 1.0 and fracs == sorted(fracs)
    assert {s for s, _ in seen} == {"export"}


def test_temp_export_streams_in_chunks_and_deletes_the_file(clips, tmp_path):
    res = export_to_temp(clips["counter"], 1.2, 2.6, tmp_dir=tmp_path)
    size = Path(res.path).stat().st_size
    chunks = list(iter_file(res.path, chunk_size=4096))
    assert all(len(c) <= 4096 for c in chunks) and sum(map(len, chunks)) == size == res.size_bytes
    assert not Path(res.path).exists()
    # A consumer that stops early (a client that hangs up) still removes the file.
    res = export_to_temp(clips["counter"], 1.2, 2.6, tmp_dir=tmp_path)
    gen = iter_file(res.path, chunk_size=1024)
    next(gen)
    gen.close()
    assert not Path(res.path).exists()


def test_exported_file_plays_in_ffmpeg(clips, tmp_path):
    res = export_clip(clips["counter"], 0.52, 1.48, tmp_path / "c.mp4")
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", res.path, "-f", "null", "-"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""


# -- reels -----------------------------------------------------------------------------
def test_reel_crossfades_normalises_and_matches_its_timing(clips, tmp_path):
    other = make_counter_clip(tmp_path, seconds=3.0, fps=10, size=(96, 64), audio=False, gop=10, name="other.mp4")
    pieces = [ReelPiece(str(clips["counter"]), 0.4, 1.4), ReelPiece(str(other), 0.5, 2.0),
              ReelPiece(str(clips["counter"]), 2.0, 3.6)]
    res = render_reel(pieces, tmp_path / "reel.mp4", fade=0.3)
    assert res.fade == pytest.approx(0.32)  # snapped up to whole frames at 25 fps
    assert (res.width, res.height, res.fps) == (64, 32, 25.0)  # the first piece's format
    durs = [p.duration for p in res.pieces]
    assert durs == pytest.approx([1.0, 1.48, 1.6])  # snapped down to whole frames
    assert res.duration == pytest.approx(sum(durs) - 2 * res.fade)
    for a, b in zip(res.pieces, res.pieces[1:]):
        assert b.output_in == pytest.approx(a.output_out - res.fade)
    assert abs(res.probed_duration - res.duration) <= FRAME
    assert streams(res.path) == {"video": "h264", "audio": "aac"}  # silence stands in for the silent piece
    idx = frame_indices(res.path)
    assert len(idx) == round(res.duration * FPS)
    # Outside the fades each output frame is the right source frame.
    assert idx[: round((1.0 - res.fade) * FPS)] == list(range(10, 10 + round((1.0 - res.fade) * FPS)))
    last = res.pieces[2]
    k0 = round((last.output_in + res.fade) * FPS)
    assert idx[k0:] == list(range(50 + round(res.fade * FPS), 90))


def test_reel_piece_too_short_for_its_fades(clips, tmp_path):
    pieces = [ReelPiece(str(clips["counter"]), 0.0, 1.0), ReelPiece(str(clips["counter"]), 1.0, 1.5),
              ReelPiece(str(clips["counter"]), 2.0, 3.0)]
    with pytest.raises(InputError, match="too short"):
        render_reel(pieces, tmp_path / "reel.mp4", fade=0.3)


# -- the command line ------------------------------------------------------------------
def make_index(index_dir: Path, videos: list[dict], *, real_encoders: bool = False) -> dict[str, str]:
    """An index of real media files with hand-made catalogue rows: each dict has
    ``source``, ``duration``, ``shots`` [(s, e)], ``segments`` [(s, e, words [[s, e,
    word]])] and optional ``tenant``/``title``. Returns source -> video id.

    By default the encoders are fake (8-d, no models), enough for everything but a
    search. ``real_encoders``: the default encoders' names and sizes, speech vectors
    from the real text encoder and random visual ones, so that the service opens the
    index and the query planner searches it.
    """
    from engine.catalog import NewSegment, NewVideo
    from engine.config import IndexConfig
    from engine.index import VideoIndex
    from engine.models.base import EncoderInfo

    if real_encoders:
        from engine.models.registry import get_image_encoder, get_text_encoder

        config = IndexConfig()
        text = get_text_encoder(config.text_encoder)
        enc = {"text": text.info, "image": get_image_encoder(config.image_encoder, **config.image_options).info}
    else:
        config, text = IndexConfig(shards=1, flat_max=1000), None
        enc = {"text": EncoderInfo("fake-text", "text", 8, "1"), "image": EncoderInfo("fake-image", "image", 8, "1")}
    dim = enc["image"].dim
    rng = np.random.default_rng(0)
    ids = {}
    with VideoIndex.open(index_dir, writer=True, config=config, encoders=enc) as idx:
        for i, v in enumerate(videos):
            segs = []
            for s, e, words in v["segments"]:
                vec = rng.normal(size=dim).astype(np.float32)
                transcript = " ".join(w[2] for w in words)
                vectors = {"visual": vec / np.linalg.norm(vec)}
                if text is not None and transcript:
                    vectors["speech"] = text.encode([transcript])[0]
                shot = next(k for k, (a, b) in enumerate(v["shots"]) if a <= s < b)
                segs.append(NewSegment(start=s, end=e, shot_index=shot, words=words, transcript=transcript,
                                       vectors=vectors, keyframes=[((s + e) / 2, [], None)]))
            rec = idx.add_video(NewVideo(source=str(v["source"]), content_hash=f"h{i}-{v['source']}",
                                         tenant=v.get("tenant", "default"), title=v.get("title"),
                                         duration=v["duration"], shots=v["shots"], segments=segs))
            ids[str(v["source"])] = rec.video_id
    return ids


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, clips) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("clip_index")
    ids = make_index(d, [{"source": clips["counter"], "duration": 4.0, "shots": [(0.0, 4.0)],
                          "segments": [(0.0, 2.0, []), (2.0, 4.0, [])]}])
    return d, ids[str(clips["counter"])]


def test_cli_clip_writes_the_range(cli_index, tmp_path, capsys):
    from api.cli import main

    index, vid = cli_index
    out = tmp_path / "moment.mp4"
    rc = main(["clip", vid, "--start", "1.2", "--end", "2.6", "--out", str(out), "--index", str(index), "--quiet"])
    assert rc == 0
    assert frame_indices(out) == list(range(30, 65))
    assert "re-encode" in capsys.readouterr().out
    rc = main(["clip", vid, "--start", "1", "--end", "3", "--out", str(out), "--index", str(index), "--json"])
    assert rc == 0
    import json

    assert json.loads(capsys.readouterr().out)["plan"]["mode"] == "copy"


@pytest.mark.parametrize(("argv", "rc", "message"), [
    (["--start", "2", "--end", "1"], 2, "end 1.0 s must be after start 2.0 s"),
    (["--start", "-1", "--end", "1"], 2, "start -1.0 s is negative"),
    (["--start", "1", "--end", "9"], 2, "past the end"),
    (["--start", "1.2", "--end", "3", "--copy", "always"], 2, "cannot stream-copy"),
    (["--start", "0", "--end", "3", "--max-duration", "2"], 2, "over the limit of 2.0 s"),
])
def test_cli_clip_errors(cli_index, tmp_path, capsys, argv, rc, message):
    from api.cli import main

    index, vid = cli_index
    assert main(["clip", vid, *argv, "--out", str(tmp_path / "c.mp4"), "--index", str(index), "--quiet"]) == rc
    err = capsys.readouterr().err
    assert err.startswith("vidseek clip: ") and message in err
    assert not (tmp_path / "c.mp4").exists()


def test_cli_clip_unknown_video(cli_index, tmp_path, capsys):
    from api.cli import main

    index, _ = cli_index
    rc = main(["clip", "vnope", "--start", "0", "--end", "1", "--out", str(tmp_path / "c.mp4"), "--index", str(index)])
    assert rc == 1
    assert "no video with id 'vnope'" in capsys.readouterr().err
