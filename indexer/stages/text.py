"""Text embeddings: per segment its transcript and its keyframes' on-screen text, and the
video's metadata, in one batch through the index's text encoder."""
from __future__ import annotations

import numpy as np

from engine.config import IndexConfig
from indexer.stages.base import Stage, Work


SAME_LINE = 0.75  # difflib ratio at which two reads are one line (a misread letter or space)


def _read_before(line: str, known: list[str]) -> bool:
    """Whether ``line`` is a read of one of the ``known`` lines, give or take a misread
    letter or a lost space ("Kaving fun?" of "Having fun?"): a second read of the same text
    adds only noise to the segment's words."""
    from difflib import SequenceMatcher

    low = line.lower()
    return any(low in k.lower() or SequenceMatcher(None, low, k.lower()).ratio() >= SAME_LINE for k in known)


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
            for t, lines in sorted(work.opening_text.items()):  # a title card before the keyframes
                if s.start <= t < s.end:
                    known = [text for k in work.keyframe_times(s) for text, _ in work.keyframe_lines.get(k, [])]
                    seen += [ln for ln in lines if not _read_before(ln, known)]
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
