"""Identities: people clustered from face tracks across a tenant's library, with names.

``IdentityStore(catalog)`` reads and edits them; every edit is one catalog
transaction that also rewrites the identity's knowledge-graph edges
(``engine.catalog.identities.refresh``), so a rename, merge or split shows in every
video of the identity at once. The clustering itself happens when a video is added
(``engine.catalog.identities.assign``, inside the add transaction).

- ``rename``: a user's name, kept over any evidence (source ``user``); an empty name
  goes back to the evidence's.
- ``merge``: the tracks of the others join the first identity.
- ``split``: the given tracks (or every track of the given videos) leave for a new
  identity.
- ``delete``: the identity, its tracks and the descriptors of every face they were
  built from are deleted (the faces themselves stay, for their gender/age labels).
- ``set_enabled(False)``: the privacy switch. No descriptor is stored from then on,
  and every stored face descriptor, track descriptor and identity is deleted.
- ``match``: the identities nearest to a descriptor (a face image as a query).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from engine.catalog import Catalog
from engine.catalog import identities as cid
from engine.catalog.identities import FaceTrack, NameEvidence, name_key
from engine.errors import InputError, NotFoundError

__all__ = ["Identity", "IdentityStore", "Appearance"]


@dataclass(frozen=True)
class Appearance:
    """One track of an identity: the video (key and public id), its time range, the
    segment of its best face and the track's quality."""

    track: int
    video_key: int
    video_id: str
    source: str
    start: float
    end: float
    segment: int | None
    quality: float

    def to_dict(self) -> dict:
        return {"track": self.track, "video_id": self.video_id, "source": self.source,
                "start": round(self.start, 3), "end": round(self.end, 3), "quality": round(self.quality, 3)}


@dataclass(frozen=True)
class Identity:
    id: int
    tenant: str
    name: str | None
    name_source: str | None
    name_confidence: float | None
    tracks: int
    videos: int
    screen_time: float
    evidence: tuple[tuple[NameEvidence, str], ...] = field(default=())  # (evidence, video id)

    def to_dict(self) -> dict:
        d = {"identity": self.id, "name": self.name, "name_source": self.name_source,
             "name_confidence": None if self.name_confidence is None else round(self.name_confidence, 3),
             "tracks": self.tracks, "videos": self.videos, "screen_time": round(self.screen_time, 2)}
        if self.evidence:
            d["evidence"] = [{**e.to_dict(), "video_id": vid} for e, vid in self.evidence]
        return d

    @property
    def label(self) -> str:
        return self.name or f"unknown person {self.id}"


