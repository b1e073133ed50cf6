"""The SQLite catalog: videos, shots, segments, keyframes, vectors, the op log."""
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
