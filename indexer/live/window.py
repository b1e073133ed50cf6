"""One window of a live stream: cut it from the spool, run the mapper's stages over it,
and keep the part that is final.

``cut_window`` decodes ``[start, start + length)`` of an epoch file into a lossless
clip (H.264 ``-qp 0``, PCM audio: the stages see the same pixels and samples as in
the source) plus the window's audio from ``preroll`` seconds earlier as a 16 kHz WAV.
``analyse_window`` runs the usual stages on the clip (``indexer.mapper.analyse_file``)
with two swapped in: ``WindowAudioStage`` reads the pre-rolled WAV and
``WindowSpeechStage`` reconciles the words at the seam (see below). The result is
shifted onto the video's clock and cut where it is final:

- **Held back.** The last segment of a window ends where the data ends, not at a cut;
  unless the stream has ended it is dropped and analysed again, whole, with the next
  window, so segments end at real cuts (or at ``segment_max`` splits) as in a
  whole-file ingest. A window's last ``guard`` seconds are never final (a partly
  written packet).
- **Speech at the seams.** The audio starts ``preroll`` seconds before the window, so
  a word spoken across the seam is heard whole. The window's words are aligned on the
  last committed ones by their text (``_aligned``: the longest run of at least two
  words that repeats the committed tail, ending within 1 s of it), and only the words
  after it are new. Where no such run is found, words whose middle lies before the end
  of the last committed word are dropped (they were committed with the window before;
  a fragment of such a word has its middle there too), as is a first word repeating
  the last committed one within 0.3 s. Words ending within ``speech_guard`` of the
  data's end are not committed (Whisper sees no right context for them); the next
  window hears them again.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from engine.catalog import NewVideo, TimelineUnit
from engine.config import IndexConfig
from engine.errors import MediaError
from indexer.options import IndexOptions
from indexer.stages import build_stages
from indexer.stages.base import Stage, Work
from indexer.stages.speech import AudioStage, SpeechStage

__all__ = ["WindowClip", "SeamState", "WindowResult", "cut_window", "analyse_window", "WindowAudioStage",
           "WindowSpeechStage", "reconcile_words"]

REPEAT_WINDOW = 0.3  # s: a first word equal to the last committed one and starting this close is a repeat
TAIL_WORDS = 6  # committed words the next window's words are aligned on
ALIGN_SLACK = 1.0  # s: an alignment's last word ends this close to the last committed word's end


@dataclass(frozen=True)
class WindowClip:
    """A window cut from the spool: the clip, its length, the pre-rolled audio (or None
    when the stream has no audio) and how far before the clip that audio starts."""

    path: Path
    duration: float
    wav: Path | None
    preroll: float


@dataclass(frozen=True)
class SeamState:
    """What the seam reconciliation needs from the windows before, in the clip's time:
    the end of the last committed word and its text, and the language detected first."""

    word_end: float = float("-inf")
    last_word: str = ""
    # the last committed words, (start, end, word), to align the next window's words on
    tail: tuple = ()
    language: str | None = None


@dataclass
class WindowResult:
    """A window's final part on the video's clock: the ``NewVideo`` part to commit (its
    segments' ``shot_index`` into its own ``shots``), where the final part ends, the
    new seam state, and facts for reports."""

    part: NewVideo
    end: float  # video time up to which this window is committed
    clip_end: float  # video time up to which the window had data
    word_end: float
    last_word: str
    language: str | None
    words: int
    stages: dict
    tail: tuple = ()


def _ffmpeg(args: Sequence[str]) -> None:
    proc = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise MediaError(f"ffmpeg could not cut a window: {proc.stderr.strip()[-400:]}",
                         hint="the stream's data may be damaged here; the window is retried with more data")


def _has_audio(path: Path) -> bool:
    import av

    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except (av.error.FFmpegError, ValueError):
        return False


def cut_window(spool_file: Path, start: float, length: float, out_dir: Path, *, preroll: float) -> WindowClip | None:
    """Decode ``[start, start + length)`` of ``spool_file`` (seconds from its start) into
    ``out_dir/window.mkv`` and, when it has sound, ``out_dir/window.wav`` from
    ``start - preroll``. None when nothing of the window is there yet."""
    from indexer import media

    out_dir.mkdir(parents=True, exist_ok=True)
    clip, wav = out_dir / "window.mkv", out_dir / "window.wav"
    for p in (clip, wav):
        p.unlink(missing_ok=True)
    sound = _has_audio(spool_file)
    pre = min(preroll, start) if sound else 0.0
    args = ["-ss", f"{start:.6f}", "-i", str(spool_file)]
    if sound:
        args += ["-ss", f"{start - pre:.6f}", "-i", str(spool_file)]
    args += ["-t", f"{length:.6f}", "-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264", "-preset", "ultrafast",
             "-qp", "0", "-threads", "1", "-c:a", "pcm_s16le", "-f", "matroska", str(clip)]
    if sound:
        args += ["-t", f"{length + pre:.6f}", "-map", "1:a:0", "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
                 str(wav)]
    try:
        _ffmpeg(args)
    except MediaError:
        if not clip.exists() or clip.stat().st_size == 0:
            return None
        raise
    if not clip.exists() or clip.stat().st_size < 1024:
        return None
    try:
        info = media.probe(clip)
    except Exception:  # no frame decoded yet: nothing of the window is there
        return None
    return WindowClip(clip, float(info.duration), wav if sound and wav.exists() else None, pre)


class WindowAudioStage(AudioStage):
    """The audio stage of a window: the pre-rolled WAV that ``cut_window`` wrote."""

    def __init__(self, clip: WindowClip) -> None:
        self.clip = clip

    def applies(self, work: Work) -> bool:
        return self.clip.wav is not None

    def run(self, work: Work) -> None:
        from indexer import media

        work.audio = media.load_audio(self.clip.wav, sr=16000)


def _norm(w: str) -> str:
    return "".join(c for c in w.lower() if c.isalnum())


def _aligned(words: Sequence[tuple[float, float, str]], seam: SeamState) -> int | None:
    """Where the new words continue the committed ones: the index after the longest run
    (at least 2 words) of the new words that repeats the end of the committed tail,
    ending within ALIGN_SLACK of the last committed word. Whisper times a word again a
    little differently with other context, so a word at the seam can have its middle on
    the other side of the last committed word's end; the text alignment keeps it."""
    tail = [_norm(w[2]) for w in seam.tail]
    new = [_norm(w[2]) for w in words]
    last_end = float(seam.tail[-1][1]) if seam.tail else seam.word_end
    for k in range(len(tail), 1, -1):
        suffix = tail[-k:]
        for i in range(0, len(new) - k + 1):
            if words[i][0] > last_end + ALIGN_SLACK:
                break
            if new[i:i + k] == suffix and abs(float(words[i + k - 1][1]) - last_end) <= ALIGN_SLACK:
                return i + k
    return None


def reconcile_words(words: Sequence[tuple[float, float, str]], seam: SeamState, *, data_end: float | None,
                    speech_guard: float) -> list[tuple[float, float, str]]:
    """The words of a window (clip time, pre-roll negative) that are new and, when
    ``data_end`` is given (the stream goes on), end ``speech_guard`` before it. New:
    after the place where the window's words repeat the last committed ones (``_aligned``);
    where they do not, those whose middle is after ``seam.word_end`` and that do not
    repeat ``seam.last_word`` within REPEAT_WINDOW."""
    at = _aligned(words, seam) if len(seam.tail) >= 2 else None
    out = []
    for i, (s, e, w) in enumerate(words):
        if at is not None:
            if i < at:
                continue
        elif 0.5 * (s + e) < seam.word_end:
            continue
        elif not out and seam.last_word and w.strip().lower() == seam.last_word.strip().lower() \
                and s < seam.word_end + REPEAT_WINDOW:
            continue
        if data_end is not None and e > data_end - speech_guard:
            break  # later words wait for the next window, which hears them with context
        out.append((s, e, w))
    return out


class WindowSpeechStage(SpeechStage):
    """The speech stage of a window: transcribe the pre-rolled audio, keep the new words
    (``reconcile_words``) and give each segment those whose middle falls in it (the
    first segment also takes the pre-roll's)."""

    def __init__(self, clip: WindowClip, seam: SeamState, *, final: bool, speech_guard: float) -> None:
        self.clip, self.seam, self.final, self.speech_guard = clip, seam, final, speech_guard
        self.kept: list[tuple[float, float, str]] = []

    def run(self, work: Work) -> None:
        from indexer import speech

        tr = speech.transcribe(work.audio, model=work.options.speech_model,
                               language=work.options.language or self.seam.language)
        work.language, work.language_prob = tr.language, tr.language_probability
        pre = self.clip.preroll
        words = [(w.start - pre, w.end - pre, w.word) for w in tr.words]
        self.kept = reconcile_words(words, self.seam, data_end=None if self.final else self.clip.duration,
                                    speech_guard=self.speech_guard)
        bounds = [s.start for s in work.segments[1:]]
        per: list[list] = [[] for _ in work.segments]
        for s, e, w in self.kept:
            mid = 0.5 * (s + e)
            i = sum(1 for b in bounds if mid >= b)
            if i < len(per):
                per[i].append([round(s, 3), round(e, 3), w])
        work.words = per
        work.transcripts = ["".join(x[2] for x in ws).strip() for ws in per]


def window_stages(options: IndexOptions, clip: WindowClip, seam: SeamState, *, final: bool,
                  speech_guard: float, extra: Sequence[Stage] = ()) -> list[Stage]:
    """``build_stages(options)`` with the window's audio and speech stages swapped in."""
    out: list[Stage] = []
    for st in build_stages(options, extra):
        if isinstance(st, SpeechStage):
            st = WindowSpeechStage(clip, seam, final=final, speech_guard=speech_guard)
        elif isinstance(st, AudioStage):
            st = WindowAudioStage(clip)
        out.append(st)
    return out


def _shift_words(words: list, dt: float) -> list:
    return [[round(float(s) + dt, 3), round(float(e) + dt, 3), w] for s, e, w in words]


def _cut(video: NewVideo, keep_until: float, offset: float) -> tuple[NewVideo, float]:
    """The segments of ``video`` (clip time) that end by ``keep_until``, shifted by
    ``offset``; their shots clipped to the last kept segment's end; the timeline units
    that start before it. Returns (part, clip time where the part ends)."""
    segs = [s for s in video.segments if s.end <= keep_until + 1e-6]
    end = segs[-1].end if segs else 0.0
    shot_map: dict[int, int] = {}
    shots: list[tuple[float, float]] = []
    for s in segs:
        if s.shot_index not in shot_map and 0 <= s.shot_index < len(video.shots):
            a, b = video.shots[s.shot_index]
            shot_map[s.shot_index] = len(shots)
            shots.append((a + offset, min(b, end) + offset))
    out_segs = [
        dataclasses.replace(
            s, start=s.start + offset, end=s.end + offset, shot_index=shot_map.get(s.shot_index, -1),
            words=_shift_words(s.words, offset),
            keyframes=[(t + offset, labels, vec) for t, labels, vec in s.keyframes],
        )
        for s in segs
    ]
    timeline = [TimelineUnit(u.kind, u.start + offset, min(u.end, end) + offset, u.text, u.vector)
                for u in video.timeline if u.start < end]
    stats = dict(video.stats)
    stats["cuts"] = [round(c + offset, 3) for c in stats.get("cuts", []) if c < end]
    return dataclasses.replace(video, segments=out_segs, shots=shots, timeline=timeline, stats=stats,
                               duration=end + offset), end


def analyse_window(clip: WindowClip, offset: float, seam_video: SeamState, config: IndexConfig,
                   options: IndexOptions, *, final: bool, guard: float, speech_guard: float, full: bool = False,
                   extra: Sequence[Stage] = ()) -> WindowResult | None:
    """Analyse a cut window whose clip time 0 is video time ``offset``; its final part,
    or None when no segment of it is final yet (too little data: wait for more).
    ``seam_video``: the seam state in video time. ``final``: the stream has ended
    within this window, so everything is kept. ``full``: the window was cut at its
    longest (the data goes on), so it must commit something. Exceptions propagate (the
    runner retries)."""
    from indexer.mapper import analyse_file

    seam = SeamState(word_end=seam_video.word_end - offset, last_word=seam_video.last_word,
                     language=seam_video.language,
                     tail=tuple((float(a) - offset, float(b) - offset, w) for a, b, w in seam_video.tail))
    stages = window_stages(dataclasses.replace(options, graph=False), clip, seam, final=final,
                           speech_guard=speech_guard, extra=extra)
    analysis = analyse_file(str(clip.path), f"live-window@{offset:.3f}", config,
                            dataclasses.replace(options, graph=False), stages=stages, catch=False)
    video = analysis.video
    keep_until = video.duration if final else video.duration - guard
    if not final:  # hold back the last segment: it ends where the data ends, not at a cut
        keep_until = min(keep_until, video.segments[-1].start if video.segments else 0.0)
    part, end = _cut(video, keep_until, offset)
    if not part.segments and full:
        # a full-length window that is one segment (a long shot): waiting for more data
        # cannot help, since the next window starts at the same point and is as long;
        # cut it at the window's end (the data goes on beyond it, so no guard is needed)
        part, end = _cut(video, video.duration, offset)
    if not part.segments:
        return None
    words = [w for s in part.segments for w in s.words]
    word_end = max([seam_video.word_end] + [float(w[1]) for w in words])
    last_word = str(words[-1][2]) if words else seam_video.last_word
    tail = tuple((list(seam_video.tail) + [tuple(w) for w in words])[-TAIL_WORDS:])
    kept = len(words)
    language = seam_video.language or (video.language if kept else None)
    part.stats["has_speech"] = any(s.transcript.strip() for s in part.segments)
    part.stats["has_text"] = any(s.ocr_text.strip() for s in part.segments)
    return WindowResult(part, end + offset, clip.duration + offset, word_end, last_word, language, kept,
                        dict(video.stats.get("stages", {})), tail)


def cleanup(clip: WindowClip | None) -> None:
    if clip is None:
        return
    for p in (clip.path, clip.wav):
        if p is not None:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
