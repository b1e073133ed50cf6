"""Terminal progress for ingest: draws the library's ``IngestEvent`` stream as tqdm bars
(one for the batch, by seconds of media, and one per worker for the video it analyses).

The batch bar counts seconds of media, not bytes: the time a video takes follows its
duration far more than its size (a 4K minute is many times the bytes of a 480p one),
so the rate reads as "x real time" and the ETA holds. A video's share moves with its
stage fractions and is settled when it is committed."""
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
        self._seconds: dict[str, float] = {}  # media seconds of each video in flight
        self._credited: dict[str, float] = {}  # of which the batch bar has counted so far

    def __call__(self, e: IngestEvent) -> None:
        if not self.show:
            return
        from tqdm.auto import tqdm

        if e.kind == "start":
            self._overall = tqdm(total=e.total_seconds, unit="s", unit_scale=False, desc="media",
                                 position=0, dynamic_ncols=True, file=self.file,
                                 bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of media"
                                            " [{elapsed}<{remaining}, {rate_fmt}{postfix}]")
            self._overall.set_postfix_str(f"0/{e.total} videos done")
        elif e.kind == "stage":
            bar = self._bars.get(e.worker)
            if bar is None:
                bar = self._bars[e.worker] = tqdm(total=100, position=len(self._bars) + 1, leave=False,
                                                  bar_format="{desc:<40.40} {percentage:3.0f}%|{bar}|",
                                                  file=self.file)
            bar.set_description_str(f"{os.path.basename(e.source or '')}: {e.stage}")
            bar.n = int(e.fraction * 100)
            bar.refresh()
            self._seconds.setdefault(e.source or "", e.seconds)
            self._credit(e.source, e.fraction)
        elif e.kind == "file" and self._overall is not None:
            self._seconds[e.source or ""] = e.seconds
            self._credit(e.source, 1.0)
            self._seconds.pop(e.source or "", None)
            self._credited.pop(e.source or "", None)
            self._overall.set_postfix_str(f"{e.done}/{e.total} videos done, {e.failed} failed")
        elif e.kind == "end":
            self.close()

    def _credit(self, source: str | None, fraction: float) -> None:
        """Move the batch bar to ``fraction`` of this video's seconds (never backwards)."""
        if self._overall is None or source is None or source not in self._seconds:
            return
        want = self._seconds[source] * min(max(fraction, 0.0), 1.0)
        got = self._credited.get(source, 0.0)
        room = self._overall.total - self._overall.n  # never past the end (a header's duration can be short)
        step = min(want - got, room)
        if step > 0:
            self._overall.update(step)
            self._credited[source] = got + step

    def close(self) -> None:
        for b in self._bars.values():
            b.close()
        self._bars = {}
        if self._overall is not None:
            self._overall.close()
            self._overall = None
