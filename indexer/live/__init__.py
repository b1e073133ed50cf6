"""Live ingest: index a stream that is still being written, window by window.

- ``indexer.live.sources``: growing files, local HLS playlists and chunk folders, copied
  into a spool as they grow; restarts, truncated chunks, loops and absences as events;
- ``indexer.live.window``: cut a window, run the mapper's stages on it, reconcile the
  words at the seams, keep its final part;
- ``indexer.live.runner``: the loop (``LiveRun``, ``run_live``): commit each window,
  resume after a kill, finalise at the end;
- ``indexer.live.reel``: a highlight reel of the best moments so far, kept up to date;
- ``indexer.live.replay``: a writer that replays a clip as a growing stream (tests,
  benchmarks, demos).

See docs/live.md.
"""
from indexer.live.runner import FINALISE_MODES, LiveOptions, LiveReport, LiveRun, OwnWriter, run_live
from indexer.live.sources import LiveEvent, open_source, source_kind, spool_dir

__all__ = ["LiveOptions", "LiveReport", "LiveRun", "OwnWriter", "run_live", "FINALISE_MODES", "LiveEvent",
           "open_source", "source_kind", "spool_dir"]
