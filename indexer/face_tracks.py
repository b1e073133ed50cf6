"""Face tracks inside shots, their quality, descriptor and name evidence.

The faces stage reads faces on keyframes (1-3 a segment, more in long shots).
``link`` follows a face from keyframe to keyframe inside one shot: a face joins the
open track of the shot whose last face is most alike (FaceRes cosine at least
``LINK_SIMILARITY``, or, without descriptors, boxes overlapping at least ``LINK_IOU``),
each track taking at most one face a keyframe. A track is on screen from halfway
after the shot's previous keyframe without it to halfway before the next one without
it (the shot's ends at the ends): the keyframes are all the frames the detector saw.

Quality (0..1) = 0.45 size (face side / a quarter of the frame's short side, capped)
+ 0.35 sharpness (variance of the Laplacian of the 64 px grey crop / 150, capped)
+ 0.2 detector score. The track's descriptor is the mean of its best three faces'.

Name evidence (``NameEvidence``):
- caption: a line of on-screen text in the lower part of the frame, below the face's
  chin, read on a keyframe while the track is on screen, that looks like a name (two
  to four capitalised words; what follows a comma, a bar or a dash is a title and is
  dropped): confidence ``CAPTION_CONFIDENCE``, shared when several faces are on screen;
- speech: "my name is X", "I'm X", "I am X" said while the face is on screen, X being
  one to three capitalised words. Speech recognition misspells names it does not know
  (espeak-ng's "Grace Hopper" came back as "Grace Harper"), so a spoken name alone
  stays below the naming threshold (``SPEECH_CONFIDENCE``): it names the face with a
  second mention or another kind of evidence, or when it is close to a name the video
  lists (``known``: then that spelling, at ``SPEECH_KNOWN_CONFIDENCE``). "please
  welcome X" is weaker still (``WELCOME_CONFIDENCE``): X may not be on screen yet.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from engine.catalog import FaceRecord, FaceTrack, NameEvidence

__all__ = ["link", "quality", "caption_name", "spoken_names", "tracks_of", "LINK_SIMILARITY", "LINK_IOU",
           "CAPTION_CONFIDENCE", "SPEECH_CONFIDENCE", "SPEECH_KNOWN_CONFIDENCE", "WELCOME_CONFIDENCE"]

LINK_SIMILARITY = 0.6  # same shot, consecutive keyframes: far looser than JOIN_SIMILARITY across videos
LINK_IOU = 0.3
CAPTION_CONFIDENCE = 0.75
SPEECH_CONFIDENCE = 0.45
SPEECH_KNOWN_CONFIDENCE = 0.6
WELCOME_CONFIDENCE = 0.35
KNOWN_SIMILARITY = 0.8  # difflib ratio of a spoken name to a listed one that takes its spelling
CAPTION_TOP = 0.55  # a lower-third caption's box starts below this share of the frame

_NAME_WORD = r"[A-Z][a-z\u00C0-\u017F'\u2019\-]+"
_CAPTION = re.compile(rf"^(?:(?:Dr|Mr|Mrs|Ms|Prof)\.?\s+)?({_NAME_WORD}(?:\s+(?:[A-Z]\.|{_NAME_WORD})){{1,3}})$")
_SPOKEN = re.compile(
    rf"\b(my name is|i'm|i am|please welcome|welcome)\s+((?:Dr\.?\s+)?{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})",
    re.IGNORECASE)
# capitalised words after "I'm" that are not names
_NOT_NAMES = frozenset("""a an the sorry fine good okay ok here back going not so very just really glad happy
sure thrilled excited english american british french german from in at on with and but today tonight now
""".split())

# capitalised caption words that are headings, not names
_NOT_CAPTIONS = frozenset("""end news breaking live update report weather sport sports episode part chapter
welcome thanks thank you subscribe follow more next coming soon hello world""".split())

# what a lower third says after a name, when OCR loses the separator before it
_TITLES = frozenset("""reporter correspondent anchor host presenter guest driver director producer editor
writer author actor actress singer chef doctor professor president minister ceo cto founder chairman
chairwoman manager coach captain player expert analyst spokesperson spokesman spokeswoman senator mayor
governor officer engineer scientist researcher student teacher artist musician dancer narrator interviewer
commentator journalist admiral general colonel""".split())


@dataclass
class _Open:
    faces: list[tuple[float, FaceRecord, float]] = field(default_factory=list)  # (t, face, quality)


def _iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def quality(face: FaceRecord, rgb: np.ndarray | None) -> float:
    """0..1 from the face's size, sharpness (when the frame is at hand) and detector score."""
    bw, bh = face.box[2] - face.box[0], face.box[3] - face.box[1]
    if rgb is not None:
        h, w = rgb.shape[:2]
        side = min(bw * w, bh * h) / min(h, w)
    else:
        side = min(bw, bh)
    size = min(1.0, side / 0.25)
    sharp = 0.5
    if rgb is not None:
        import cv2

        h, w = rgb.shape[:2]
        x0, y0 = max(0, int(face.box[0] * w)), max(0, int(face.box[1] * h))
        x1, y1 = min(w, int(np.ceil(face.box[2] * w))), min(h, int(np.ceil(face.box[3] * h)))
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
            grey = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
            sharp = min(1.0, float(cv2.Laplacian(grey, cv2.CV_64F).var()) / 150.0)
    return round(0.45 * size + 0.35 * sharp + 0.2 * float(face.score), 4)


