"""Bytes per segment of an index folder, end to end: catalog + vectors + lexical + thumbnails.

    python -m benchmarks.bench_bytes --index DIR                 # measure as it is
    python -m benchmarks.bench_bytes --index DIR --migrate       # open it with a writer first

``--migrate`` opens the index with a writer, which brings an index of the old layout
(every segment's per-modality float32 vectors kept in ``catalog.sqlite``) to one copy of
each vector: the catalog migrates its schema, prunes the rows the saved vector store
holds (with ``--retention 0``: all of them; the product keeps the last
``engine.index.VECTOR_RETENTION_S``) and ``VACUUM``s once most of the file is free.
Reported before and after, with the seconds it took.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

from benchmarks.core import add_out, entry_parser, now_iso, write_json

__all__ = ["index_bytes", "main"]

PARTS = {"catalog": ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"), "vectors": ("vectors",),
         "lexical": ("lexical",), "thumbnails": ("thumbs",)}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                pass
    return total


def index_bytes(index_dir: Path) -> dict:
    """Bytes of each part of ``index_dir`` and per segment (segments from its catalog)."""
    index_dir = Path(index_dir)
    parts = {name: sum(_size(index_dir / p) for p in paths if (index_dir / p).exists())
             for name, paths in PARTS.items()}
    named = {p for paths in PARTS.values() for p in paths}
    parts["other"] = sum(_size(p) for p in index_dir.iterdir() if p.name not in named)
    with sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True) as c:
        segments = int(c.execute("SELECT COUNT(*) FROM segments").fetchone()[0])
        rows = dict(c.execute("SELECT modality, COUNT(*) FROM vectors GROUP BY modality").fetchall())
    total = sum(parts.values())
    return {"segments": segments, "bytes": parts, "total_bytes": total, "catalog_vector_rows": rows,
            "per_segment": {k: round(v / max(segments, 1), 1) for k, v in {**parts, "total": total}.items()}}


def _print(label: str, m: dict) -> None:
    ps = m["per_segment"]
    print(f"{label}: {m['segments']:,} segments, {m['total_bytes'] / 1e9:.2f} GB | B/segment: catalog {ps['catalog']}"
          f" + vectors {ps['vectors']} + lexical {ps['lexical']} + thumbnails {ps['thumbnails']}"
          f" + other {ps['other']} = {ps['total']} | catalog vector rows {m['catalog_vector_rows']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = entry_parser("bench_bytes", __doc__)
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--migrate", action="store_true", help="open with a writer (migrate, prune, vacuum) and re-measure")
    p.add_argument("--retention", type=float, default=0.0, help="seconds of pending vector rows kept (--migrate)")
    add_out(p, "bench-results/bytes.json")
    args = p.parse_args(argv)
    if not (args.index / "catalog.sqlite").exists():
        print(f"{args.index} is not a vidseek index (no catalog.sqlite)", file=sys.stderr)
        return 2
    res: dict = {"date": now_iso(), "index": str(args.index), "before": index_bytes(args.index)}
    _print("before", res["before"])
    if args.migrate:
        import engine.index as index_mod
        from engine.index import VideoIndex

        index_mod.VECTOR_RETENTION_S = args.retention
        t = time.perf_counter()
        with VideoIndex.open(args.index, writer=True):
            pass
        res["migrate_s"] = round(time.perf_counter() - t, 1)
        res["after"] = index_bytes(args.index)
        _print(f"after ({res['migrate_s']} s)", res["after"])
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
