"""Text embeddings: per segment its transcript and its keyframes' on-screen text, and the
video's metadata, in one batch through the index's text encoder."""
from __future__ import annotations

import numpy as np

from engine.config import IndexConfig
from indexer.stages.base import Stage, Work


class TextEmbedStage(Stage):
    name = "text_embed"
    needs = ("segments",)
    adds = ("ocr_texts", "segment_vectors")
    at = 0.9

    def model(self, config: IndexConfig) -> str | None:
        return config.text_encoder

    def run(self, work: Work) -> None:
        from engine.models.registry import get_text_encoder

        enc = get_text_encoder(work.config.text_encoder)
        n = len(work.segments)
        transcripts = work.transcripts or [""] * n
        ocr_texts = []
        for s in work.segments:
            seen: list[str] = []
            for t in work.keyframe_times(s):
                txt = work.keyframe_text.get(t, "")
                if txt and txt not in seen:
                    seen.append(txt)
            ocr_texts.append(" ".join(seen))
        to_embed = [t for t in transcripts if t.strip()] + [t for t in ocr_texts if t.strip()]
        meta_text = work.meta.text() if work.meta else ""
        if meta_text:
            to_embed.append(meta_text)
        emb = enc.encode(to_embed) if to_embed else np.zeros((0, enc.info.dim), np.float32)
        it = iter(emb)
        speech_vecs = [next(it) if t.strip() else None for t in transcripts]
        ocr_vecs = [next(it) if t.strip() else None for t in ocr_texts]
        meta_vec = next(it) if meta_text else None
        work.ocr_texts = ocr_texts
        work.segment_vectors = []
        for sv, ov in zip(speech_vecs, ocr_vecs):
            vectors: dict[str, np.ndarray] = {}
            if sv is not None:
                vectors["speech"] = sv
            if ov is not None:
                vectors["ocr"] = ov
            if meta_vec is not None:
                vectors["metadata"] = meta_vec
            work.segment_vectors.append(vectors)
