"""The SQLite catalog: videos, shots, segments, keyframes, vectors, the op log."""
from engine.catalog.identities import FaceTrack, NameEvidence
from engine.catalog.labels import FaceRecord, FrameLabel
from engine.catalog.store import (
    MODALITIES,
    Catalog,
    Failure,
    NewSegment,
    NewVideo,
    Op,
    SegmentRecord,
    TimelineUnit,
    VideoRecord,
    make_video_id,
)

__all__ = [
    "FaceRecord",
    "FaceTrack",
    "NameEvidence",
    "FrameLabel",
    "MODALITIES",
    "Catalog",
    "Failure",
    "NewSegment",
    "NewVideo",
    "Op",
    "SegmentRecord",
    "TimelineUnit",
    "VideoRecord",
    "make_video_id",
]
