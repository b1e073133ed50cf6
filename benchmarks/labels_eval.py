"""Label precision and recall: what the frame labellers wrote into an index against
hand labels of its keyframes (``benchmarks/data/frame-labels.jsonl``), at the score
each label is shown and filtered at (``query.concepts.LABEL_FILTER_MIN``).

Per labeller: objects (COCO classes, micro over classes), people (present; two or
more; the exact count, 3 meaning 3+), faces (woman, man, child or baby, elderly, on
frames whose visible faces were readable), expression (happy = smiling), style
classes, scene (dark; indoor and outdoor on frames whose hand label says where they are),
colours, actions (arms raised, arms out, hand to face, sitting,
lying, together), hair colour (on frames whose hand label says it: a reading is right
when it is one of the names the label accepts; a frame whose hair shows and gets no
accepted name counts once against recall, under its first name). A hand-labelled frame is matched to the index's
keyframe of the same clip within 0.05 s.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.core import REPO_ROOT as REPO

__all__ = ["LABELS_FILE", "load_hand_labels", "evaluate", "render"]

LABELS_FILE = REPO / "benchmarks" / "data" / "frame-labels.jsonl"


def load_hand_labels(path: Path = LABELS_FILE) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in rows if "_about" not in r]


def _index_labels(index_dir: Path) -> dict[tuple[str, float], dict[tuple[str, str], float]]:
    from engine.index import VideoIndex

    out: dict[tuple[str, float], dict[tuple[str, str], float]] = {}
    with VideoIndex.open(index_dir) as idx:
        c = idx.catalog._conn()
        for src, t in c.execute("SELECT v.source, k.t FROM keyframes k JOIN segments s ON s.id = k.segment"
                                " JOIN videos v ON v.id = s.video"):
            out.setdefault((Path(src).stem, round(t, 3)), {})
        for src, t, kind, label, score in c.execute(
                "SELECT v.source, f.t, f.kind, f.label, MAX(f.score) FROM frame_labels f JOIN videos v"
                " ON v.id = f.video GROUP BY v.source, f.t, f.kind, f.label"):
            out.setdefault((Path(src).stem, round(t, 3)), {})[(kind, label)] = float(score)
    return out


def _match(frames: dict, clip: str, t: float):
    best = None
    for (c, ft), labels in frames.items():
        if c == clip and abs(ft - t) <= 0.05 and (best is None or abs(ft - t) < best[0]):
            best = (abs(ft - t), labels)
    return None if best is None else best[1]


class _Count:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def add(self, predicted: bool, truth: bool) -> None:
        self.tp += predicted and truth
        self.fp += predicted and not truth
        self.fn += truth and not predicted

    def as_dict(self) -> dict[str, Any]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        return {"precision": None if p is None else round(p, 3), "recall": None if r is None else round(r, 3),
                "shown": self.tp + self.fp, "true": self.tp + self.fn, "tp": self.tp}


def evaluate(index_dir: Path, hand: list[dict] | None = None) -> dict[str, Any]:
    from query.concepts import LABEL_FILTER_MIN as SHOW

    hand = hand if hand is not None else load_hand_labels()
    frames = _index_labels(Path(index_dir))
    counts: dict[str, _Count] = defaultdict(_Count)
    exact = [0, 0]
    matched = 0
    for h in hand:
        got = _match(frames, h["clip"], h["t"])
        if got is None:
            continue
        matched += 1
        shown = {k for k, s in got.items() if s >= SHOW.get(k[0], 0.5)}

        def has(kind: str, label: str) -> bool:
            return (kind, label) in shown

        # objects: micro over the COCO classes either side names
        truth_objs = set(h["objects"])
        pred_objs = {lab for k, lab in shown if k == "object" and lab != "person"}
        for o in truth_objs | pred_objs:
            counts["objects"].add(o in pred_objs, o in truth_objs)
        n_pred = max([int(lab) for k, lab in shown if k == "people"] or [0])
        if h["people"] is not None:
            n_true = h["people"]
            counts["people: any"].add(n_pred >= 1, n_true >= 1)
            counts["people: two or more"].add(n_pred >= 2, n_true >= 2)
            exact[0] += min(n_pred, 3) == n_true
            exact[1] += 1
        faces = h["faces"]
        readable = bool(faces) or not h["people"]  # people with no readable face: face labels not judged
        if readable:
            genders = {f["gender"] for f in faces}
            ages = {f["age"] for f in faces}
            counts["face: woman"].add(has("face", "woman"), "female" in genders and "adult" in ages
                                      or any(f["gender"] == "female" and f["age"] != "child" for f in faces))
            counts["face: man"].add(has("face", "man"), any(f["gender"] == "male" and f["age"] != "child"
                                                            for f in faces))
            counts["face: child"].add(has("face", "child") or has("face", "baby") or has("face", "girl")
                                      or has("face", "boy"), "child" in ages)
            counts["face: elderly"].add(has("face", "elderly"), "elderly" in ages)
            counts["emotion: happy"].add(has("emotion", "happy"), any(f["smiling"] for f in faces))
            wrong = {lab for k, lab in shown if k == "emotion" and lab != "happy"}
            counts["emotion: other"].add(bool(wrong), False)
        for style in ("test pattern", "cartoon", "black and white", "screen", "video game"):
            counts[f"style: {style}"].add(has("style", style), style in h["style"])
        counts["scene: dark"].add(has("scene", "dark"), "dark" in h["scene"])
        if h.get("place"):  # where the frame is, when it shows it; absent from older label files
            for place in ("indoor", "outdoor"):
                counts[f"scene: {place}"].add(has("scene", place), h["place"] == place)
        if "actions" in h:  # what people do (the pose labeller); absent from older label files
            for action in ("arms raised", "arms out", "hand to face", "sitting", "lying", "together"):
                counts[f"action: {action}"].add(has("action", action), action in h["actions"])
        hair_truth = h.get("hair", [] if h["people"] == 0 else None)  # None: not judged
        if hair_truth is not None:
            pred_hair = {lab for k, lab in shown if k == "hair"}
            for c in pred_hair:  # a reading counts as right when it is one the hand label accepts
                counts["hair"].add(True, c in hair_truth)
                counts[f"hair: {c}"].add(True, c in hair_truth)
            if hair_truth and not pred_hair & set(hair_truth):
                counts["hair"].add(False, True)
                counts[f"hair: {hair_truth[0]}"].add(False, True)
        truth_col = set(h["colours"])
        pred_col = {lab for k, lab in shown if k == "colour"}
        for col in truth_col | pred_col:
            counts["colour"].add(col in pred_col, col in truth_col)
    out = {"hand_labelled": len(hand), "matched": matched,
           "people_exact": round(exact[0] / exact[1], 3) if exact[1] else None,
           "labellers": {k: v.as_dict() for k, v in sorted(counts.items())},
           "thresholds": dict(SHOW)}
    return out


def render(res: dict[str, Any]) -> str:
    lines = [f"Hand-labelled keyframes: {res['hand_labelled']}, matched in the index: {res['matched']}; "
             f"people count exact (3 = 3+): {res['people_exact']}", "",
             "| labeller | precision | recall | shown | true |", "|---|---:|---:|---:|---:|"]
    for k, v in res["labellers"].items():
        p = "-" if v["precision"] is None else f"{v['precision']:.3f}"
        r = "-" if v["recall"] is None else f"{v['recall']:.3f}"
        lines.append(f"| {k} | {p} | {r} | {v['shown']} | {v['true']} |")
    return "\n".join(lines)