def _similar(a: FaceRecord, b: FaceRecord) -> float:
    if a.descriptor is not None and b.descriptor is not None:
        s = float(np.dot(a.descriptor, b.descriptor))
        return s if s >= LINK_SIMILARITY else -1.0
    i = _iou(a.box, b.box)
    return i if i >= LINK_IOU else -1.0


def link(times: Sequence[float], faces: dict[float, list[FaceRecord]], frames: dict[float, np.ndarray]
         ) -> list[list[tuple[float, FaceRecord, float]]]:
    """The faces of one shot's keyframes (``times`` ascending) -> tracks, each a list of
    ``(t, face, quality)`` in time order."""
    done: list[_Open] = []
    open_: list[_Open] = []
    for t in times:
        fs = faces.get(t, [])
        pairs = sorted(((_similar(tr.faces[-1][1], f), i, j) for i, tr in enumerate(open_) for j, f in enumerate(fs)),
                       reverse=True)
        used_t, used_f = set(), set()
        for s, i, j in pairs:
            if s < 0 or i in used_t or j in used_f:
                continue
            used_t.add(i)
            used_f.add(j)
            open_[i].faces.append((t, fs[j], quality(fs[j], frames.get(t))))
        # a track that missed this keyframe is closed (the face left the picture)
        done += [tr for i, tr in enumerate(open_) if i not in used_t]
        open_ = [tr for i, tr in enumerate(open_) if i in used_t]
        open_ += [_Open([(t, f, quality(f, frames.get(t)))]) for j, f in enumerate(fs) if j not in used_f]
    return [tr.faces for tr in done + open_]


def _squash(s: str) -> str:
    return "".join(ch for ch in s.casefold() if ch.isalnum())


def caption_name(text: str, known: Sequence[str] = ()) -> str | None:
    """The name in a lower-third caption line ("JANE SMITH | Reporter" -> "Jane Smith"),
    or None. OCR often drops spaces and separators ("GRACEHOPPER", "GraceHopper", "John
    CarterDriver"): a run of letters equal to one of ``known`` (e.g. the video's
    ``people``) with spaces and case ignored is that name; a single CamelCase word is
    split at its capitals; in several words, a capital inside a word ends the name (a
    lost separator before a title)."""
    head = re.split(r"\s*(?:[,|/\u2013\u2014:]|\s-\s)\s*", text.strip(), maxsplit=1)[0].strip()
    squashed = _squash(head)
    for k in known:
        if squashed and _squash(k) == squashed:
            return k.strip()
    if " " not in head:  # "GraceHopper": the space between the names was lost
        head = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", head)
    else:  # "John CarterDriver": the separator before a title was lost ("John Carter | Driver")
        head = re.split(r"(?<=[a-z])(?=[A-Z])", head, maxsplit=1)[0]
    if head.isupper() and len(head) > 3:
        head = head.title()
    words = head.split()
    while len(words) > 2 and words[-1].lower().strip(".") in _TITLES:  # "John Carter Driver": the "|" was lost
        words.pop()
    m = _CAPTION.match(" ".join(words))
    if not m or any(w.lower() in _NOT_NAMES or w.lower() in _NOT_CAPTIONS or w.lower() in _TITLES
                    for w in m.group(1).split()):
        return None
    return m.group(1)


