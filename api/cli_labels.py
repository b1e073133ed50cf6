"""``vidseek labels VIDEO_ID``: what the frame labellers saw in a video, as a timeline."""
from __future__ import annotations

import argparse
import json


def cmd_labels(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex
    from query.label_timeline import label_timeline

    with VideoIndex.open(args.index) as index:
        rec = index.catalog.get_video(args.video_id, tenant=args.tenant)
        out = label_timeline(index, rec, kinds=args.kind, min_score=args.min_score, faces=args.json)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    if not out["labels"]:
        skipped = "; ".join(out["skipped"]) or "no labeller found anything at the shown threshold"
        print(f"{rec.video_id}: no labels ({skipped})")
        return 0
    for lab in out["labels"]:
        spans = ", ".join(f"{i['start']:.1f}-{i['end']:.1f}s" for i in lab["instances"][:6])
        more = f" (+{len(lab['instances']) - 6})" if len(lab["instances"]) > 6 else ""
        print(f"{lab['kind']:<8} {lab['label']:<16} {lab['score']:.2f}  {spans}{more}")
    return 0


def register(sub) -> None:
    """Add ``vidseek labels`` to the `vidseek` command."""
    s = sub.add_parser("labels", help="what the frame labellers saw in a video (people, faces, objects, style)")
    s.add_argument("video_id", metavar="VIDEO_ID")
    s.add_argument("--index", required=True, metavar="DIR", help="the index folder")
    s.add_argument("--tenant")
    s.add_argument("--kind", action="append", help="only this kind (object, people, face, emotion, style, scene,"
                   " colour, hair, action); repeatable")
    s.add_argument("--min-score", type=float, help="keep labels at this score or more (default: what search shows)")
    s.add_argument("--json", action="store_true", help="the timeline as JSON, with every detected face")
    s.set_defaults(func=cmd_labels)
