"""Learning-from-use simulation on the real index (``benchmarks.suites.learning``).

    python -m benchmarks.bench_learning --index /tmp/wt/i20-qidx \\
        [--queries ../shared/bench/queries-public.jsonl benchmarks/data/moments-queries.jsonl] \\
        [--sizes 1000,10000,100000] [--seeds 0,1,2] [--out bench-results/learning.json]

The index must hold every judged clip (build it with ``python -m benchmarks --suite
quality --preset medium``, or ``benchmarks.suites.judged.ensure_index``). Prints the
Markdown table and writes the JSON (every run's weights, gate verdicts, per-kind
figures) and the Markdown beside it.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.core import PUBLIC_QUERIES, REPO_ROOT, add_out, entry_parser, write_json
from benchmarks.suites.learning import SimConfig, run

__all__ = ["main"]


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    p = entry_parser("bench_learning", __doc__)
    p.add_argument("--index", type=Path, required=True, help="an index of the judged clips")
    p.add_argument("--queries", type=Path, nargs="+",
                   default=[PUBLIC_QUERIES, REPO_ROOT / "benchmarks" / "data" / "moments-queries.jsonl"])
    p.add_argument("--cache-dir", type=Path, default=Path("bench-results") / "cache")
    p.add_argument("--sizes", type=_ints, default=SimConfig.sizes)
    p.add_argument("--seeds", type=_ints, default=SimConfig.seeds)
    add_out(p, Path("bench-results") / "learning.json")
    args = p.parse_args(argv)
    cfg = replace(SimConfig(), sizes=args.sizes, seeds=args.seeds)
    say = lambda s: print(f"[{time.strftime('%H:%M:%S')}] {s}", file=sys.stderr, flush=True)  # noqa: E731
    result = run(args.index, args.queries, args.cache_dir, cfg, progress=say)
    out = Path(args.out)
    write_json(out, result.as_dict(), indent=1)
    out.with_suffix(".md").write_text(result.details["markdown"], encoding="utf-8")
    print(result.details["markdown"])
    print(f"wrote {out} and {out.with_suffix('.md')} in {result.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
