"""Compare two benchmark result files: what moved, by how much, and whether it is a
regression or noise.

    python -m benchmarks compare A/result.json B/result.json [--fail-on-regression]
    vidseek bench compare A.json B.json [--rel-tol 0.05] [--all]

Metrics are matched by name (``result["metrics"]``, written by every suite). For each
one present in both: B - A, absolute and relative to A. A change counts only when it
exceeds the *noise*: the larger of the two runs' spreads (max - min over repeats),
``rel_tol`` times |A| and ``abs_tol``. Beyond that, a change in the worse direction
(lower where higher is better, and the reverse) is a **regression**, in the better
direction an improvement; metrics marked ``better: none`` only inform. Metrics in
one file only are listed as new or gone. The exit status is 1 when
``--fail-on-regression`` is given and any regression was found, 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from engine.errors import InputError, NotFoundError, VidseekError

__all__ = ["Difference", "load_result", "compare", "render", "add_arguments", "run_compare", "main"]

STATUSES = ("regression", "improved", "same", "changed", "new", "gone")


@dataclass(frozen=True)
class Difference:
    """One metric across two runs."""

    name: str
    a: float | None
    b: float | None
    better: str
    unit: str
    noise: float
    status: str

    @property
    def abs_diff(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def rel_diff(self) -> float | None:
        d = self.abs_diff
        if d is None or self.a is None or self.a == 0:
            return None
        return d / abs(self.a)


def load_result(path: str | Path) -> dict[str, Any]:
    """Read a result file and check it has a metric list."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"result file {path} does not exist",
                            hint="pass the result.json that `python -m benchmarks --out DIR` wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path} is not a JSON result file: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), list):
        raise InputError(f"{path} has no 'metrics' list", hint="is it a result.json of `python -m benchmarks`?")
    return data


def _metrics(result: Mapping[str, Any], origin: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(result["metrics"]):
        try:
            name = str(m["name"])
            float(m["value"])  # must be a number
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{origin}: metric #{i} is malformed ({e}): {m!r}") from e
        out[name] = m
    return out


def compare(a: Mapping[str, Any], b: Mapping[str, Any], *, rel_tol: float = 0.05,
            abs_tol: float = 1e-9) -> list[Difference]:
    """Every metric of either run, in A's order then B's new ones (see module docstring)."""
    if rel_tol < 0 or abs_tol < 0:
        raise InputError(f"tolerances must be >= 0, got rel_tol={rel_tol}, abs_tol={abs_tol}")
    ma, mb = _metrics(a, "A"), _metrics(b, "B")
    out: list[Difference] = []
    for name in [*ma, *(n for n in mb if n not in ma)]:
        x, y = ma.get(name), mb.get(name)
        ref = x if x is not None else mb[name]  # the name came from one of the two
        better, unit = str(ref.get("better", "none")), str(ref.get("unit", ""))
        if x is None or y is None:
            out.append(Difference(name, None if x is None else float(x["value"]),
                                  None if y is None else float(y["value"]), better, unit, 0.0,
                                  "new" if x is None else "gone"))
            continue
        va, vb = float(x["value"]), float(y["value"])
        noise = max(float(x.get("spread") or 0.0), float(y.get("spread") or 0.0), rel_tol * abs(va), abs_tol)
        delta = vb - va
        if abs(delta) <= noise or math.isclose(va, vb):
            status = "same"
        elif better == "none":
            status = "changed"
        elif (delta > 0) == (better == "higher"):
            status = "improved"
        else:
            status = "regression"
        out.append(Difference(name, va, vb, better, unit, noise, status))
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}"


def render(diffs: Sequence[Difference], *, show_all: bool = False) -> str:
    """A Markdown table (changes only unless ``show_all``) and a one-line tally."""
    rows = [d for d in diffs if show_all or d.status != "same"]
    lines = ["| metric | A | B | B - A | relative | noise | status |", "|---|---:|---:|---:|---:|---:|---|"]
    for d in rows:
        rel = "-" if d.rel_diff is None else f"{d.rel_diff:+.1%}"
        absd = "-" if d.abs_diff is None else f"{d.abs_diff:+.4g}"
        flag = f"**{d.status}**" if d.status == "regression" else d.status
        unit = f" {d.unit}" if d.unit else ""
        lines.append(f"| {d.name} | {_num(d.a)}{unit} | {_num(d.b)}{unit} | {absd} | {rel} | {_num(d.noise)} | {flag} |")
    tally = {s: sum(1 for d in diffs if d.status == s) for s in STATUSES}
    lines.append("")
    lines.append(f"{len(diffs)} metrics: " + ", ".join(f"{n} {s}" for s, n in tally.items() if n))
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``compare`` options (shared by ``python -m benchmarks`` and ``vidseek bench``)."""
    p.add_argument("a", type=Path, metavar="A.json", help="baseline result file")
    p.add_argument("b", type=Path, metavar="B.json", help="new result file")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any metric regressed beyond noise")
    p.add_argument("--rel-tol", type=float, default=0.05,
                   help="relative change always treated as noise (default 0.05; 0 for a strict quality gate)")
    p.add_argument("--abs-tol", type=float, default=1e-9, help="absolute change always treated as noise")
    p.add_argument("--all", action="store_true", help="list unchanged metrics too")


def run_compare(args: argparse.Namespace) -> int:
    """Load, compare, print; the exit status (see the module docstring)."""
    try:
        a, b = load_result(args.a), load_result(args.b)
        diffs = compare(a, b, rel_tol=args.rel_tol, abs_tol=args.abs_tol)
    except VidseekError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    print(f"A: {args.a} ({a.get('preset')}, {a.get('date')})\nB: {args.b} ({b.get('preset')}, {b.get('date')})\n")
    print(render(diffs, show_all=args.all))
    regressions = [d for d in diffs if d.status == "regression"]
    if regressions and args.fail_on_regression:
        print(f"{len(regressions)} regression(s) beyond noise", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run_compare(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
