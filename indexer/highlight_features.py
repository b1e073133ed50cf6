"""Media features for highlight reels: loudness, onsets and excitement peaks, motion, frame quality.

The scoring and selection live in :mod:`query.highlights` and take these features
as plain time series; this module only measures, from the file:

``loudness``
    RMS level in dBFS over 0.1 s windows of the first audio track (mono, 16 kHz).
``onsets``
    Onset strength (spectral flux: the summed rise of the log-magnitude spectrum
    from one 10 ms frame to the next), max-pooled to the same 0.1 s windows. Claps,
    shouts, hits and cheers rise fast; steady music or hum does not.
``peaks``
    Excitement peaks: times where the onset strength is a local maximum (within
    +-0.3 s) more than 1.5 standard deviations over its mean *and* the level around
    it (+-0.3 s) is above the video's median loudness.
``motion``
    Mean absolute luma difference between consecutive frames sampled 4 times a
    second at 64 px (0 = still, 1 = every pixel flips), median-filtered over three
    samples so that a single hard cut does not count as motion.
``quality``
    :func:`indexer.covers.quality.assess_frame` score (0 for a rejected frame: black,
    blurred, a transition...) of frames at the times asked for.

Costs on 2 cores: audio decode and the STFT run at hundreds of times real time;
the motion pass decodes 4 small frames a second (``media.sample_frames``); quality
is a few ms a frame. A video without audio gets no audio tracks (None), not zeros.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.errors import InputError
from indexer import media

__all__ = ["FeatureTrack", "MediaFeatures", "extract_features", "audio_tracks", "motion_track", "quality_track"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]

AUDIO_SR = 16000
WINDOW_S = 0.1  # loudness / onset resolution
_N_FFT = 512
_HOP = 160  # 10 ms at 16 kHz
_BLOCK_FRAMES = 6000  # STFT frames per block (60 s): bounded memory on long files
_PEAK_SPAN_S = 0.3
_PEAK_SIGMA = 1.5
MOTION_FPS = 4.0
MOTION_SIDE = 64
QUALITY_SIDE = 320


@dataclass(frozen=True)
class FeatureTrack:
    """A time series: ``values[i]`` measured at ``times[i]`` seconds (ascending)."""

    times: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.times.shape != self.values.shape or self.times.ndim != 1:
            raise InputError(f"a track needs 1-d times and values of one length, got {self.times.shape} and"
                             f" {self.values.shape}")


@dataclass(frozen=True)
class MediaFeatures:
    """Everything :func:`extract_features` measured for one video (see the module docstring)."""

    duration: float
    loudness: FeatureTrack | None
    onsets: FeatureTrack | None
    peaks: tuple[float, ...]
    motion: FeatureTrack | None
    quality: FeatureTrack | None


def _windows(x: np.ndarray, size: int) -> np.ndarray:
    n = len(x) // size
    return x[: n * size].reshape(n, size)


def audio_tracks(samples: np.ndarray, sr: int = AUDIO_SR) -> tuple[FeatureTrack, FeatureTrack, tuple[float, ...]]:
    """(loudness dBFS, onset strength, peak times) of mono float samples at ``sr``."""
    if samples.ndim != 1:
        raise InputError(f"audio must be mono (1-d), got shape {samples.shape}")
    win = int(round(WINDOW_S * sr))
    if len(samples) < win:
        samples = np.pad(samples, (0, win - len(samples)))
    w = _windows(samples.astype(np.float32, copy=False), win)
    rms = np.sqrt(np.mean(np.square(w, dtype=np.float64), axis=1))
    loud = 20.0 * np.log10(np.maximum(rms, 1e-5))  # -100 dBFS floor: digital silence
    times = (np.arange(len(loud)) + 0.5) * WINDOW_S

    # Spectral flux, in blocks so that a long file never needs one huge STFT matrix.
    hop = _HOP * sr // AUDIO_SR
    n_fft = _N_FFT * sr // AUDIO_SR
    window = np.hanning(n_fft).astype(np.float32)
    n_frames = max(0, 1 + (len(samples) - n_fft) // hop)
    flux = np.zeros(n_frames, dtype=np.float32)
    prev: np.ndarray | None = None
    for b0 in range(0, n_frames, _BLOCK_FRAMES):
        b1 = min(n_frames, b0 + _BLOCK_FRAMES)
        idx = np.arange(b0, b1)[:, None] * hop + np.arange(n_fft)[None, :]
        mag = np.log1p(100.0 * np.abs(np.fft.rfft(samples[idx] * window, axis=1)))
        d = np.diff(mag, axis=0, prepend=mag[:1] if prev is None else prev[None, :])
        flux[b0:b1] = np.maximum(d, 0.0).sum(axis=1)
        prev = mag[-1]
    # Each STFT frame counts at its centre, max-pooled into the 0.1 s windows.
    onset = np.zeros(len(loud), dtype=np.float32)
    if n_frames:
        bins = np.minimum((np.arange(n_frames) * hop + n_fft // 2) // win, len(onset) - 1)
        np.maximum.at(onset, bins, flux)

    peaks: list[float] = []
    if len(onset) > 2 and float(onset.std()) > 0:
        thr = float(onset.mean() + _PEAK_SIGMA * onset.std())
        median_loud = float(np.median(loud))
        span = max(1, int(round(_PEAK_SPAN_S / WINDOW_S)))
        for i in np.flatnonzero(onset > thr):
            lo, hi = max(0, i - span), min(len(onset), i + span + 1)
            # The level is read around the onset: an attack at the end of one window
            # sounds in the next.
            if onset[i] >= onset[lo:hi].max() and loud[lo:hi].max() > median_loud:
                if not peaks or times[i] - peaks[-1] > _PEAK_SPAN_S:
                    peaks.append(float(times[i]))
    return (FeatureTrack(times, loud.astype(np.float32)), FeatureTrack(times.copy(), onset), tuple(peaks))


def motion_track(path: str | os.PathLike[str], fps: float = MOTION_FPS) -> FeatureTrack:
    """Mean absolute luma difference of consecutive small frames, ``fps`` a second."""
    times: list[float] = []
    diffs: list[float] = []
    prev: np.ndarray | None = None
    for t, frame in media.sample_frames(path, fps=fps, max_side=MOTION_SIDE, gray=True):
        f = frame.astype(np.int16)
        if prev is not None and prev.shape == f.shape:
            diffs.append(float(np.abs(f - prev).mean()) / 255.0)
            times.append(t)
        prev = f
    if not diffs:  # a one-frame video: no motion at all
        return FeatureTrack(np.zeros(1), np.zeros(1))
    v = np.asarray(diffs, dtype=np.float32)
    if len(v) >= 3:
        # A cut is one big difference between two samples: the median of three drops it.
        padded = np.pad(v, 1, mode="edge")
        v = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0).astype(np.float32)
    return FeatureTrack(np.asarray(times), v)


def quality_track(path: str | os.PathLike[str], times: Sequence[float]) -> FeatureTrack | None:
    """Cover-quality score (0 when rejected) of the frames on screen at ``times``."""
    from indexer.covers.quality import assess_frame

    ts = sorted({round(float(t), 3) for t in times})
    if not ts:
        return None
    out_t: list[float] = []
    out_v: list[float] = []
    for t, rgb in media.frames_at(path, ts, size=QUALITY_SIDE):
        a = assess_frame(rgb, faces=False, nsfw=False)
        out_t.append(t)
        out_v.append(0.0 if a.reject else float(a.score))
    order = np.argsort(out_t, kind="stable")
    return FeatureTrack(np.asarray(out_t)[order], np.asarray(out_v, dtype=np.float32)[order])


def extract_features(
    path: str | os.PathLike[str],
    *,
    quality_times: Sequence[float] = (),
    motion_fps: float = MOTION_FPS,
    progress: ProgressFn | None = None,
) -> MediaFeatures:
    """Measure every highlight feature of one video (see the module docstring).

    Raises NotFoundError/MediaError for a file that is not a readable video.
    """
    say = progress or (lambda stage, frac: None)
    info = media.probe(path)
    say("audio", 0.0)
    loud = onsets = None
    peaks: tuple[float, ...] = ()
    if info.has_audio:
        loud, onsets, peaks = audio_tracks(media.load_audio(path, sr=AUDIO_SR), AUDIO_SR)
    say("motion", 0.3)
    motion = motion_track(path, fps=motion_fps)
    say("quality", 0.8)
    quality = quality_track(path, quality_times) if quality_times else None
    say("features", 1.0)
    return MediaFeatures(float(info.duration), loud, onsets, peaks, motion, quality)
