"""`vidseek graph` subcommands: the knowledge graph of an index.

```
vidseek graph entity NAME --index DIR [--json] [--png FILE]   # find an entity: aliases, videos, neighbours
vidseek graph related VIDEO_ID --index DIR [--json]            # videos sharing entities or footage
vidseek graph export --index DIR --format graphml|json --out FILE
vidseek graph build --index DIR [--force] [--no-reuse]         # backfill an existing index
vidseek graph stats --index DIR [--json]                       # counts, communities, central entities
```
Readers open the catalog read-only (no vector shards are loaded); ``build`` takes
the index's writer lock.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import NotFoundError

__all__ = ["register"]


def _catalog(index: str):
    from engine.catalog import Catalog

    path = Path(index) / "catalog.sqlite"
    if not path.is_file():
        raise NotFoundError(f"{index} is not a vidseek index (no catalog.sqlite)",
                            hint="build one with `vidseek index PATH... --index DIR`")
    return Catalog(path, read_only=True)


def _fmt_range(r) -> str:
    return f"{r[0]:.1f}-{r[1]:.1f}s"


def cmd_entity(args: argparse.Namespace) -> int:
    from engine.graph.store import GraphStore

    cat = _catalog(args.index)
    try:
        store = GraphStore(cat)
        ents = store.search_entities(args.name, tenant=args.tenant, limit=args.limit)
        if not ents:
            from difflib import get_close_matches

            from engine.graph.store import normalise_alias

            names = {a: e for a, e, _ in store.alias_table(tenant=args.tenant)}
            close = get_close_matches(normalise_alias(args.name), list(names), n=3, cutoff=0.6)
            near = {store.get_entity(names[a]).name for a in close}
            raise NotFoundError(f"no entity matches {args.name!r}"
                                + (f"; did you mean {' or '.join(repr(n) for n in sorted(near))}?" if near else ""),
                                hint="`vidseek graph stats --index DIR` shows what the graph holds")
        best = ents[0]
        videos = store.entity_videos(best.id, limit=args.videos)
        recs = cat.videos_by_keys([v.video_key for v in videos])
        segs = cat.get_segments([s for v in videos for s in v.segments[:10]])
        neigh = store.neighbours(best.id, limit=args.neighbours)
        out = {
            "entity": best.as_dict(),
            "videos": [{"video_id": recs[v.video_key].video_id, "source": recs[v.video_key].source,
                        "title": recs[v.video_key].title, "relations": list(v.relations),
                        "confidence": v.confidence, "modalities": list(v.modalities),
                        "moments": [[segs[s].start, segs[s].end] for s in v.segments[:10] if s in segs]}
                       for v in videos if v.video_key in recs],
            "neighbours": [{"entity_id": n.entity.id, "type": n.entity.type, "name": n.entity.name,
                            "weight": round(n.weight, 4), "relations": list(n.relations)} for n in neigh],
            "other_matches": [{"entity_id": e.id, "type": e.type, "name": e.name} for e in ents[1:]],
        }
        if args.png:
            from engine.graph.algorithms import draw_png, neighbourhood

            Path(args.png).write_bytes(draw_png(neighbourhood(cat, best.id), title=f"{best.label()} ({best.type})"))
            out["png"] = args.png
    finally:
        cat.close()
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    e = out["entity"]
    print(f"[{e['entity_id']}] {e['name']} ({e['type']}); aliases: {', '.join(e['aliases'])}")
    print(f"videos ({len(out['videos'])}):")
    for v in out["videos"]:
        moments = ", ".join(_fmt_range(m) for m in v["moments"])
        print(f"  {v['video_id']}  {v['source']}  {'/'.join(v['relations'])} {v['confidence']:.2f}"
              f"  [{'/'.join(v['modalities'])}]" + (f"  at {moments}" if moments else ""))
    if out["neighbours"]:
        print("neighbours: " + "; ".join(f"{n['name']} ({n['type']}, {n['weight']:g})" for n in out["neighbours"]))
    if out["other_matches"]:
        print("also matching: " + "; ".join(f"[{m['entity_id']}] {m['name']} ({m['type']})"
                                            for m in out["other_matches"]))
    if args.png:
        print(f"wrote {args.png}")
    return 0


def cmd_related(args: argparse.Namespace) -> int:
    from engine.graph.store import GraphStore

    cat = _catalog(args.index)
    try:
        rec = cat.get_video(args.video_id, tenant=args.tenant)
        store = GraphStore(cat)
        rel = store.related_videos(rec.key, limit=args.limit)
        recs = cat.videos_by_keys([r.video_key for r in rel])
        out = {"video_id": rec.video_id, "source": rec.source,
               "entities": [{"entity_id": e.id, "type": e.type, "name": e.name, "relations": list(r),
                             "confidence": c} for e, r, c in store.video_entities(rec.key)],
               "related": [{"video_id": recs[r.video_key].video_id, "source": recs[r.video_key].source,
                            "score": r.score, "shared": [{"entity_id": i, "type": t, "name": n} for i, t, n in r.shared],
                            "reused_footage": list(r.reuse)} for r in rel if r.video_key in recs]}
    finally:
        cat.close()
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"{out['video_id']}  {out['source']}: {len(out['entities'])} entities")
    for r in out["related"]:
        why = [s["name"] for s in r["shared"][:6]]
        for u in r["reused_footage"]:
            why.append(f"reused footage {_fmt_range(u['this'])} ~ {_fmt_range(u['other'])}")
        print(f"  {r['score']:.3f}  {r['video_id']}  {r['source']}  ({'; '.join(why)})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.graph.algorithms import export_graph, to_networkx

    cat = _catalog(args.index)
    try:
        g = to_networkx(cat, tenant=args.tenant)
        text = export_graph(g, args.format)
    finally:
        cat.close()
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {g.number_of_nodes()} nodes and {g.number_of_edges()} edges to {args.out} ({args.format})")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex
    from indexer.entities import GraphOptions, build_graph

    if not (Path(args.index) / "manifest.json").is_file():
        raise NotFoundError(f"{args.index} is not a vidseek index", hint="build it with `vidseek index` first")
    opts = GraphOptions(reuse=not args.no_reuse)

    def progress(i: int, n: int, r) -> None:
        if not args.quiet:
            print(f"\r{i}/{n} videos", end="", file=sys.stderr, flush=True)

    with VideoIndex.open(args.index, writer=True) as index:
        results = build_graph(index.catalog, tenant=args.tenant, force=args.force, options=opts, progress=progress)
        from engine.graph.store import GraphStore

        counts = GraphStore(index.catalog).counts(args.tenant)
    if not args.quiet and results:
        print(file=sys.stderr)
    failed = [r for r in results if r.status != "done"]
    summary = {"videos": len(results), "failed": len(failed), "reuse_matches": sum(r.reuse_matches for r in results),
               "seconds": round(sum(r.seconds for r in results), 2), "graph": counts,
               "failures": [{"video_key": r.video_key, "reason": r.reason} for r in failed]}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"graph updated for {summary['videos']} videos in {summary['seconds']} s ({len(failed)} failed);"
              f" {counts['entities']} entities, {counts['edges']} edges")
        for f in summary["failures"]:
            print(f"FAILED video {f['video_key']}: {f['reason']}")
    return 1 if failed else 0


def cmd_stats(args: argparse.Namespace) -> int:
    from engine.graph.algorithms import centrality, communities, to_networkx
    from engine.graph.store import GraphStore

    cat = _catalog(args.index)
    try:
        counts = GraphStore(cat).counts(args.tenant)
        g = to_networkx(cat, tenant=args.tenant)
    finally:
        cat.close()
    comms = [c for c in communities(g) if len(c) > 1][: args.top]
    name = lambda n: g.nodes[n].get("name", n)  # noqa: E731
    out = {"counts": counts, "nodes": g.number_of_nodes(), "links": g.number_of_edges(),
           "central": [{"node": n, "name": name(n), "type": g.nodes[n].get("type"), "pagerank": round(s, 5)}
                       for n, s in centrality(g, "pagerank", top=args.top)],
           "communities": [{"size": len(c), "entities": [name(n) for n in c if n.startswith("e")][:12]}
                           for c in comms]}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    print("most central: " + "; ".join(f"{c['name']} ({c['type']})" for c in out["central"]))
    for i, c in enumerate(out["communities"], 1):
        print(f"community {i} ({c['size']} nodes): {', '.join(c['entities'])}")
    return 0


def register(sub) -> None:
    """Add ``vidseek graph ...`` to the `vidseek` command."""
    g = sub.add_parser("graph", help="knowledge graph: entities, related videos, export, backfill")
    gs = g.add_subparsers(dest="graph_command", required=True)

    s = gs.add_parser("entity", help="find an entity by name or alias")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--tenant")
    s.add_argument("--json", action="store_true")
    s.add_argument("--png", metavar="FILE", help="write a picture of its neighbourhood")
    s.add_argument("--limit", type=int, default=5, help="other matching entities to list")
    s.add_argument("--videos", type=int, default=50)
    s.add_argument("--neighbours", type=int, default=15)
    s.set_defaults(func=cmd_entity)

    s = gs.add_parser("related", help="videos related to one through shared entities and reused footage")
    s.add_argument("video_id", metavar="VIDEO_ID")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--tenant")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_related)

    s = gs.add_parser("export", help="write the graph as GraphML or node-link JSON")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--format", required=True, choices=["graphml", "json"])
    s.add_argument("--out", required=True, metavar="FILE")
    s.add_argument("--tenant")
    s.set_defaults(func=cmd_export)

    s = gs.add_parser("build", help="extract entities and reused footage for videos the graph lacks")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--tenant")
    s.add_argument("--force", action="store_true", help="redo every video")
    s.add_argument("--no-reuse", action="store_true", help="skip reused-footage fingerprints (no decoding)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_build)

    s = gs.add_parser("stats", help="graph counts, communities and central entities")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--tenant")
    s.add_argument("--top", type=int, default=10)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_stats)
