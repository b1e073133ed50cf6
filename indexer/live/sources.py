"""Where a live stream comes from, and the spool that keeps our own copy of it.

A source is polled; each poll copies what arrived since the last one into the
``Spool`` (``DIR/live/<key>/``): a growing file (MPEG-TS or fragmented MP4 that a
writer appends to), a local HLS playlist (``.m3u8``; segments are taken in media
sequence order as they appear) or a folder where chunk files arrive (taken in name
order once their size has settled). Copying rather than reading the source in place
keeps the recording whole when the writer rotates, truncates or restarts its file.

The spool is one file per *epoch*: a writer restart (the file shrank or was replaced,
the media sequence went back, a chunk name was rewritten) or an HLS discontinuity
starts a new epoch, whose timestamps begin again; the runner maps each epoch onto the
video's clock after the one before. ``spool.json`` (written atomically after each
append, after an fsync of the data) holds the epochs' sizes and the source's cursor,
so a killed run resumes where the copy stopped: bytes past the recorded size (an
append cut short by the kill) are truncated away.

What a poll meets that is not plain data is returned as a ``LiveEvent``: ``restart``,
``truncated`` (a chunk shorter than announced or partly undecodable: what decodes is
kept), ``loop`` (a chunk already taken, byte for byte: a looping playlist; skipped),
``missing`` (the source is not there, or a listed segment is absent).
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_json
from engine.errors import InputError, NotFoundError

__all__ = ["LiveEvent", "Spool", "LiveSource", "GrowingFileSource", "HlsSource", "ChunkFolderSource",
           "open_source", "source_kind", "spool_dir", "decodable_seconds", "CHUNK_EXTENSIONS"]

CHUNK_EXTENSIONS = {".ts", ".m2ts", ".mts", ".m4s", ".mp4", ".m4v", ".mkv", ".webm", ".mpg", ".mpeg"}
READ_BLOCK = 8 << 20  # at most this many bytes are copied per poll (a long backlog takes several)


@dataclass(frozen=True)
class LiveEvent:
    """Something a live run reports: ``kind`` (data, stalled, resumed, restart,
    truncated, loop, missing, window, skipped, error, ended, finalised), a sentence for
    people, when, and the facts as a dict."""

    kind: str
    message: str
    at: float = field(default_factory=time.time)
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "at": round(self.at, 3), **self.data}


def spool_dir(index_dir: str | os.PathLike[str], stream: str) -> Path:
    """The folder of one stream's spool inside an index: named by its absolute path."""
    key = hashlib.sha256(os.path.abspath(stream).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(index_dir) / "live" / key


class Spool:
    """Our copy of one stream: epoch files plus ``spool.json`` (see the module doc)."""

    def __init__(self, folder: str | os.PathLike[str], stream: str, ext: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.meta_path = self.folder / "spool.json"
        if self.meta_path.is_file():
            import json

            self.meta: dict[str, Any] = json.loads(self.meta_path.read_text(encoding="utf-8"))
            for ep in self.meta["epochs"]:  # an append cut short by a kill: drop its tail
                p = self.folder / ep["file"]
                if p.exists() and p.stat().st_size > ep["bytes"]:
                    with open(p, "r+b") as f:
                        f.truncate(ep["bytes"])
        else:
            self.meta = {"stream": stream, "ext": ext, "epochs": [], "cursor": {}, "video_id": None,
                         "content_hash": None, "finalised": False, "created_at": time.time()}
            self.new_epoch()

    # -- reading -------------------------------------------------------------------------
    @property
    def epochs(self) -> list[dict]:
        return self.meta["epochs"]

    def path(self, epoch: int) -> Path:
        return self.folder / self.epochs[epoch]["file"]

    def size(self, epoch: int) -> int:
        return int(self.epochs[epoch]["bytes"])

    @property
    def total_bytes(self) -> int:
        return sum(int(e["bytes"]) for e in self.epochs)

    @property
    def cursor(self) -> dict:
        return self.meta["cursor"]

    # -- writing -------------------------------------------------------------------------
    def save(self) -> None:
        atomic_write_json(self.meta_path, self.meta)

    def new_epoch(self) -> int:
        """Start a new epoch file; its number. An empty current epoch is reused."""
        if self.epochs and self.epochs[-1]["bytes"] == 0:
            return len(self.epochs) - 1
        n = len(self.epochs)
        name = f"recording{self.meta['ext']}" if n == 0 else f"recording.{n}{self.meta['ext']}"
        self.epochs.append({"file": name, "bytes": 0})
        (self.folder / name).write_bytes(b"")
        self.save()
        return n

    def append(self, data: bytes, cursor: dict | None = None) -> None:
        """Append ``data`` to the current epoch (durably), then record it and ``cursor``."""
        ep = self.epochs[-1]
        if data:
            with open(self.folder / ep["file"], "r+b") as f:
                f.seek(ep["bytes"])
                f.write(data)
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
            ep["bytes"] += len(data)
        if cursor is not None:
            self.meta["cursor"] = cursor
        self.save()


def decodable_seconds(path: str | os.PathLike[str]) -> float:
    """How many seconds of video (else audio) packets a chunk holds, read by demuxing
    only; 0.0 when nothing can be read."""
    import av

    try:
        with av.open(str(path)) as c:
            streams = c.streams.video or c.streams.audio
            if not streams:
                return 0.0
            st = streams[0]
            lo = hi = None
            try:
                for pkt in c.demux(st):
                    if pkt.pts is None or pkt.time_base is None:
                        continue
                    t = float(pkt.pts * pkt.time_base)
                    d = float((pkt.duration or 0) * pkt.time_base)
                    lo = t if lo is None else min(lo, t)
                    hi = t + d if hi is None else max(hi, t + d)
            except (av.error.FFmpegError, ValueError):
                pass  # what came before the damage counts
            return 0.0 if lo is None else max(0.0, hi - lo)
    except (av.error.FFmpegError, ValueError, OSError):
        return 0.0


def _digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class LiveSource:
    """A polled source. ``poll(spool)`` copies what arrived and returns the events met;
    ``ended`` says the source itself announced its end (an HLS ``#EXT-X-ENDLIST``);
    otherwise the runner ends a stream after a quiet period."""

    kind = ""
    ended = False

    def __init__(self, path: str) -> None:
        self.path = path

    def poll(self, spool: Spool) -> list[LiveEvent]:
        raise NotImplementedError


class GrowingFileSource(LiveSource):
    """A file a writer appends to. A file that shrinks or is replaced (another inode)
    is a writer restart: a new epoch, read from its start."""

    kind = "file"

    def poll(self, spool: Spool) -> list[LiveEvent]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return [LiveEvent("missing", f"{self.path} is not there (yet); waiting for the writer")]
        cur = spool.cursor
        events: list[LiveEvent] = []
        pos = int(cur.get("pos", 0))
        if cur.get("inode") not in (None, st.st_ino) or st.st_size < pos:
            why = "was replaced by a new file" if cur.get("inode") != st.st_ino else \
                f"shrank from {pos} to {st.st_size} bytes"
            events.append(LiveEvent("restart", f"{self.path} {why}: the writer restarted; a new epoch begins",
                                    data={"epoch": len(spool.epochs)}))
            spool.new_epoch()
            pos = 0
        if st.st_size > pos:
            with open(self.path, "rb") as f:
                f.seek(pos)
                data = f.read(min(st.st_size - pos, READ_BLOCK))
            spool.append(data, {"inode": st.st_ino, "pos": pos + len(data)})
        elif cur.get("inode") is None:
            spool.append(b"", {"inode": st.st_ino, "pos": pos})
        return events


def _parse_m3u8(text: str, where: str) -> tuple[list[dict], bool, str | None]:
    """(segments [{seq, uri, duration, discontinuity}], ended, init map uri)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise InputError(f"{where} is not an HLS playlist (no #EXTM3U first line)",
                         hint="give a media playlist (.m3u8) that lists segments")
    if any(ln.startswith("#EXT-X-STREAM-INF") for ln in lines):
        raise InputError(f"{where} is a master playlist (it lists variant streams)",
                         hint="give one variant's media playlist instead")
    seq, out, ended, init, dur, disc = 0, [], False, None, None, False
    for ln in lines:
        if ln.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXTINF:"):
            dur = float(ln.split(":", 1)[1].split(",")[0])
        elif ln.startswith("#EXT-X-DISCONTINUITY") and not ln.startswith("#EXT-X-DISCONTINUITY-SEQUENCE"):
            disc = True
        elif ln.startswith("#EXT-X-ENDLIST"):
            ended = True
        elif ln.startswith("#EXT-X-MAP:"):
            m = re.search(r'URI="([^"]+)"', ln)
            init = m.group(1) if m else None
        elif not ln.startswith("#"):
            out.append({"seq": seq, "uri": ln, "duration": dur, "discontinuity": disc})
            seq, dur, disc = seq + 1, None, False
    return out, ended, init


class _ChunkTaker:
    """What HLS and chunk folders share: take one chunk file into the spool, checking it
    for loops (the same bytes again) and truncation."""

    def take(self, spool: Spool, path: Path, announced: float | None, cursor: dict) -> list[LiveEvent]:
        digest = _digest(path)
        seen = cursor.setdefault("seen", [])
        if digest in seen:
            spool.append(b"", cursor)
            return [LiveEvent("loop", f"{path.name} repeats a chunk already taken (the playlist loops); skipped",
                              data={"chunk": path.name})]
        events = []
        secs = decodable_seconds(path)
        if secs <= 0.0:
            seen.append(digest)
            spool.append(b"", cursor)
            return [LiveEvent("truncated", f"{path.name} holds nothing that decodes (truncated or not media);"
                                           " skipped", data={"chunk": path.name, "seconds": 0.0})]
        if announced and secs < 0.8 * announced - 0.5:
            events.append(LiveEvent("truncated", f"{path.name} holds {secs:.2f} s of the {announced:.2f} s"
                                                 " announced (truncated); what decodes is kept",
                                    data={"chunk": path.name, "seconds": round(secs, 3), "announced": announced}))
        seen.append(digest)
        data = path.read_bytes()
        if not spool.size(len(spool.epochs) - 1) and spool.meta.get("init"):
            data = Path(spool.meta["init"]).read_bytes() + data  # fMP4: each epoch starts with the init segment
        spool.append(data, cursor)
        return events


class HlsSource(_ChunkTaker, LiveSource):
    """A local HLS media playlist: segments in media-sequence order as they appear;
    ``#EXT-X-ENDLIST`` ends the stream. A media sequence that goes back to content not
    seen before is a writer restart; ``#EXT-X-DISCONTINUITY`` starts a new epoch too."""

    kind = "hls"
    # A writer that rewrites the playlist in place (ffmpeg's hls muxer without
    # ``hls_flags temp_file``) leaves it empty or cut short for a moment: an empty file is
    # waited for, and a playlist that parsed before and does not now is read again at the
    # next polls; only this many bad reads in a row fail the run.
    REWRITE_POLLS = 5

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._parsed = False
        self._bad = 0

    def poll(self, spool: Spool) -> list[LiveEvent]:
        try:
            text = Path(self.path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return [LiveEvent("missing", f"{self.path} is not there (yet); waiting for the writer")]
        if not text.strip():  # created or truncated by the writer, not written yet
            return [LiveEvent("missing", f"{self.path} is empty (being written); waiting for the writer")]
        try:
            entries, ended, init = _parse_m3u8(text, self.path)
        except InputError:
            if not self._parsed or self._bad + 1 >= self.REWRITE_POLLS:
                raise
            self._bad += 1
            return [LiveEvent("missing", f"{self.path} is being rewritten (cut short); reading it again")]
        self._parsed, self._bad = True, 0
        if init:
            spool.meta["init"] = str(Path(self.path).parent / init)
        cur = dict(spool.cursor)
        last = int(cur.get("seq", -1))
        events: list[LiveEvent] = []
        base = Path(self.path).parent
        if entries and entries[-1]["seq"] < last:
            first = base / entries[0]["uri"]
            if first.is_file() and _digest(first) not in cur.get("seen", []):
                events.append(LiveEvent("restart", f"{self.path}: the media sequence went back from {last} to"
                                                   f" {entries[0]['seq']}: the writer restarted; a new epoch begins",
                                        data={"epoch": len(spool.epochs)}))
                spool.new_epoch()
                last = entries[0]["seq"] - 1
        for e in entries:
            if e["seq"] <= last:
                continue
            p = base / e["uri"]
            if not p.is_file():
                events.append(LiveEvent("missing", f"segment {e['uri']} is listed in {self.path} but absent;"
                                                   " waiting for it"))
                break
            if e["discontinuity"] and spool.size(len(spool.epochs) - 1):
                spool.new_epoch()
            cur["seq"] = e["seq"]
            events += self.take(spool, p, e["duration"], cur)
            last = e["seq"]
        self.ended = ended and (not entries or last >= entries[-1]["seq"])
        if cur != spool.cursor:
            spool.append(b"", cur)
        return events


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


class ChunkFolderSource(_ChunkTaker, LiveSource):
    """A folder where chunk files arrive, taken in natural name order. A chunk is taken
    once a later one exists or its size has not changed for ``settle`` seconds. A name
    taken before that comes back with other bytes is a writer restart. ``init.mp4``
    (an fMP4 initialisation segment) is put before the first chunk of each epoch."""

    kind = "folder"

    def __init__(self, path: str, settle: float = 1.0) -> None:
        super().__init__(path)
        self.settle = settle
        self._sizes: dict[str, tuple[int, float]] = {}

    def poll(self, spool: Spool) -> list[LiveEvent]:
        folder = Path(self.path)
        if not folder.is_dir():
            return [LiveEvent("missing", f"{self.path} is not a folder (any more)")]
        init = folder / "init.mp4"
        if init.is_file():
            spool.meta["init"] = str(init)
        names = sorted((p.name for p in folder.iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.name != "init.mp4"
                        and p.suffix.lower() in CHUNK_EXTENSIONS), key=_natural)
        cur = dict(spool.cursor)
        taken: dict[str, int] = dict(cur.get("taken", {}))  # name -> size when taken
        events: list[LiveEvent] = []
        now = time.monotonic()
        for i, name in enumerate(names):
            p = folder / name
            size = p.stat().st_size
            if name in taken:
                if size != taken[name] and size > 0 and _digest(p) not in cur.get("seen", []):
                    self._sizes.pop(name, None)
                    if not self._settled(name, size, now) and i == len(names) - 1:
                        break
                    events.append(LiveEvent("restart", f"{name} was written again with other bytes: the writer"
                                                       " restarted; a new epoch begins",
                                            data={"epoch": len(spool.epochs)}))
                    spool.new_epoch()
                    taken = {}
                else:
                    continue
            if i == len(names) - 1 and not self._settled(name, size, now):
                break  # the newest chunk may still be being written
            taken[name] = size
            cur["taken"] = taken
            events += self.take(spool, p, None, cur)
        return events

    def _settled(self, name: str, size: int, now: float) -> bool:
        prev = self._sizes.get(name)
        if prev is None or prev[0] != size:
            self._sizes[name] = (size, now)
            return False
        return now - prev[1] >= self.settle


def source_kind(path: str) -> str:
    """``hls``, ``folder`` or ``file`` for a SOURCE argument."""
    if os.path.isdir(path):
        return "folder"
    if path.lower().endswith((".m3u8", ".m3u")):
        return "hls"
    return "file"


def open_source(path: str, *, settle: float = 1.0) -> tuple[LiveSource, str]:
    """The source object for SOURCE and the extension of its spool files."""
    kind = source_kind(path)
    if kind == "folder":
        fmp4 = os.path.exists(os.path.join(path, "init.mp4"))
        return ChunkFolderSource(path, settle=settle), ".mp4" if fmp4 else ".ts"
    if kind == "hls":
        if not os.path.exists(path) and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise NotFoundError(f"{path}: neither the playlist nor its folder exists",
                                hint="start the writer first, or check the path")
        return HlsSource(path), ".ts"
    ext = os.path.splitext(path)[1].lower()
    if ext not in {".ts", ".m2ts", ".mts", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".flv"}:
        raise InputError(f"{path}: a growing file must be MPEG-TS, fragmented MP4, Matroska or MPEG-PS"
                         f" (got {ext or 'no extension'})", hint="name it .ts or .mp4, or give an .m3u8 playlist")
    return GrowingFileSource(path), ext
