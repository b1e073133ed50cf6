"""Scene: indoors or outdoors, read zero-shot from each keyframe's visual vector
(``indexer.scene``); no decode and no model of its own."""
from __future__ import annotations

import logging

from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["SceneStage"]

log = logging.getLogger(__name__)


class SceneStage(Stage):
    name = "scene"
    needs = ("keyframe_vectors",)
    adds = ("frame_labels",)
    at = 0.62

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual and options.picture

    def applies(self, work: Work) -> bool:
        from indexer.scene import calibration_for

        if calibration_for(work.config.image_encoder, work.config.image_options) is None:
            log.debug("scene: no indoor/outdoor cut points measured for image encoder %r %s",
                      work.config.image_encoder, work.config.image_options)
            return False
        return bool(work.keyframe_vectors)

    def run(self, work: Work) -> None:
        from engine.models.registry import get_image_encoder
        from indexer.scene import scene_reader

        enc = get_image_encoder(work.config.image_encoder, **work.config.image_options)
        reader = scene_reader(work.config.image_encoder, enc)
        times = sorted(work.keyframe_vectors)
        for t, labels in zip(times, reader.labels([work.keyframe_vectors[t] for t in times])):
            if labels:
                work.frame_labels.setdefault(t, []).extend((kind, label, score, None) for kind, label, score in labels)
