"""Terminal progress for ingest: draws the library's ``IngestEvent`` stream as tqdm bars
(one for the batch, by bytes, and one per worker for the video it analyses)."""
from __future__ import annotations

import os
import sys

from indexer.ingest import IngestEvent

__all__ = ["TerminalProgress"]


class TerminalProgress:
    """Call it with each event; ``close()`` (or the ``end`` event) removes the bars.
    ``show=False`` draws nothing, so callers need not branch."""

    def __init__(self, show: bool = True, file=None) -> None:
        self.show = show
        self.file = file or sys.stderr
        self._overall = None
        self._bars: dict[int, object] = {}

    def __call__(self, e: IngestEvent) -> None:
        if not self.show:
            return
        from tqdm.auto import tqdm

        if e.kind == "start":
            self._overall = tqdm(total=e.total_bytes, unit="B", unit_scale=True, desc="videos", position=0,
                                 dynamic_ncols=True, file=self.file)
            self._overall.set_postfix_str(f"0/{e.total} done")
        elif e.kind == "stage":
            bar = self._bars.get(e.worker)
            if bar is None:
                bar = self._bars[e.worker] = tqdm(total=100, position=len(self._bars) + 1, leave=False,
                                                  bar_format="{desc:<40.40} {percentage:3.0f}%|{bar}|",
                                                  file=self.file)
            bar.set_description_str(f"{os.path.basename(e.source or '')}: {e.stage}")
            bar.n = int(e.fraction * 100)
            bar.refresh()
        elif e.kind == "file" and self._overall is not None:
            self._overall.update(e.bytes)
            self._overall.set_postfix_str(f"{e.done}/{e.total} done, {e.failed} failed")
        elif e.kind == "end":
            self.close()

    def close(self) -> None:
        for b in self._bars.values():
            b.close()
        self._bars = {}
        if self._overall is not None:
            self._overall.close()
            self._overall = None
