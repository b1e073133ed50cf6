"""``python -m benchmarks.bench_conse_labels [--encoders a,b] [--image-options JSON]``: image
encoders judged on the hand-labelled keyframes, before any judged query.

Each concept of ``benchmarks/data/frame-labels.jsonl`` that labels 2 or more of its 216
keyframes (COCO objects, person, group of people, man, woman, child, styles, dark) becomes
the query "a photo of a {concept}"; the keyframes (decoded from ``--media`` at their
labelled times) are ranked by the encoder's cosine to that query. Per encoder: mean
average precision and the mean reciprocal rank of the first labelled frame over the
concepts, and per concept AP. A classifier-side check: no fusion, no labellers, no
planner; it tells which visual encoder orders frames better by what they show, so that a
choice of model or combination rule need not be made on the judged search queries.

Each encoder runs with the options a new index gives it (``engine.config.
DEFAULT_IMAGE_OPTIONS``: 50 classes and WordNet hypernyms for the ImageNet ones), or with
``--image-options`` (``'{"top_k": 50}'``: the plain class prompts; ``'{}'``: each
encoder's own defaults, 10 classes).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.core import SHARED_MEDIA, emit
from benchmarks.labels_eval import LABELS_FILE, load_hand_labels

DEFAULT_ENCODERS = "imagenet-minilm,imagenet-effnet-minilm,imagenet-ensemble-minilm"
MIN_FRAMES = 2


def concepts(rows: list[dict]) -> dict[str, set[int]]:
    """concept -> indices of the rows that show it (concepts on fewer than MIN_FRAMES dropped)."""
    rel: dict[str, set[int]] = defaultdict(set)
    for i, r in enumerate(rows):
        for o in r["objects"]:
            rel[o].add(i)
        if r.get("people"):
            rel["person"].add(i)
            if r["people"] >= 2:
                rel["group of people"].add(i)
        for f in r["faces"]:
            if f.get("gender") in ("male", "female"):
                rel["man" if f["gender"] == "male" else "woman"].add(i)
            if f.get("age") == "child":
                rel["child"].add(i)
        for s in r["style"] + r["scene"]:
            rel[s].add(i)
    return {c: ids for c, ids in sorted(rel.items()) if len(ids) >= MIN_FRAMES}


def prompt(concept: str) -> str:
    return "a dark scene at night" if concept == "dark" else f"a photo of a {concept}"


def average_precision(scores: np.ndarray, relevant: set[int]) -> tuple[float, float]:
    """(AP, reciprocal rank of the first relevant item) of ``scores`` ranked high to low."""
    order = np.argsort(-scores, kind="stable")
    hits = np.isin(order, list(relevant))
    ranks = np.flatnonzero(hits) + 1
    ap = float(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return ap, float(1.0 / ranks[0])


def load_frames(rows: list[dict], media: Path) -> list[np.ndarray]:
    from indexer import media as media_io

    files = {p.stem: p for p in media.iterdir() if p.stem.startswith("c")}
    frames = []
    for r in rows:
        ((_, rgb),) = list(media_io.frames_at(files[r["clip"]], [r["t"]], size=1280))
        frames.append(rgb)
    return frames


def run(encoders: list[str], rows: list[dict], frames: list[np.ndarray], options: dict | None = None) -> dict:
    """Per encoder (built with ``options``, else a new index's defaults for it), mAP and MRR."""
    from engine.config import DEFAULT_IMAGE_OPTIONS
    from engine.models.registry import get_image_encoder

    rel = concepts(rows)
    out: dict = {"concepts": {c: len(ids) for c, ids in rel.items()}, "encoders": {}}
    for name in encoders:
        enc = get_image_encoder(name, **(DEFAULT_IMAGE_OPTIONS.get(name, {}) if options is None else options))
        v = enc.encode_images(frames)
        q = enc.encode_text([prompt(c) for c in rel])
        scores = v @ q.T
        per = {c: average_precision(scores[:, k], ids) for k, (c, ids) in enumerate(rel.items())}
        out["encoders"][name] = {
            "version": enc.info.version,
            "mAP": round(float(np.mean([ap for ap, _ in per.values()])), 4),
            "MRR": round(float(np.mean([rr for _, rr in per.values()])), 4),
            "AP": {c: round(ap, 4) for c, (ap, _) in per.items()},
        }
    return out


def render(res: dict) -> str:
    names = list(res["encoders"])
    lines = [f"{len(res['concepts'])} concepts, {sum(res['concepts'].values())} labelled frames in all", "",
             "| encoder | mAP | MRR |", "|---|---:|---:|"]
    lines += [f"| {n} | {e['mAP']:.3f} | {e['MRR']:.3f} |" for n, e in res["encoders"].items()]
    lines += ["", "| concept (frames) | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for c, n in res["concepts"].items():
        lines.append(f"| {c} ({n}) | " + " | ".join(f"{res['encoders'][e]['AP'][c]:.2f}" for e in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", default=DEFAULT_ENCODERS, help=f"registered image encoders (default {DEFAULT_ENCODERS})")
    ap.add_argument("--media", type=Path, default=SHARED_MEDIA)
    ap.add_argument("--labels", type=Path, default=LABELS_FILE)
    ap.add_argument("--image-options", help="encoder options as JSON (default: a new index's, per encoder)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    try:
        options = None if args.image_options is None else json.loads(args.image_options)
    except json.JSONDecodeError as e:
        print(f"error: --image-options is not JSON ({e}): pass e.g. '{{\"top_k\": 50}}'", file=sys.stderr)
        return 2
    if options is not None and not isinstance(options, dict):
        print(f"error: --image-options must be a JSON object, got {args.image_options!r}", file=sys.stderr)
        return 2
    if not args.media.is_dir():
        print(f"error: no media folder {args.media} (pass --media)", file=sys.stderr)
        return 2
    rows = load_hand_labels(args.labels)
    res = run([e.strip() for e in args.encoders.split(",") if e.strip()], rows, load_frames(rows, args.media), options)
    return emit(res, render(res), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
