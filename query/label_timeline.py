"""A video's label timeline (``GET /v1/videos/{id}/labels``, ``vidseek labels``): for
each label the frame labellers gave it, the time ranges where it shows (its segments,
adjacent ones merged), like the insights timeline of commercial video indexers."""
from __future__ import annotations

from typing import Sequence

from query.concepts import LABEL_FILTER_MIN

__all__ = ["label_timeline"]


def label_timeline(index, video, *, kinds: Sequence[str] | None = None, min_score: float | None = None,
                   faces: bool = True) -> dict:
    """``{"video_id", "duration", "labels": [{kind, label, score, instances: [{start, end,
    score}]}], "faces": [...]}`` for a ``VideoRecord``. ``min_score`` None keeps the
    labels the product shows (``query.concepts.LABEL_FILTER_MIN`` per kind)."""
    segs = {s.id: s for s in index.catalog.segments_of(video.key)}
    rows = index.catalog.labels_of(video.key, kinds=kinds)
    by_label: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        floor = LABEL_FILTER_MIN.get(r.kind, 0.5) if min_score is None else min_score
        if r.score < floor or r.segment not in segs:
            continue
        per = by_label.setdefault((r.kind, r.label), {})
        per[r.segment] = max(per.get(r.segment, 0.0), r.score)
    labels = []
    for (kind, label), per in by_label.items():
        instances: list[dict] = []
        for sid in sorted(per, key=lambda i: segs[i].start):
            s = segs[sid]
            last = instances[-1] if instances else None
            if last is not None and s.start <= last["end"] + 0.05:
                last["end"] = round(max(last["end"], s.end), 3)
                last["score"] = max(last["score"], round(per[sid], 4))
            else:
                instances.append({"start": round(s.start, 3), "end": round(s.end, 3), "score": round(per[sid], 4)})
        seen = sum(i["end"] - i["start"] for i in instances)
        labels.append({"kind": kind, "label": label, "score": max(i["score"] for i in instances),
                       "seconds": round(seen, 3), "instances": instances})
    labels.sort(key=lambda x: (x["kind"], -x["seconds"], x["label"]))
    out = {"video_id": video.video_id, "duration": video.duration, "labels": labels,
           "labellers": {k: v for k, v in (video.stats.get("stages") or {}).items()
                         if k in ("objects", "faces", "picture")},
           "skipped": [s for s in video.stats.get("skipped_stages", []) if s.split(":")[0] in ("objects", "faces")]}
    if faces:
        out["faces"] = [f.to_dict() for f in index.catalog.faces_of(video.key)]
    return out
