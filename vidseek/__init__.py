"""vidseek as a Python library: multimodal semantic search for video libraries.

    import vidseek

    with vidseek.Index("idx") as index:
        index.add(["footage/"], metadata="footage.jsonl")
        for hit in index.search("a red boat leaving the harbour", k=5):
            print(hit.source, hit.start, hit.end, hit.score)

``Index`` opens or creates an index folder, adds files and folders with their
metadata, searches (text, image, filters), deletes, and makes covers and clips;
``asearch``/``aadd`` run the same on a thread for asyncio. ``Client`` talks to a
running ``vidseek serve``. See docs/library.md.
"""
from __future__ import annotations

from vidseek.client import ServerClient as Client
from vidseek.client import ServerError
from vidseek.index import AddReport, Hit, Index, SearchResult, Video
from vidseek.version import __version__

__all__ = ["Index", "Hit", "SearchResult", "Video", "AddReport", "Client", "ServerError", "__version__"]
