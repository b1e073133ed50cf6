"""``vidseek identities``: the people seen in the library (docs/identities.md).

    vidseek identities --index DIR                      # list, most on screen first
    vidseek identities show ID --index DIR              # name, evidence, appearances
    vidseek identities name ID "Grace Hopper" --index DIR
    vidseek identities merge ID ID... --index DIR
    vidseek identities split ID --track T | --video VIDEO_ID [--name N] --index DIR
    vidseek identities delete ID --index DIR            # and its face descriptors
    vidseek identities find IMAGE --index DIR           # a face image as a query
    vidseek identities off|on --index DIR               # the privacy switch
"""
from __future__ import annotations

import argparse
import json


def _print(obj, as_json: bool, text: str) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str) if as_json else text)


def _line(i: dict) -> str:
    name = i["name"] or f"unknown person {i['identity']}"
    src = f" ({i['name_source']} {i['name_confidence']:.2f})" if i.get("name_source") else ""
    return (f"{i['identity']:>5}  {name}{src}: {i['tracks']} tracks in {i['videos']} videos, "
            f"{i['screen_time']:.1f} s on screen")


def cmd_identities(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex
    from engine.identities import IdentityStore

    action = args.action or "list"
    with VideoIndex.open(args.index, writer=action in _EDITS) as index:
        store = IdentityStore(index.catalog)
        t = args.tenant
        if action == "list":
            items = [i.to_dict() for i in store.list(tenant=t, limit=args.limit)]
            c = store.counts(t)
            head = (f"face identity {'on' if c['enabled'] else 'OFF (no descriptor is stored)'}: "
                    f"{c['identities']} identities, {c['named']} named, {c['tracks']} face tracks")
            _print({**c, "items": items}, args.json, "\n".join([head] + [_line(i) for i in items]))
        elif action == "show":
            iid = _one_id(args)
            ident = store.get(iid, tenant=t).to_dict()
            apps = [a.to_dict() for a in store.appearances([iid])]
            lines = [_line(ident)]
            lines += [f"  evidence: {e['source']} {e['confidence']:.2f} {e['name']!r} from {e['text']!r} in {e['video_id']}"
                      for e in ident.get("evidence", [])]
            lines += [f"  track {a['track']}: {a['source']} {a['start']:.1f}-{a['end']:.1f}s quality {a['quality']:.2f}"
                      for a in apps]
            _print({**ident, "appearances": apps}, args.json, "\n".join(lines))
        elif action == "name":
            if len(args.ids) != 2:
                raise SystemExit("usage: vidseek identities name ID NAME --index DIR")
            i = store.rename(int(args.ids[0]), args.ids[1], tenant=t).to_dict()
            _print(i, args.json, _line(i))
        elif action == "merge":
            i = store.merge([int(x) for x in args.ids], tenant=t).to_dict()
            _print(i, args.json, "merged into\n" + _line(i))
        elif action == "split":
            rest, new = store.split(_one_id(args), tracks=args.track or (), video_ids=args.video or (),
                                    name=args.name, tenant=t)
            _print({"identity": rest.to_dict(), "new": new.to_dict()}, args.json,
                   f"{_line(rest.to_dict())}\n{_line(new.to_dict())}")
        elif action == "delete":
            out = store.delete(_one_id(args), tenant=t)
            _print(out, args.json, f"deleted identity {out['identity']}: {out['tracks_deleted']} tracks,"
                                   f" {out['face_descriptors_deleted']} face descriptors")
        elif action in ("on", "off"):
            out = store.set_enabled(action == "on")
            _print(out, args.json, f"face identity {action}" + (
                f": deleted {out['descriptors_deleted']} descriptors and {out['identities_deleted']} identities"
                if action == "off" else ""))
        elif action == "find":
            from indexer.media import load_image
            from query.people import face_query

            if len(args.ids) != 1:
                raise SystemExit("usage: vidseek identities find IMAGE --index DIR")
            hits, considered = face_query(index, load_image(args.ids[0], max_side=1024), k=args.limit, tenant=t)
            lines = [f"{h.source} {h.start:.1f}-{h.end:.1f}s  {h.snippet}  (similarity {h.score:.2f})" for h in hits]
            _print({"hits": [h.to_dict() for h in hits], "identities": considered}, args.json,
                   "\n".join(lines) or "no identity in this index looks like that face")
    return 0


_EDITS = frozenset({"name", "merge", "split", "delete", "on", "off"})


def _one_id(args) -> int:
    if len(args.ids) != 1:
        raise SystemExit(f"usage: vidseek identities {args.action} ID --index DIR")
    return int(args.ids[0])


def register(sub) -> None:
    """Add ``vidseek identities`` to the `vidseek` command."""
    s = sub.add_parser("identities", help="people seen in the library: list, name, merge, split, delete, find by face")
    s.add_argument("action", nargs="?", choices=["list", "show", "name", "merge", "split", "delete", "find", "on", "off"])
    s.add_argument("ids", nargs="*", metavar="ARG", help="identity ids (name: ID NAME; find: IMAGE)")
    s.add_argument("--index", required=True, metavar="DIR", help="the index folder")
    s.add_argument("--tenant")
    s.add_argument("--track", type=int, action="append", help="split: a track to move (repeatable)")
    s.add_argument("--video", action="append", help="split: move the identity's tracks in this video (repeatable)")
    s.add_argument("--name", help="split: name the new identity")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_identities)
