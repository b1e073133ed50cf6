"""Replay a clip as a live stream: a growing MPEG-TS file or a local HLS playlist,
written at ``speed`` times real time. For tests, benchmarks and demos of `vidseek live`.

```
python -m indexer.live.replay CLIP --ts OUT.ts [--speed 1] [--log writes.jsonl]
python -m indexer.live.replay CLIP --hls OUT_DIR [--segment 2] [--speed 1] [--loop] [--truncate N]
```

The clip is first made into MPEG-TS with H.264/AAC and a keyframe a second (an
``.ts`` clip is taken as it is), then written out as the wall clock passes: the growing file gets the bytes
of every packet whose time has come, the HLS writer publishes each segment (then the
playlist, atomically) once its end time has come. ``--log`` records, per write, the
wall time and the media time written up to, for freshness measurements.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["to_ts", "packet_times", "write_growing", "make_segments", "write_hls"]


def _ffmpeg(*args: str) -> None:
    proc = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {proc.stderr.strip()[-500:]}")


def to_ts(clip: str | os.PathLike[str], out: str | os.PathLike[str], *, gop: float | None = 1.0) -> Path:
    """``clip`` as MPEG-TS with H.264 video (a keyframe every ``gop`` seconds, so HLS can
    cut short segments) and AAC audio when it has sound."""
    args = ["-i", str(clip), "-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264", "-preset", "veryfast",
            "-pix_fmt", "yuv420p", "-threads", "1", "-c:a", "aac", "-b:a", "128k", "-ac", "2"]
    if gop:
        args += ["-force_key_frames", f"expr:gte(t,n_forced*{gop})", "-sc_threshold", "0"]
    _ffmpeg(*args, "-f", "mpegts", str(out))
    return Path(out)


def packet_times(ts: str | os.PathLike[str]) -> list[tuple[int, float]]:
    """(byte offset, media seconds from the start) of each packet, in file order: the
    bytes before ``offset`` hold everything up to that time."""
    import av

    out = []
    with av.open(str(ts)) as c:
        t0 = None
        for pkt in c.demux():
            if pkt.pos is None or pkt.pts is None or pkt.time_base is None:
                continue
            t = float(pkt.pts * pkt.time_base)
            t0 = t if t0 is None else min(t0, t)
            out.append((int(pkt.pos), t))
    return [(pos, t - (t0 or 0.0)) for pos, t in out]


def _log(fh, **row) -> None:
    if fh is not None:
        fh.write(json.dumps({"wall": round(time.time(), 4), **row}) + "\n")
        fh.flush()


def write_growing(ts: str | os.PathLike[str], out: str | os.PathLike[str], *, speed: float = 1.0,
                  tick: float = 0.25, log: str | os.PathLike[str] | None = None,
                  stall: tuple[float, float] | None = None, hold: tuple[float, Callable[[], None]] | None = None
                  ) -> None:
    """Append ``ts`` to ``out`` as its media time passes at ``speed``; ``stall``: (at media
    second, for wall seconds) stop writing once; ``hold``: (at media second, a call that
    returns when writing may go on): a test holds the rest back until it has seen
    what it waits for."""
    data = Path(ts).read_bytes()
    marks = packet_times(ts)
    fh = open(log, "a") if log else None
    written, t_start, stalled = 0, time.monotonic(), False
    try:
        with open(out, "ab") as f:
            while written < len(data):
                media = (time.monotonic() - t_start) * speed
                if hold and media >= hold[0]:
                    t_hold = time.monotonic()
                    hold[1]()
                    t_start += time.monotonic() - t_hold
                    media, hold = hold[0], None
                if stall and not stalled and media >= stall[0]:
                    stalled = True
                    time.sleep(stall[1])
                    t_start += stall[1]
                    media = stall[0]
                # a packet's bytes end where the next packet (in file order) starts
                upto = next((pos for pos, t in marks if t > media), len(data))
                if upto > written:
                    f.write(data[written:upto])
                    f.flush()
                    _log(fh, bytes=upto, media=round(min(media, marks[-1][1] if marks else media), 4))
                    written = upto
                time.sleep(tick)
    finally:
        if fh is not None:
            fh.close()


def make_segments(ts: str | os.PathLike[str], folder: str | os.PathLike[str], *, segment: float = 2.0
                  ) -> list[tuple[str, float]]:
    """Cut ``ts`` into HLS segments in ``folder`` (a staging area); [(name, duration)]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _ffmpeg("-i", str(ts), "-c", "copy", "-f", "hls", "-hls_time", f"{segment}", "-hls_list_size", "0",
            "-hls_segment_filename", str(folder / "seg%05d.ts"), str(folder / "full.m3u8"))
    out, dur = [], None
    for ln in (folder / "full.m3u8").read_text().splitlines():
        if ln.startswith("#EXTINF:"):
            dur = float(ln.split(":", 1)[1].split(",")[0])
        elif ln and not ln.startswith("#"):
            out.append((ln, dur or segment))
    return out


