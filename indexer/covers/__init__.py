"""Automatic covers: candidate frames, quality assessment, rendering, serving.

- ``quality``: :func:`assess_frame` (the contract other features call on many frames)
- ``candidates``: frames per shot, scored, K varied covers picked (MMR)
- ``render``: smart crop per aspect ratio, beautification, title templates
- ``faces`` (MTCNN, packaged ONNX), ``nsfw`` (NudeNet), ``saliency`` (spectral residual)
- ``service``: compute on first use, bandit choice, impressions and clicks

The bandit policies and the catalog persistence live in ``engine.covers``.
"""
from indexer.covers.quality import FrameAssessment, Thresholds, assess_frame, load_thresholds

__all__ = ["FrameAssessment", "Thresholds", "assess_frame", "load_thresholds"]
