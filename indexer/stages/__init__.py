"""The mapper's stages, in the order they run. ``build_stages(options)`` lists the ones
the options turn on and checks that each one's needs come before it.

To add a labeller: write ``indexer/stages/NAME.py`` with a ``Stage`` subclass (what it
needs, what it adds to the ``Work``, its model, its thread share) and add one line to
``STAGES``. ``indexer.mapper.assemble`` turns the filled ``Work`` into a ``NewVideo``.
"""
from __future__ import annotations

from typing import Sequence

from engine.errors import InputError
from indexer.options import IndexOptions
from indexer.stages.base import INITIAL_FIELDS, ProgressFn, Stage, Work
from indexer.stages.face_tracks import FaceTracksStage
from indexer.stages.faces import FacesStage
from indexer.stages.keyframes import KeyframesStage
from indexer.stages.objects import ObjectsStage
from indexer.stages.ocr import OcrStage
from indexer.stages.picture import PictureStage
from indexer.stages.pose import PoseStage
from indexer.stages.probe import ProbeStage
from indexer.stages.scene import SceneStage
from indexer.stages.shots import ShotsStage
from indexer.stages.speech import AudioStage, SpeechStage
from indexer.stages.text import TextEmbedStage
from indexer.stages.text_follow import TextFollowStage
from indexer.stages.thumbnails import ThumbnailsStage
from indexer.stages.timeline import TimelineStage
from indexer.stages.visual import VisualStage

__all__ = ["Stage", "Work", "ProgressFn", "STAGES", "build_stages", "check_order"]

# Execution order. One line per stage.
STAGES: tuple[type[Stage], ...] = (
    ProbeStage,
    ShotsStage,
    KeyframesStage,
    VisualStage,
    ObjectsStage,
    FacesStage,
    PoseStage,
    OcrStage,
    TextFollowStage,
    PictureStage,
    SceneStage,
    AudioStage,
    SpeechStage,
    TextEmbedStage,
    TimelineStage,
    FaceTracksStage,
    ThumbnailsStage,
)


def check_order(stages: Sequence[Stage]) -> None:
    """Raise InputError when a stage needs a field that no earlier stage adds, or when two
    stages share a name (timings and progress are keyed by it)."""
    have = set(INITIAL_FIELDS)
    names: set[str] = set()
    for st in stages:
        if not st.name:
            raise InputError(f"stage {type(st).__name__} has no name")
        if st.name in names:
            raise InputError(f"two stages are named {st.name!r}")
        names.add(st.name)
        missing = [n for n in st.needs if n not in have]
        if missing:
            raise InputError(
                f"stage {st.name!r} needs {', '.join(missing)}, which no stage before it adds",
                hint="reorder the stages or turn on the stage that adds it",
            )
        have.update(st.adds)


def build_stages(options: IndexOptions, extra: Sequence[Stage] = ()) -> list[Stage]:
    """The stages ``options`` ask for, in order, then ``extra`` (e.g. a test's or a
    plugin's labeller, which runs after the built-in ones)."""
    stages = [cls() for cls in STAGES if cls.enabled(options)] + list(extra)
    check_order(stages)
    return stages