def _playlist(entries: list[tuple[str, float, bool]], seq: int, ended: bool, target: float) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{int(target + 0.999)}",
             f"#EXT-X-MEDIA-SEQUENCE:{seq}"]
    for name, dur, disc in entries:
        if disc:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXTINF:{dur:.6f},", name]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def write_hls(ts: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, segment: float = 2.0,
              speed: float = 1.0, log: str | os.PathLike[str] | None = None, loop: int = 0,
              truncate: int | None = None, end: bool = True, name: str = "live.m3u8",
              hold: tuple[float, Callable[[], None]] | None = None) -> Path:
    """Publish ``ts`` as an HLS event playlist ``out_dir/name``, each segment once its end
    time has come at ``speed``. ``loop``: publish the same segment files this many more
    times (a looping playlist); ``truncate``: cut segment N to a third of its bytes;
    ``end``: add ``#EXT-X-ENDLIST`` at the end; ``hold``: (media second, call) as for
    ``write_growing``, before the first segment that ends after that second."""
    out_dir = Path(out_dir)
    stage = out_dir / ".stage"
    segs = make_segments(ts, stage, segment=segment)
    out_dir.mkdir(parents=True, exist_ok=True)
    playlist = out_dir / name
    fh = open(log, "a") if log else None
    entries: list[tuple[str, float, bool]] = []
    t_start, media = time.monotonic(), 0.0
    target = max(d for _, d in segs)
    try:
        for rnd in range(loop + 1):
            for i, (seg, dur) in enumerate(segs):
                media += dur
                if hold and media > hold[0]:
                    t_hold = time.monotonic()
                    hold[1]()
                    t_start += time.monotonic() - t_hold
                    hold = None
                wait = t_start + media / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                data = (stage / seg).read_bytes()
                if truncate is not None and i == truncate and rnd == 0:
                    data = data[: len(data) // 3]
                if rnd == 0:
                    tmp = out_dir / f".{seg}.tmp"
                    tmp.write_bytes(data)
                    os.replace(tmp, out_dir / seg)
                entries.append((seg, dur, False))
                tmp = out_dir / f".{name}.tmp"
                tmp.write_text(_playlist(entries, 0, False, target))
                os.replace(tmp, playlist)
                _log(fh, segment=seg, media=round(media, 4), round=rnd)
        if end:
            tmp = out_dir / f".{name}.tmp"
            tmp.write_text(_playlist(entries, 0, True, target))
            os.replace(tmp, playlist)
    finally:
        if fh is not None:
            fh.close()
    return playlist


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m indexer.live.replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--ts", metavar="OUT.ts", help="append to this growing MPEG-TS file")
    g.add_argument("--hls", metavar="DIR", help="publish an HLS playlist (live.m3u8) and segments here")
    ap.add_argument("--speed", type=float, default=1.0, help="times real time (default 1)")
    ap.add_argument("--segment", type=float, default=2.0, help="HLS segment seconds (default 2)")
    ap.add_argument("--loop", type=int, default=0, help="HLS: publish the segments this many more times")
    ap.add_argument("--truncate", type=int, help="HLS: cut segment N short")
    ap.add_argument("--log", metavar="FILE.jsonl", help="record each write's wall and media time")
    a = ap.parse_args(argv)
    if a.speed <= 0:
        ap.error("--speed must be positive")
    if a.clip.lower().endswith(".ts"):
        ts = Path(a.clip)  # already MPEG-TS: written as it is
    else:
        ts = Path(a.ts).with_suffix(".src.ts") if a.ts else Path(a.hls) / ".src.ts"
        ts.parent.mkdir(parents=True, exist_ok=True)
        to_ts(a.clip, ts)
    if a.ts:
        write_growing(ts, a.ts, speed=a.speed, log=a.log)
    else:
        write_hls(ts, a.hls, segment=a.segment, speed=a.speed, log=a.log, loop=a.loop, truncate=a.truncate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