class IdentityStore:
    """Reads and edits the identities of one open catalog. Thread-safe as the catalog is."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def _c(self):
        return self.catalog._conn()  # noqa: SLF001 (the catalog's connection, as GraphStore uses it)

    # -- settings ----------------------------------------------------------------------
    def enabled(self) -> bool:
        return cid.identity_enabled(self._c())

    def set_enabled(self, on: bool) -> dict:
        """Turn face identity on or off for this index. Off deletes every descriptor
        and identity now. Returns what was deleted."""
        with self.catalog.transaction() as c:
            out = {"enabled": bool(on), "descriptors_deleted": 0, "identities_deleted": 0}
            if not on:
                ids = [int(r[0]) for r in c.execute("SELECT id FROM identities")]
                for iid in ids:
                    cid.delete_graph(c, iid)
                out["identities_deleted"] = len(ids)
                out["descriptors_deleted"] = (
                    c.execute("UPDATE faces SET descriptor = NULL WHERE descriptor IS NOT NULL").rowcount
                    + c.execute("UPDATE face_tracks SET descriptor = NULL, identity = NULL"
                                " WHERE descriptor IS NOT NULL OR identity IS NOT NULL").rowcount)
                c.execute("DELETE FROM identities")
            c.execute("INSERT OR REPLACE INTO identity_settings (k, v) VALUES ('enabled', ?)", ("1" if on else "0",))
        return out

    # -- reads -------------------------------------------------------------------------
    def counts(self, tenant: str | None = None) -> dict:
        c = self._c()
        w, a = (" WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
        n = c.execute(f"SELECT COUNT(*), COUNT(name) FROM identities{w}", a).fetchone()
        t = c.execute("SELECT COUNT(*), COUNT(descriptor) FROM face_tracks").fetchone()
        return {"enabled": self.enabled(), "identities": int(n[0]), "named": int(n[1]), "tracks": int(t[0]),
                "descriptors": int(t[1])}

    def _identity(self, row, evidence: bool) -> Identity:
        c = self._c()
        st = c.execute("SELECT COUNT(DISTINCT video), COALESCE(SUM(end - start), 0) FROM face_tracks WHERE identity = ?",
                       (row["id"],)).fetchone()
        ev: tuple = ()
        if evidence:
            ev = tuple((NameEvidence(r[0], r[1], float(r[2]), r[3], r[4]), r[5]) for r in c.execute(
                "SELECT n.name, n.source, n.confidence, n.text, n.t, v.video_id FROM name_evidence n"
                " JOIN face_tracks t ON t.id = n.track JOIN videos v ON v.id = n.video WHERE t.identity = ?"
                " ORDER BY n.confidence DESC, n.id", (row["id"],)))
        return Identity(int(row["id"]), row["tenant"], row["name"], row["name_source"], row["name_confidence"],
                        int(row["tracks"]), int(st[0]), float(st[1]), ev)

    def get(self, identity_id: int, *, tenant: str | None = None, evidence: bool = True) -> Identity:
        row = self._c().execute("SELECT * FROM identities WHERE id = ?", (int(identity_id),)).fetchone()
        if row is None or (tenant is not None and row["tenant"] != tenant):
            raise NotFoundError(f"no identity {identity_id}", hint="list them with `vidseek identities`")
        return self._identity(row, evidence)

    def list(self, *, tenant: str | None = None, named: bool | None = None, limit: int = 100,
             offset: int = 0) -> list[Identity]:
        """Identities, the most on screen first."""
        sql, args = "SELECT i.* FROM identities i WHERE 1", []
        if tenant is not None:
            sql, args = sql + " AND i.tenant = ?", args + [tenant]
        if named is not None:
            sql += " AND i.name IS NOT NULL" if named else " AND i.name IS NULL"
        sql += (" ORDER BY (SELECT COALESCE(SUM(end - start), 0) FROM face_tracks t WHERE t.identity = i.id) DESC,"
                " i.id LIMIT ? OFFSET ?")
        return [self._identity(r, False) for r in self._c().execute(sql, args + [int(limit), int(offset)])]

    def find(self, name: str, *, tenant: str | None = None) -> list[Identity]:
        """Identities whose shown name is ``name`` (compared NFKC, case-folded)."""
        k = name_key(name)
        rows = self._c().execute("SELECT * FROM identities WHERE name IS NOT NULL"
                                 + (" AND tenant = ?" if tenant is not None else ""),
                                 [tenant] if tenant is not None else []).fetchall()
        return [self._identity(r, False) for r in rows if name_key(r["name"]) == k]

    def appearances(self, identity_ids: Sequence[int], *, video_keys: Sequence[int] | None = None) -> list[Appearance]:
        """The tracks of the identities, longest and best first."""
        ids = [int(i) for i in identity_ids]
        if not ids:
            return []
        sql = ("SELECT t.id, t.video, v.video_id, v.source, t.start, t.end, t.segment, t.quality FROM face_tracks t"
               f" JOIN videos v ON v.id = t.video WHERE t.identity IN ({','.join('?' * len(ids))})")
        args: list = list(ids)
        if video_keys is not None:
            keys = [int(k) for k in video_keys]
            sql += f" AND t.video IN ({','.join('?' * len(keys))})" if keys else " AND 0"
            args += keys
        rows = self._c().execute(sql + " ORDER BY (t.end - t.start) * (0.5 + t.quality) DESC, t.id", args).fetchall()
        return [Appearance(int(r[0]), int(r[1]), r[2], r[3], float(r[4]), float(r[5]), r[6], float(r[7])) for r in rows]

    def tracks_of_video(self, video_key: int) -> list[FaceTrack]:
        c = self._c()
        out = []
        for r in c.execute("SELECT id, start, end, box, quality, faces, segment, identity FROM face_tracks"
                           " WHERE video = ? ORDER BY start, id", (int(video_key),)):
            names = tuple(NameEvidence(n[0], n[1], float(n[2]), n[3], n[4]) for n in c.execute(
                "SELECT name, source, confidence, text, t FROM name_evidence WHERE track = ? ORDER BY id", (r[0],)))
            out.append(FaceTrack(float(r[1]), float(r[2]), tuple(json.loads(r[3])), float(r[4]), int(r[5]),
                                 segment=r[6], names=names, id=int(r[0]), video=int(video_key), identity=r[7]))
        return out

    def on_screen(self, video_keys: Sequence[int]) -> dict[int, list[tuple[int, str | None, float, float]]]:
        """Per video key: ``(identity, name or None, start, end)`` of each track, in time order."""
        keys = [int(k) for k in video_keys]
        out: dict[int, list] = {}
        for i in range(0, len(keys), 900):
            chunk = keys[i:i + 900]
            for v, iid, name, s, e in self._c().execute(
                    "SELECT t.video, t.identity, i.name, t.start, t.end FROM face_tracks t JOIN identities i"
                    f" ON i.id = t.identity WHERE t.video IN ({','.join('?' * len(chunk))}) ORDER BY t.start",
                    chunk):
                out.setdefault(int(v), []).append((int(iid), name, float(s), float(e)))
        return out

    def descriptors(self, identity_id: int) -> np.ndarray:
        """The stored track descriptors of an identity, (n, d) float32 (empty when none)."""
        rows = self._c().execute("SELECT descriptor FROM face_tracks WHERE identity = ? AND descriptor IS NOT NULL",
                                 (int(identity_id),)).fetchall()
        vs = [np.frombuffer(r[0], dtype=np.float16).astype(np.float32) for r in rows]
        return np.stack(vs) if vs else np.zeros((0, 0), dtype=np.float32)

    def match(self, descriptor: np.ndarray, *, tenant: str | None = None, limit: int = 5
              ) -> list[tuple[Identity, float]]:
        """Identities by cosine similarity of their centroid to ``descriptor``, best first."""
        d = np.asarray(descriptor, dtype=np.float32).ravel()
        d = d / max(float(np.linalg.norm(d)), 1e-12)
        rows = self._c().execute("SELECT * FROM identities WHERE centroid IS NOT NULL"
                                 + (" AND tenant = ?" if tenant is not None else ""),
                                 [tenant] if tenant is not None else []).fetchall()
        if not rows:
            return []
        cents = np.stack([np.frombuffer(r["centroid"], dtype=np.float16).astype(np.float32) for r in rows])
        if cents.shape[1] != d.shape[0]:
            raise InputError(f"a {d.shape[0]}-d descriptor cannot be compared with this index's {cents.shape[1]}-d ones")
        sims = cents @ d
        order = np.argsort(-sims)[:limit]
        return [(self._identity(rows[j], False), float(sims[j])) for j in order]

    # -- edits -------------------------------------------------------------------------
    def _check(self, c, ids: Sequence[int], tenant: str | None) -> str:
        tenants = set()
        for iid in ids:
            row = c.execute("SELECT tenant FROM identities WHERE id = ?", (int(iid),)).fetchone()
            if row is None or (tenant is not None and row[0] != tenant):
                raise NotFoundError(f"no identity {iid}", hint="list them with `vidseek identities`")
            tenants.add(row[0])
        if len(tenants) > 1:
            raise InputError(f"identities {list(ids)} belong to different tenants and cannot be merged")
        return tenants.pop()

    def rename(self, identity_id: int, name: str | None, *, tenant: str | None = None) -> Identity:
        """Name an identity (a user's name wins over every automatic one); ``None`` or
        an empty name clears the user's name and lets the evidence decide again."""
        name = (name or "").strip()
        if len(name) > 200:
            raise InputError("a name may be at most 200 characters", hint="shorten the name")
        with self.catalog.transaction() as c:
            self._check(c, [identity_id], tenant)
            if name:
                c.execute("UPDATE identities SET name = ?, name_source = 'user', name_confidence = 1.0,"
                          " updated_at = ? WHERE id = ?", (name, time.time(), int(identity_id)))
            else:
                c.execute("UPDATE identities SET name = NULL, name_source = NULL, name_confidence = NULL"
                          " WHERE id = ?", (int(identity_id),))
            cid.refresh(c, [identity_id])
        return self.get(identity_id)

    def merge(self, identity_ids: Sequence[int], *, tenant: str | None = None) -> Identity:
        """Merge the identities into the first one (its user name, if any, stays; else
        the first user name among the others; else the evidence decides)."""
        ids = list(dict.fromkeys(int(i) for i in identity_ids))
        if len(ids) < 2:
            raise InputError("merge needs at least two identity ids", hint="e.g. `vidseek identities merge 3 7`")
        with self.catalog.transaction() as c:
            self._check(c, ids, tenant)
            keep = ids[0]
            user = [r for r in (c.execute("SELECT name FROM identities WHERE id = ? AND name_source = 'user'",
                                          (i,)).fetchone() for i in ids) if r]
            for other in ids[1:]:
                cid.delete_graph(c, other)
                c.execute("UPDATE face_tracks SET identity = ? WHERE identity = ?", (keep, other))
                c.execute("DELETE FROM identities WHERE id = ?", (other,))
            if user:
                c.execute("UPDATE identities SET name = ?, name_source = 'user', name_confidence = 1.0 WHERE id = ?",
                          (user[0][0], keep))
            cid.refresh(c, [keep])
        return self.get(keep)

    def split(self, identity_id: int, *, tracks: Sequence[int] = (), video_ids: Sequence[str] = (),
              name: str | None = None, tenant: str | None = None) -> tuple[Identity, Identity]:
        """Move ``tracks`` (track ids) and the tracks in ``video_ids`` out of the identity
        into a new one (named ``name`` when given). Returns (the rest, the new one)."""
        with self.catalog.transaction() as c:
            t = self._check(c, [identity_id], tenant)
            own = {int(r[0]): int(r[1]) for r in c.execute(
                "SELECT t.id, t.video FROM face_tracks t WHERE t.identity = ?", (int(identity_id),))}
            move = {int(x) for x in tracks}
            bad = sorted(move - set(own))
            if bad:
                raise InputError(f"tracks {bad} are not tracks of identity {identity_id}",
                                 hint=f"see them with `vidseek identities show {identity_id}`")
            for vid in video_ids:
                row = c.execute("SELECT id FROM videos WHERE video_id = ?", (vid,)).fetchone()
                if row is None or int(row[0]) not in own.values():
                    raise InputError(f"identity {identity_id} has no track in video {vid!r}")
                move |= {k for k, v in own.items() if v == int(row[0])}
            if not move:
                raise InputError("split needs the tracks or videos to move", hint="pass --track ID or --video VIDEO_ID")
            if move == set(own):
                raise InputError(f"that would move every track of identity {identity_id}",
                                 hint="rename it instead, or leave some tracks")
            now = time.time()
            new = int(c.execute("INSERT INTO identities (tenant, tracks, created_at, updated_at) VALUES (?,0,?,?)",
                                (t, now, now)).lastrowid)
            c.executemany("UPDATE face_tracks SET identity = ? WHERE id = ?", [(new, k) for k in sorted(move)])
            if name and name.strip():
                c.execute("UPDATE identities SET name = ?, name_source = 'user', name_confidence = 1.0 WHERE id = ?",
                          (name.strip(), new))
            cid.refresh(c, [identity_id, new])
        return self.get(identity_id), self.get(new)

    def delete(self, identity_id: int, *, tenant: str | None = None) -> dict:
        """Delete an identity, its tracks and the descriptors of the faces they link."""
        with self.catalog.transaction() as c:
            self._check(c, [identity_id], tenant)
            cid.delete_graph(c, identity_id)
            tids = [int(r[0]) for r in c.execute("SELECT id FROM face_tracks WHERE identity = ?", (int(identity_id),))]
            n_faces = 0
            for i in range(0, len(tids), 900):
                chunk = tids[i:i + 900]
                q = ",".join("?" * len(chunk))
                n_faces += c.execute(f"UPDATE faces SET descriptor = NULL WHERE track IN ({q})"
                                     " AND descriptor IS NOT NULL", chunk).rowcount
                c.execute(f"DELETE FROM face_tracks WHERE id IN ({q})", chunk)
            c.execute("DELETE FROM identities WHERE id = ?", (int(identity_id),))
        return {"identity": int(identity_id), "tracks_deleted": len(tids), "face_descriptors_deleted": n_faces}
