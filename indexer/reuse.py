"""Reused-footage detection: near-duplicate time ranges across the library.

**Fingerprint.** Frames sampled at 2 fps (gray, small), flat frames (black, a still
colour) dropped since they match anything. Each frame gets a 64-bit pHash (DCT of the
32x32 thumbnail, low 8x8 frequencies against their median) of the whole frame and of
centred crops at 85% and 70% of its size. pHash survives re-encoding, rescaling and
container changes as is; the crop variants cover a copy that was cropped (its whole
frame is the original's centre) or letterboxed/zoomed out (the other way round).

**Match.** Two frames match when the Hamming distance of their closest variant pair
(whole vs any crop, either way) is at most ``frame_threshold`` bits. The matches of
two videos vote in a Hough space of (playback rate, offset): for each rate of a grid
(0.5x .. 2x, for speed changes) every match votes for the offset ``t_b - rate*t_a``,
each A frame's vote split over its matches in B, so a static scene that matches
everything spreads its votes instead of making a peak. The best line's inliers are
cut into runs (gaps over ``max_gap`` seconds split them); each long enough run is a
reused range in both videos. The search repeats on the left-over matches for a video
that reuses several pieces.

**Embeddings.** When both videos have keyframe embeddings in the catalog (the
visual encoder's vectors), a match must also agree there: the mean best cosine of
keyframes inside the two ranges must reach ``min_embedding_cos``; it also enters the
confidence. This removes look-alike frames of unrelated content (two dark scenes).

**Shared decoding.** The indexer samples every video at 4 fps and 160 px for its
cut detector anyway; a :class:`FingerprintTap` on that stream keeps the frames a
2 fps sampling would pick and fingerprints them, and the indexer stores the result
with the video. :func:`update_reuse` then uses the stored fingerprint instead of
decoding the file a second time (about 0.2 CPU seconds a video on 2 cores, a tenth
of ingest's CPU after the other stages were sped up).

Measured on iscc-samples and shared/media copies: benchmarks/bench_reuse.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from engine.catalog import Catalog, VideoRecord
from engine.errors import InputError
from engine.graph.store import GraphStore, NewEdge, VideoRef

__all__ = [
    "ReuseOptions",
    "ReuseMatch",
    "ALGO",
    "phash",
    "frame_hashes",
    "fingerprint_frames",
    "fingerprint_video",
    "FingerprintTap",
    "match_fingerprints",
    "update_reuse",
]

ALGO = "phash64-crops@v1"


@dataclass(frozen=True)
class ReuseOptions:
    """Fingerprint and matching settings (defaults measured by benchmarks/bench_reuse.py)."""

    fps: float = 2.0
    max_side: int = 160
    crops: tuple[float, ...] = (1.0, 0.85, 0.7)
    flat_std: float = 8.0  # gray-level std under which a frame carries no pattern
    frame_threshold: int = 12  # Hamming bits (of 64) for two frames to match
    rates: tuple[float, ...] = (0.5, 0.667, 0.75, 0.8, 0.9, 1.0, 1.111, 1.25, 1.333, 1.5, 2.0)
    offset_bin: float = 0.5  # seconds
    inlier_tol: float = 0.75  # seconds from the line
    max_gap: float = 4.0  # seconds without a match that split a run
    min_frames: int = 4  # distinct matched frames in a run
    min_seconds: float = 1.5
    min_votes: float = 1.5  # Hough votes (ambiguous matches count fractionally)
    max_ranges: int = 5  # reused pieces reported per video pair
    min_embedding_cos: float = 0.6

    def __post_init__(self) -> None:
        if self.fps <= 0 or not self.crops or self.crops[0] != 1.0:
            raise InputError("ReuseOptions needs fps > 0 and crops starting with 1.0 (the whole frame)")


@dataclass(frozen=True)
class ReuseMatch:
    """One reused range: ``a_range`` in video A, ``b_range`` in video B (seconds),
    ``rate`` = B's playback speed relative to A's inverse (t_b = rate * t_a + offset)."""

    a_range: tuple[float, float]
    b_range: tuple[float, float]
    rate: float
    offset: float
    frames: int
    mean_distance: float
    confidence: float
    embedding_cos: float | None = None


# -- hashing -----------------------------------------------------------------------------------
def phash(gray: np.ndarray) -> int:
    """64-bit perceptual hash of a gray image (any size >= 8x8)."""
    import cv2

    if gray.ndim != 2 or min(gray.shape) < 8:
        raise InputError(f"phash needs a 2-D gray image of at least 8x8, got shape {gray.shape}")
    small = cv2.resize(gray.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].flatten()
    med = np.median(low[1:])  # the DC term is the mean brightness: leave it out of the threshold
    bits = low > med
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def _crop(gray: np.ndarray, frac: float) -> np.ndarray:
    if frac >= 1.0:
        return gray
    h, w = gray.shape
    ch, cw = max(8, int(round(h * frac))), max(8, int(round(w * frac)))
    y, x = (h - ch) // 2, (w - cw) // 2
    return gray[y : y + ch, x : x + cw]


def frame_hashes(gray: np.ndarray, crops: Sequence[float] = (1.0, 0.85, 0.7)) -> np.ndarray:
    """pHash of the frame and of its centred crops: uint64 (len(crops),)."""
    return np.array([phash(_crop(gray, f)) for f in crops], dtype=np.uint64)


def fingerprint_frames(frames, options: ReuseOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(times float32 (n,), hashes uint64 (n, crops)) from (t, gray or rgb frame) pairs;
    flat frames are left out."""
    opts = options or ReuseOptions()
    times, rows = [], []
    for t, img in frames:
        g = img if img.ndim == 2 else (img[..., :3] @ np.array([0.299, 0.587, 0.114])).astype(np.float32)
        g = _trim_borders(g.astype(np.float32))
        if g.std() < opts.flat_std or min(g.shape) < 16:
            continue
        times.append(float(t))
        rows.append(frame_hashes(g, opts.crops))
    if not rows:
        return np.zeros(0, np.float32), np.zeros((0, len(opts.crops)), np.uint64)
    return np.asarray(times, np.float32), np.stack(rows)


