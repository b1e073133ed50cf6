"""The optional JSONL metadata sidecar, joined to videos on ``source``.

Each line: ``{"source": ..., "title": ..., "description": ..., "tags": [...],
"people": [...], ...}``. Known fields go to catalog columns; every other field is
kept verbatim in ``extra``. A line matches a video when its ``source`` equals the
path as given, its resolved absolute path, or (when unambiguous) its file name.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InputError

__all__ = ["VideoMetadata", "Sidecar", "load_sidecar"]

_KNOWN = ("source", "title", "description", "tags", "people")


@dataclass
class VideoMetadata:
    title: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def text(self) -> str:
        """The catalogue text that the metadata block embeds."""
        parts = [self.title or "", self.description or "", ", ".join(self.tags), ", ".join(self.people)]
        return ". ".join(p for p in parts if p)


@dataclass
class Sidecar:
    by_source: dict[str, VideoMetadata] = field(default_factory=dict)
    by_abspath: dict[str, VideoMetadata] = field(default_factory=dict)
    by_name: dict[str, list[VideoMetadata]] = field(default_factory=dict)

    def lookup(self, source: str) -> VideoMetadata | None:
        if source in self.by_source:
            return self.by_source[source]
        ap = os.path.abspath(source)
        if ap in self.by_abspath:
            return self.by_abspath[ap]
        cands = self.by_name.get(os.path.basename(source), [])
        return cands[0] if len(cands) == 1 else None


def _str_list(value, *, path: Path, lineno: int, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise InputError(f"{path}:{lineno}: field {key!r} must be a string or a list of strings")


def load_sidecar(path: str | Path) -> Sidecar:
    """Parse a JSONL sidecar; a malformed line is an error naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"metadata file {path} does not exist", hint="pass an existing .jsonl file to --metadata")
    out = Sidecar()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict) or not isinstance(row.get("source"), str) or not row["source"]:
                raise InputError(f"{path}:{lineno}: each line must be an object with a non-empty string 'source'")
            for key in ("title", "description"):
                if row.get(key) is not None and not isinstance(row[key], str):
                    raise InputError(f"{path}:{lineno}: field {key!r} must be a string")
            meta = VideoMetadata(
                title=row.get("title"),
                description=row.get("description"),
                tags=_str_list(row.get("tags"), path=path, lineno=lineno, key="tags"),
                people=_str_list(row.get("people"), path=path, lineno=lineno, key="people"),
                extra={k: v for k, v in row.items() if k not in _KNOWN},
            )
            src = row["source"]
            out.by_source[src] = meta
            out.by_abspath[os.path.abspath(src)] = meta
            out.by_name.setdefault(os.path.basename(src), []).append(meta)
    return out
