"""Visual: one image-encoder pass per keyframe gives its vector and its top labels."""
from __future__ import annotations

from engine.config import IndexConfig
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work


class VisualStage(Stage):
    name = "visual"
    needs = ("frames",)
    adds = ("keyframe_vectors", "keyframe_labels")
    at = 0.3

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual

    def model(self, config: IndexConfig) -> str | None:
        return config.image_encoder

    def set_threads(self, threads: int) -> None:
        from engine.models import imagenet

        # The ImageNet encoders (the timeline's one-a-second frames use the same one);
        # a user's open_clip model runs on torch, which set_threads bounds already.
        imagenet.set_num_threads(threads)

    def run(self, work: Work) -> None:
        from engine.models.registry import get_image_encoder

        enc = get_image_encoder(work.config.image_encoder, **work.config.image_options)
        rgb = [f for _, f in work.frames]
        top = work.options.visual_labels
        if hasattr(enc, "encode_with_labels"):  # one classifier pass for both
            vecs, labels = enc.encode_with_labels(rgb, top=top)
        else:
            vecs = enc.encode_images(rgb)
            labels = enc.labels(rgb, top=top)
        for (t, _), v, lab in zip(work.frames, vecs, labels):
            work.keyframe_vectors[t] = v
            work.keyframe_labels[t] = [[name, round(float(p), 4)] for name, p in lab]
