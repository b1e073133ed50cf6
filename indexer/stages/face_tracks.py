"""Face tracks: the keyframe faces of each shot linked into tracks, with a quality, a
descriptor and the names seen or heard with them (``indexer.face_tracks``). The
catalog clusters the tracks into identities when the video is committed
(``engine.catalog.identities``). No model and no decoding: it reads what the faces,
OCR and speech stages left in the ``Work``, so it runs after them.
"""
from __future__ import annotations

from indexer.face_tracks import tracks_of
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["FaceTracksStage"]


class FaceTracksStage(Stage):
    name = "face_tracks"
    needs = ("faces", "segments")
    adds = ("face_tracks",)
    at = 0.9

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual and options.faces

    def applies(self, work: Work) -> bool:
        return bool(work.faces)

    def run(self, work: Work) -> None:
        kts = [t for seg in work.segments for t in work.keyframe_times(seg)]
        words = [w for ws in work.words for w in ws] if work.words else []
        work.face_tracks = tracks_of(
            [(float(s.start), float(s.end)) for s in work.shots] or [(0.0, float(work.info.duration or 1e9))],
            [(float(s.start), float(s.end)) for s in work.segments], kts, work.faces, dict(work.frames),
            work.keyframe_lines, words, known=list(work.meta.people) if work.meta else [])
        work.stats["face_tracks"] = {"tracks": len(work.face_tracks),
                                     "named": sum(1 for t in work.face_tracks if t.names)}
