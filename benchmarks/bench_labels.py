"""``python -m benchmarks.bench_labels --index DIR``: precision and recall of the frame
labellers against the hand labels (benchmarks.labels_eval)."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.core import emit
from benchmarks.labels_eval import LABELS_FILE, evaluate, load_hand_labels, render


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", required=True, type=Path, help="an index of ../shared/media (e.g. the quality"
                    " suite's, under bench-results/cache)")
    ap.add_argument("--labels", type=Path, default=LABELS_FILE)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    res = evaluate(args.index, load_hand_labels(args.labels))
    return emit(res, render(res), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
