"""On-screen text: RapidOCR on the keyframes that the text-likelihood gate lets through,
reading the boxes the gate's detector found (``indexer.ocr``); words the reader ran
together are split back (``indexer.ocr_words``)."""
from __future__ import annotations

from engine.config import IndexConfig
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work


class OcrStage(Stage):
    name = "ocr"
    needs = ("frames",)
    adds = ("keyframe_text", "keyframe_lines")
    at = 0.45

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.ocr

    def model(self, config: IndexConfig) -> str | None:
        return "PP-OCRv4 (RapidOCR)"

    def set_threads(self, threads: int) -> None:
        from indexer import ocr

        ocr.set_num_threads(threads)  # ONNX Runtime ignores OMP_NUM_THREADS

    def run(self, work: Work) -> None:
        from indexer import ocr
        from indexer.ocr_words import respace

        shapes = {t: f.shape[:2] for t, f in work.frames}
        for t, lines in ocr.ocr_frames(work.frames, reuse_boxes=not work.options.ocr_small_text):
            texts = [respace(line.text) for line in lines]
            work.keyframe_text[t] = " ".join(texts)
            h, w = shapes.get(t, (1, 1))
            work.keyframe_lines[t] = [(text, ln.bounds(w, h)) for text, ln in zip(texts, lines)]