def spoken_names(text: str, known: Sequence[str] = ()) -> list[tuple[str, float, str]]:
    """``(name, confidence, phrase)`` for each self-introduction or welcome in ``text``;
    a name close to one of ``known`` takes its spelling and a higher confidence."""
    out = []
    for m in _SPOKEN.finditer(text):
        cue, name = m.group(1).lower(), m.group(2)
        words = []
        for w in re.sub(r"^(?:Dr|Mr|Mrs|Ms|Prof)\.?\s+", "", name).split():  # the name's words are capitalised as written (the cue is matched case-blind)
            if not w[:1].isupper() or w.lower().strip(".") in _NOT_NAMES or len(w) < 2:
                break
            words.append(w)
        if not words:
            continue
        said = " ".join(words)
        conf = WELCOME_CONFIDENCE if "welcome" in cue else SPEECH_CONFIDENCE
        if known:
            from difflib import SequenceMatcher

            best = max(known, key=lambda k: SequenceMatcher(None, _squash(k), _squash(said)).ratio())
            if SequenceMatcher(None, _squash(best), _squash(said)).ratio() >= KNOWN_SIMILARITY:
                said, conf = best.strip(), max(conf, SPEECH_KNOWN_CONFIDENCE)
        out.append((said, conf, m.group(0)))
    return out


def _window(times: Sequence[float], first: int, last: int, shot: tuple[float, float]) -> tuple[float, float]:
    lo = shot[0] if first == 0 else 0.5 * (times[first - 1] + times[first])
    hi = shot[1] if last == len(times) - 1 else 0.5 * (times[last] + times[last + 1])
    return max(lo, shot[0]), min(hi, shot[1])


def tracks_of(shots: Sequence[tuple[float, float]], segments: Sequence[tuple[float, float]],
              keyframe_times: Sequence[float], faces: dict[float, list[FaceRecord]],
              frames: dict[float, np.ndarray], lines: dict[float, list] | None = None,
              words: Sequence[Sequence] = (), known: Sequence[str] = ()) -> list[FaceTrack]:
    """Every face track of a video. ``shots``/``segments``: time ranges; ``keyframe_times``:
    the decoded keyframe times; ``faces``: keyframe time -> faces; ``frames``: keyframe
    time -> RGB (for sharpness); ``lines``: keyframe time -> OCR lines ``(text, box)``;
    ``words``: ``[start, end, word]`` of the whole video in time order; ``known``: names
    a caption may spell without spaces (the video's ``people``)."""
    times_all = sorted(set(float(t) for t in keyframe_times))
    out: list[FaceTrack] = []
    lines = lines or {}
    for shot in shots or [(0.0, float("inf"))]:
        times = [t for t in times_all if shot[0] <= t < shot[1]]
        if not any(faces.get(t) for t in times):
            continue
        for tr in link(times, faces, frames):
            first, last = times.index(tr[0][0]), times.index(tr[-1][0])
            start, end = _window(times, first, last, (float(shot[0]), float(min(shot[1], 1e9))))
            best = max(tr, key=lambda x: x[2])
            top = sorted(tr, key=lambda x: -x[2])[:3]
            ds = [f.descriptor for _, f, _ in top if f.descriptor is not None]
            desc = None
            if ds:
                m = np.mean(np.stack(ds), axis=0)
                desc = (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)
            seg = next((i for i, (s, e) in enumerate(segments) if s <= best[0] < e), None)
            out.append(FaceTrack(start=start, end=end, box=tuple(best[1].box), quality=best[2], faces=len(tr),
                                 descriptor=desc, segment=seg,
                                 members=tuple((t, tuple(f.box)) for t, f, _ in tr)))
    return _with_names(out, times_all, faces, lines, words, known)


def _with_names(tracks: list[FaceTrack], times: Sequence[float], faces: dict[float, list[FaceRecord]],
                lines: dict[float, list], words: Sequence[Sequence], known: Sequence[str]) -> list[FaceTrack]:
    from dataclasses import replace

    out = []
    for tr in tracks:
        ev: list[NameEvidence] = []
        for t in times:
            if not (tr.start <= t <= tr.end) or not lines.get(t):
                continue
            on_screen = max(1, len(faces.get(t, [])))
            me = next((f for tt, f in ((m[0], m) for m in tr.members) if tt == t), None)
            chin = me[1][3] if me is not None else tr.box[3]
            for text, box in lines[t]:
                if box is None or box[1] < max(CAPTION_TOP, chin - 0.05):
                    continue
                name = caption_name(str(text), known)
                if name:
                    ev.append(NameEvidence(name, "caption", CAPTION_CONFIDENCE / on_screen, str(text), float(t)))
        said = [w for w in words if float(w[1]) > tr.start and float(w[0]) < tr.end]
        if said:
            text = "".join(str(w[2]) for w in said)
            for name, conf, phrase in spoken_names(text, known):
                ev.append(NameEvidence(name, "speech", conf, phrase.strip(), float(said[0][0])))
        out.append(replace(tr, names=tuple(ev)))
    return out