def _trim_borders(g: np.ndarray, level: float = 16.0) -> np.ndarray:
    """Drop black bars (letterbox, pillarbox): rows/columns whose mean is near black
    at the edges. A padded copy then hashes like the original."""
    rows = np.where(g.mean(axis=1) > level)[0]
    cols = np.where(g.mean(axis=0) > level)[0]
    if len(rows) < 8 or len(cols) < 8:
        return g
    return g[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fingerprint_video(path: str, options: ReuseOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``path`` at ``options.fps`` (gray, small) and fingerprint it."""
    from indexer.media import sample_frames

    opts = options or ReuseOptions()
    return fingerprint_frames(sample_frames(path, fps=opts.fps, max_side=opts.max_side, gray=True), opts)


_TIME_EPS = 1e-6  # as indexer.media's sampler: a frame within this of a wanted time is on it


class FingerprintTap:
    """Fingerprint a video from frames another stage samples anyway.

    Wrap the ``(t, rgb)`` stream of ``indexer.media.sample_frames(path, fps=F,
    max_side=options.max_side)`` with :meth:`tap` (frames pass through unchanged);
    once it is consumed, :meth:`result` is the fingerprint. ``F`` must be a whole
    multiple of ``options.fps`` (:meth:`fits`): the tap then keeps, for each multiple
    of ``1/options.fps``, the first frame at or after it, which is the frame that
    sampling at ``options.fps`` picks itself. The gray picture is computed from RGB
    (``fingerprint_frames``), not taken from the decoder's luma plane: they differ
    by about half a grey level, which flips bits of low-contrast frames, so a
    library should be fingerprinted one way (the indexer always taps).
    """

    def __init__(self, options: ReuseOptions | None = None) -> None:
        self.options = options or ReuseOptions()
        self._frames: list[tuple[float, np.ndarray]] = []
        self._done = False

    @staticmethod
    def fits(sample_fps: float, max_side: int, options: ReuseOptions | None = None) -> bool:
        """Whether samples at ``sample_fps`` and ``max_side`` can feed a tap."""
        opts = options or ReuseOptions()
        ratio = sample_fps / opts.fps
        return max_side == opts.max_side and ratio >= 1.0 and abs(ratio - round(ratio)) < 1e-9

    def tap(self, samples: Iterable[tuple[float, np.ndarray]]) -> Iterator[tuple[float, np.ndarray]]:
        """Yield ``samples`` unchanged, keeping the ones a ``options.fps`` sampling picks."""
        interval = 1.0 / self.options.fps
        k = 0
        for t, frame in samples:
            if t + _TIME_EPS >= k * interval:
                # Flat frames are dropped later, by fingerprint_frames; hashing waits
                # until the stream ends so a failed decode costs nothing extra.
                self._frames.append((float(t), frame))
                while k * interval <= t + _TIME_EPS:
                    k += 1
            yield t, frame
        self._done = True

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, hashes) as :func:`fingerprint_frames` gives them. Raises InputError
        before the tapped stream has been consumed to its end."""
        if not self._done:
            raise InputError("FingerprintTap.result() called before the tapped samples were consumed",
                             hint="iterate tap(samples) to its end first")
        out = fingerprint_frames(self._frames, self.options)
        self._frames = []
        return out


# -- matching ------------------------------------------------------------------------------------
def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) Hamming distance of the closest variant pair, one side always the whole frame."""
    x1 = np.bitwise_count(a[:, None, :1] ^ b[None, :, :]).min(axis=2)
    x2 = np.bitwise_count(a[:, None, :] ^ b[None, :, :1]).min(axis=2)
    return np.minimum(x1, x2).astype(np.int16)


def match_fingerprints(ta: np.ndarray, ha: np.ndarray, tb: np.ndarray, hb: np.ndarray,
                       options: ReuseOptions | None = None) -> list[ReuseMatch]:
    """Reused ranges between two fingerprints, best first."""
    opts = options or ReuseOptions()
    if len(ta) == 0 or len(tb) == 0:
        return []
    d = _distances(ha, hb)
    ii, jj = np.nonzero(d <= opts.frame_threshold)
    if len(ii) < opts.min_frames:
        return []
    dist = d[ii, jj].astype(np.float32)
    # Each A frame's vote is split over its matches (and each B frame's likewise):
    # a static shot matching everything cannot outvote a true alignment.
    na = np.bincount(ii, minlength=len(ta))[ii]
    nb = np.bincount(jj, minlength=len(tb))[jj]
    # Closer frames vote more: an exact copy's diagonal outweighs look-alike neighbours.
    closeness = (opts.frame_threshold + 1.0 - dist) / (opts.frame_threshold + 1.0)
    vote = closeness / np.sqrt(na * nb)
    alive = np.ones(len(ii), bool)
    out: list[ReuseMatch] = []
    for _ in range(opts.max_ranges):
        best = _best_alignment(ta, tb, ii[alive], jj[alive], vote[alive], opts)
        if best is None or best[0] < opts.min_votes:
            break
        _, rate, offset = best
        idx = np.nonzero(alive)[0]
        resid = np.abs(tb[jj[idx]] - (rate * ta[ii[idx]] + offset))
        inl = idx[resid <= opts.inlier_tol]
        if len(inl) == 0:
            break
        alive[inl] = False
        # Refine the offset on the inliers (median is robust to a stray match).
        offset = float(np.median(tb[jj[inl]] - rate * ta[ii[inl]]))
        for run in _runs(inl, ta, ii, opts.max_gap):
            match = _range_match(run, ta, tb, ii, jj, dist, rate, offset, opts)
            if match is not None:
                out.append(match)
    out.sort(key=lambda m: (-m.confidence * m.frames, m.a_range))
    return _merge_overlaps(out)


def _best_alignment(ta: np.ndarray, tb: np.ndarray, ii: np.ndarray, jj: np.ndarray, vote: np.ndarray,
                    opts: ReuseOptions) -> tuple[float, float, float] | None:
    """(votes, rate, offset) of the line ``tb = rate * ta + offset`` that the frame
    matches (ii, jj) with weights ``vote`` support best; None without matches."""
    best = None
    for r in opts.rates:
        off = tb[jj] - r * ta[ii]
        bins = np.round(off / opts.offset_bin).astype(np.int64)
        if len(bins) == 0:
            break
        lo = bins.min()
        acc = np.bincount(bins - lo, weights=vote)
        # Neighbouring bins together: an offset on a bin edge splits its votes.
        acc2 = acc + np.concatenate([[0.0], acc[:-1]]) + np.concatenate([acc[1:], [0.0]])
        # A mild prior for normal speed: re-encodes and cut-outs are far more common
        # than speed changes, and a slow scene fits neighbouring rates almost as well.
        acc2 = acc2 * (1.0 - 0.2 * abs(math.log2(r)))
        k = int(np.argmax(acc2))
        if best is None or acc2[k] > best[0] + 1e-9:
            best = (float(acc2[k]), r, (k + lo) * opts.offset_bin)
    return best


def _range_match(run: np.ndarray, ta: np.ndarray, tb: np.ndarray, ii: np.ndarray, jj: np.ndarray,
                 dist: np.ndarray, rate: float, offset: float, opts: ReuseOptions) -> ReuseMatch | None:
    """The reused range that the matches ``run`` (indexes into ii, jj) span; None when it
    is shorter than ``min_frames`` or ``min_seconds``."""
    fa = np.unique(ii[run])
    fb = np.unique(jj[run])
    a0, a1 = float(ta[fa].min()), float(ta[fa].max()) + 1.0 / opts.fps
    b0, b1 = float(tb[fb].min()), float(tb[fb].max()) + 1.0 / opts.fps
    if min(len(fa), len(fb)) < opts.min_frames or (a1 - a0) < opts.min_seconds:
        return None
    # Density: matched frames over the A frames the range holds.
    in_range = int(np.count_nonzero((ta >= a0 - 1e-6) & (ta <= a1)))
    density = len(fa) / max(1, in_range)
    md = float(dist[run].mean())
    conf = float(np.clip(min(1.0, density * 1.2) * (1.0 - md / 32.0), 0.0, 1.0))
    return ReuseMatch((round(a0, 3), round(a1, 3)), (round(b0, 3), round(b1, 3)), rate,
                      round(offset, 3), int(len(fa)), round(md, 3), round(conf, 4))


def _runs(inl: np.ndarray, ta: np.ndarray, ii: np.ndarray, max_gap: float) -> list[np.ndarray]:
    order = inl[np.argsort(ta[ii[inl]], kind="stable")]
    t = ta[ii[order]]
    cuts = np.nonzero(np.diff(t) > max_gap)[0] + 1
    return [r for r in np.split(order, cuts) if len(r)]


def _merge_overlaps(ms: list[ReuseMatch]) -> list[ReuseMatch]:
    """Drop a weaker match whose A range lies mostly inside a stronger one's."""
    kept: list[ReuseMatch] = []
    for m in ms:
        if any(_overlap(m.a_range, k.a_range) > 0.5 * (m.a_range[1] - m.a_range[0]) for k in kept):
            continue
        kept.append(m)
    return kept


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


# -- library ---------------------------------------------------------------------------------------
def _keyframes_in(catalog: Catalog, key: int) -> list[tuple[float, np.ndarray]]:
    segs = catalog.segments_of(key)
    kv = catalog.keyframe_vectors([s.id for s in segs])
    return sorted(((t, v) for frames in kv.values() for t, v in frames), key=lambda x: x[0])


def _embedding_cos(ka: list[tuple[float, np.ndarray]], kb: list[tuple[float, np.ndarray]],
                   ra: tuple[float, float], rb: tuple[float, float]) -> float | None:
    """Mean over A's keyframes in ``ra`` of the best cosine with B's keyframes in
    ``rb`` (a second of slack each side: keyframes are sparse)."""
    va = [v for t, v in ka if ra[0] - 1.0 <= t <= ra[1] + 1.0]
    vb = [v for t, v in kb if rb[0] - 1.0 <= t <= rb[1] + 1.0]
    if not va or not vb:
        return None
    sims = np.stack(va) @ np.stack(vb).T
    return float(sims.max(axis=1).mean())


def _fingerprint_settings(opts: ReuseOptions) -> tuple:
    return (opts.fps, opts.max_side, tuple(opts.crops), opts.flat_std)


def update_reuse(catalog: Catalog, video: VideoRecord, *, options: ReuseOptions | None = None,
                 use_embeddings: bool = True, refingerprint: bool = False) -> list[NewEdge]:
    """Fingerprint a committed video, store the fingerprint, and match it against
    every other fingerprinted video of its tenant. Returns reuses_footage edges
    (this video -> the other) for the caller to write with the video's graph.

    A fingerprint already stored for the video (the indexer stores the one it tapped
    from its cut-detection frames, see :class:`FingerprintTap`) is used as is when
    it has this version's ``ALGO`` and ``options`` fingerprint like the defaults
    (which is what ``ALGO`` stands for); ``refingerprint=True`` decodes the file
    again in any case."""
    opts = options or ReuseOptions()
    store = GraphStore(catalog)
    ta = ha = None
    others = []
    for fp in store.fingerprints(tenant=video.tenant):
        if fp.video_key != video.key:
            others.append(fp)
        elif (not refingerprint and fp.algo == ALGO and fp.hashes.shape[1] == len(opts.crops)
              and _fingerprint_settings(opts) == _fingerprint_settings(ReuseOptions())):
            ta, ha = fp.times, fp.hashes
    if ta is None or ha is None:
        ta, ha = fingerprint_video(video.source, opts)
        store.put_fingerprint(video.key, ALGO, ta, ha)
    edges: list[NewEdge] = []
    mine = _keyframes_in(catalog, video.key) if use_embeddings else []
    for fp in others:
        if fp.algo != ALGO or fp.hashes.shape[1] != ha.shape[1]:
            continue  # fingerprinted by another version: `vidseek graph build --force` redoes it
        matches = match_fingerprints(ta, ha, fp.times, fp.hashes, opts)
        if not matches:
            continue
        theirs = _keyframes_in(catalog, fp.video_key) if use_embeddings else []
        for m in matches:
            cos = _embedding_cos(mine, theirs, m.a_range, m.b_range) if use_embeddings else None
            conf = m.confidence
            if cos is not None:
                if cos < opts.min_embedding_cos:
                    continue
                conf = round(conf * (0.5 + 0.5 * min(1.0, cos)), 4)
            edges.append(NewEdge(
                "reuses_footage", VideoRef(video.key), VideoRef(fp.video_key), weight=1.0, modality="visual",
                extractor=ALGO, confidence=conf, src_range=m.a_range, dst_range=m.b_range,
                attrs={"rate": m.rate, "offset": m.offset, "frames": m.frames, "mean_distance": m.mean_distance,
                       "embedding_cos": None if cos is None else round(cos, 4)},
            ))
    return edges
