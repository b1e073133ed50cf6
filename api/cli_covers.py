"""`vidseek covers`: pick, score and render a video's covers.

``vidseek covers VIDEO_ID --index DIR --out DIR [--k 4] [--aspects 16:9,4:3,3:4,1:1]
[--template FILE.json] [--no-beautify] [--title TEXT]`` writes ``cover<rank>_<W>x<H>.jpg``
per cover and aspect plus ``covers.json`` (scores, sub-scores, reasons, every
candidate considered), and stores the variants in the index's catalog, where the
service's bandit serves them (a variant at the same frame time as before keeps its
impressions and clicks).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "cmd_covers"]


def cmd_covers(args: argparse.Namespace) -> int:
    from engine.catalog import Catalog
    from engine.covers import CoverStore
    from engine.index import VideoIndex
    from indexer.covers.candidates import CoverOptions, compute_covers, render_variants
    from indexer.covers.render import load_template, parse_aspect
    from indexer.covers.service import store_cover_set

    aspects = [a.strip() for a in args.aspects.split(",") if a.strip()]
    for a in aspects:
        parse_aspect(a)
    template = load_template(args.template) if args.template else None
    options = CoverOptions(k=args.k)
    out = Path(args.out)
    idx = VideoIndex.open(args.index)
    try:
        rec = idx.catalog.get_video(args.video_id, tenant=args.tenant)
        cover_set = compute_covers(idx.catalog, rec, idx.config, options=options)
        title = args.title if args.title is not None else (rec.title if template is not None else None)
        # A cover picked only because too few candidates passed the checks is reported
        # (with why it was rejected) but never written as a JPEG.
        keep = [i for i, c in enumerate(cover_set.picked) if c.assessment.reject is None]
        written = render_variants([cover_set.picked[i] for i in keep], out, aspects=aspects,
                                  enhance=not args.no_beautify, template=template, title=title,
                                  names=[f"cover{i}" for i in keep])
        files = [{} for _ in cover_set.picked]
        for i, fs in zip(keep, written):
            files[i] = fs
        catalog = Catalog(Path(args.index) / "catalog.sqlite")
        try:
            variants = store_cover_set(CoverStore(catalog), rec.key, cover_set)
        finally:
            catalog.close()
    finally:
        idx.close()
    report = cover_set.as_dict()
    for cover, fs, v in zip(report["covers"], files, variants):
        cover["variant_id"] = v.id
        cover["files"] = {a: str(p) for a, p in fs.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "covers.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    for cover in report["covers"]:
        why = "; ".join(cover["reasons"][:3])
        print(f"cover {cover['rank']} at {cover['t']:.2f}s score {cover['score']:.3f}"
              f"{' (rejected: ' + cover['reject'] + '; no JPEG written)' if cover['reject'] else ''}: {why}")
    rej = ", ".join(f"{k} {n}" for k, n in sorted(report["rejected"].items())) or "none"
    print(f"{len(report['candidates'])} candidates, rejected: {rej}; wrote {out / 'covers.json'}")
    return 0


def register(sub) -> None:
    """Add ``covers`` to the `vidseek` command."""
    s = sub.add_parser("covers", help="pick, score and render a video's covers")
    s.add_argument("video_id", metavar="VIDEO_ID")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--out", required=True, metavar="DIR", help="folder for the JPEGs and covers.json")
    s.add_argument("--k", type=int, default=4, help="number of covers (default 4)")
    s.add_argument("--aspects", default="16:9,4:3,3:4,1:1", help="comma-separated W:H (default 16:9,4:3,3:4,1:1)")
    s.add_argument("--template", metavar="FILE.json", help="title template (see docs/covers.md)")
    s.add_argument("--no-beautify", action="store_true", help="no auto contrast, white balance or sharpening")
    s.add_argument("--title", help="title text drawn by the template (default: the video's title)")
    s.add_argument("--tenant", help="only a video of this tenant")
    s.set_defaults(func=cmd_covers)
