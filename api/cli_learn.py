"""`vidseek learn`: the learned ranking of an index.

``vidseek learn status --index DIR [--json]``: the live model, the freeze switch, the
challenger, the models trained, feedback counts and interleaving tallies.
``vidseek learn retrain --index DIR [--judged FILE.jsonl] [--no-promote] [--json]``:
train from the logged feedback; the model goes live only past the safety gate
(``query.learn.retrain``); exit status 0 when trained (promoted or not), 3 when
there was nothing to train on or learning is frozen.
``vidseek learn freeze|unfreeze --index DIR``: stop (or resume) learning: no model
goes live while frozen, the live one stays.
``vidseek learn promote VERSION|default --index DIR``: make a model (or the hand-set
default: a rollback) live by hand; refused while frozen.
``vidseek learn interleave VERSION|--stop --index DIR``: compare VERSION with the live
model by team-draft interleaving on the share of traffic ``interleave_share`` sets.
``vidseek learn purge --index DIR``: apply the retention limits now.
"""
from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def _service(args):
    from query.learn.service import LearningService

    return LearningService(args.index)


def _print(args, data: dict, text: str) -> None:
    print(json.dumps(data, indent=1, default=str) if args.json else text)


def cmd_status(args: argparse.Namespace) -> int:
    svc = _service(args)
    try:
        st = svc.status()
    finally:
        svc.close()
    lines = [f"live: {st['live']}{'  (FROZEN)' if st['frozen'] else ''}",
             f"challenger: {st['challenger'] or '-'}",
             f"models: {', '.join(st['models']) or '-'}",
             "events: " + (", ".join(f"{k} {v}" for k, v in sorted(st["events"].items())) or "none")]
    for pair, t in st["interleaving"].items():
        lines.append(f"interleaving {pair}: A {t['wins_a']}, B {t['wins_b']}, ties {t['ties']}")
    _print(args, st, "\n".join(lines))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex
    from query.planner import Searcher

    svc = _service(args)
    try:
        with VideoIndex.open(args.index) as index:
            report = svc.retrain(Searcher(index, ranking=None), judged=args.judged, promote=not args.no_promote)
    finally:
        svc.close()
    if report["status"] != "trained":
        _print(args, report, f"not trained: {report['status']} {report.get('detail', '')}".rstrip())
        return 3
    gate = report["gate"]
    text = (f"trained {report['version']} from {report['sessions']} searches (l2 {report['l2']}); gate "
            f"{'passed' if gate['ok'] else 'refused: ' + '; '.join(gate['reasons'])}; "
            f"{'now live' if report['promoted'] else 'live stays ' + report['live_before']}")
    _print(args, report, text)
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    from query.learn.ranker import ModelStore

    store = ModelStore(args.index)
    store.freeze(args.learn_command == "freeze")
    print(f"learning {'frozen' if store.frozen else 'resumed'}; live: {store.current_version()}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from query.learn.ranker import ModelStore

    store = ModelStore(args.index)
    store.promote(args.version, "promoted by hand (vidseek learn promote)")
    print(f"live: {store.current_version()}")
    return 0


def cmd_interleave(args: argparse.Namespace) -> int:
    from query.learn.serve import LiveRanking

    if (args.version is None) == (not args.stop):
        raise SystemExit("give a VERSION or --stop")
    LiveRanking(args.index).set_challenger(None if args.stop else args.version)
    print("interleaving stopped" if args.stop else f"interleaving the live model with {args.version}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    svc = _service(args)
    try:
        n = svc.store.purge()
    finally:
        svc.close()
    print(f"dropped {n} events past the retention limits")
    return 0


def register(sub) -> None:
    """Add ``vidseek learn ...`` to the `vidseek` command."""
    g = sub.add_parser("learn", help="learned ranking: status, retrain, freeze, promote, interleave, purge")
    gs = g.add_subparsers(dest="learn_command", required=True)

    def add(name: str, help_: str, func, json_flag: bool = False):
        s = gs.add_parser(name, help=help_)
        s.add_argument("--index", required=True, metavar="DIR")
        if json_flag:
            s.add_argument("--json", action="store_true")
        s.set_defaults(func=func)
        return s

    add("status", "the live model, the freeze switch, feedback counts", cmd_status, True)
    s = add("retrain", "train from feedback; live only past the safety gate", cmd_retrain, True)
    s.add_argument("--judged", metavar="FILE.jsonl", help="judged queries the gate also checks (clips: file stems)")
    s.add_argument("--no-promote", action="store_true", help="train and gate, but leave the live model")
    add("freeze", "stop learning: the live model stays", cmd_freeze)
    add("unfreeze", "resume learning", cmd_freeze)
    s = add("promote", "make a model (or 'default') live by hand", cmd_promote)
    s.add_argument("version", metavar="VERSION")
    s = add("interleave", "interleave a model with the live one on live traffic", cmd_interleave)
    s.add_argument("version", metavar="VERSION", nargs="?")
    s.add_argument("--stop", action="store_true")
    add("purge", "apply the retention limits now", cmd_purge)
