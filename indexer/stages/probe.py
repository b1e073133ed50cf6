"""Probe: container, streams, duration; refuses files over ``max_bytes``."""
from __future__ import annotations

import os

from engine.errors import MediaError
from indexer.stages.base import Stage, Work


class ProbeStage(Stage):
    name = "probe"
    needs = ("source",)
    adds = ("info", "mtime")
    at = 0.0

    def run(self, work: Work) -> None:
        from indexer import media

        work.mtime = os.stat(work.source).st_mtime
        info = media.probe(work.source)
        limit = work.options.max_bytes
        if limit is not None and info.size_bytes > limit:
            raise MediaError(
                f"{work.source} is {info.size_bytes} bytes, over the limit of {limit}",
                hint="raise --max-bytes or split the file",
            )
        work.info = info
