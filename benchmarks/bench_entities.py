"""Precision and recall of the entity extractor on a small labelled sample.

The sample (``benchmarks/data/entities_sample.jsonl``, 40 lines written for this
benchmark) holds transcript-like and on-screen texts in English and Chinese, each
with the entities the library already knows (its gazetteer, as a sidecar would give)
and the gold entities (type, name). A prediction is right when its normalised name
equals a gold name ("typed": and its type too). A gazetteer hit is reported under
the entity's canonical name, so "成龙" said in a clip counts for the known entity
"Jackie Chan".

Configurations: ``full`` (what indexing runs: gazetteer, capitalised spans, jieba
part-of-speech), ``gazetteer`` only, ``heuristics`` (capitalised spans + jieba, no
gazetteer).

Run: ``python -m benchmarks.bench_entities [--out bench-results/entities.json]``
(seconds).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.core import add_out, entry_parser, write_json
from engine.graph.store import normalise_alias
from indexer.entities import TextExtractor

__all__ = ["SAMPLE", "load_sample", "evaluate", "main"]

SAMPLE = Path(__file__).parent / "data" / "entities_sample.jsonl"
CONFIGS = {
    "full": {"gazetteer": True, "capitalised": True, "chinese_pos": True},
    "gazetteer": {"gazetteer": True, "capitalised": False, "chinese_pos": False},
    "heuristics": {"gazetteer": False, "capitalised": True, "chinese_pos": True},
}


def load_sample(path: Path = SAMPLE) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
            "tp": tp, "fp": fp, "fn": fn}


def evaluate(rows: list[dict], *, gazetteer: bool, capitalised: bool, chinese_pos: bool) -> dict[str, Any]:
    counts = {k: [0, 0, 0] for k in ("typed", "untyped")}
    by_group: dict[str, list[int]] = {}
    errors = []
    for row in rows:
        known = []
        if gazetteer:
            for typ, name, aliases in row["known"]:
                known += [(f, (typ, name)) for f in [name, *aliases]]
        tx = TextExtractor(known, capitalised=capitalised, chinese_pos=chinese_pos)
        conf = 0.9 if row["modality"] == "speech" else 0.8
        pred = {(m.type, normalise_alias(m.name)) for m in tx.extract(row["text"], confidence=conf)}
        gold = {(t, normalise_alias(n)) for t, n in row["gold"]}
        for kind, p, g in (("typed", pred, gold), ("untyped", {n for _, n in pred}, {n for _, n in gold})):
            counts[kind][0] += len(p & g)
            counts[kind][1] += len(p - g)
            counts[kind][2] += len(g - p)
        lang = "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in row["text"]) else "en"
        grp = by_group.setdefault(f"{row['modality']}/{lang}", [0, 0, 0])
        grp[0] += len(pred & gold)
        grp[1] += len(pred - gold)
        grp[2] += len(gold - pred)
        if pred != gold:
            errors.append({"id": row["id"], "missed": sorted(map(list, gold - pred)),
                           "spurious": sorted(map(list, pred - gold))})
    return {"typed": _prf(*counts["typed"]), "untyped": _prf(*counts["untyped"]),
            "by_group_typed": {k: _prf(*v) for k, v in sorted(by_group.items())}, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    ap = entry_parser("bench_entities", __doc__)
    ap.add_argument("--sample", type=Path, default=SAMPLE)
    add_out(ap, "bench-results/entities.json")
    args = ap.parse_args(argv)
    rows = load_sample(args.sample)
    out = {"sample": str(args.sample), "lines": len(rows),
           "gold_entities": sum(len(r["gold"]) for r in rows),
           "configs": {name: evaluate(rows, **cfg) for name, cfg in CONFIGS.items()}}
    write_json(args.out, out)
    print(f"{out['lines']} lines, {out['gold_entities']} gold entities")
    print(f"{'config':<11} {'typed P':>8} {'typed R':>8} {'typed F1':>8} {'name P':>8} {'name R':>8}")
    for name, r in out["configs"].items():
        t, u = r["typed"], r["untyped"]
        print(f"{name:<11} {t['precision']:>8.3f} {t['recall']:>8.3f} {t['f1']:>8.3f} {u['precision']:>8.3f}"
              f" {u['recall']:>8.3f}")
    print("full, by group (typed):")
    for g, r in out["configs"]["full"]["by_group_typed"].items():
        print(f"  {g:<10} P {r['precision']:.3f}  R {r['recall']:.3f}  (tp {r['tp']}, fp {r['fp']}, fn {r['fn']})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
