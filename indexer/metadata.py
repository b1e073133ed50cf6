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

    def as_dict(self) -> dict:
        """The fields as a sidecar line has them (without ``source``)."""
        return {"title": self.title, "description": self.description, "tags": list(self.tags),
                "people": list(self.people), "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "metadata") -> "VideoMetadata":
        """From ``{"title", "description", "tags", "people", "extra"}`` (each optional;
        any other key is a free field, as in a sidecar line); bad types raise InputError
        naming ``where`` and the field."""
        if not isinstance(d, dict):
            raise InputError(f"{where} must be a JSON object")
        for key in ("title", "description"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise InputError(f"{where}: field {key!r} must be a string")
        extra = d.get("extra") or {}
        if not isinstance(extra, dict):
            raise InputError(f"{where}: field 'extra' must be an object of free fields")
        extra = {**{k: v for k, v in d.items() if k not in (*_KNOWN, "extra")}, **extra}
        return cls(title=d.get("title"), description=d.get("description"),
                   tags=_str_list(d.get("tags"), where=where, key="tags"),
                   people=_str_list(d.get("people"), where=where, key="people"), extra=extra)

    @classmethod
    def of_record(cls, rec) -> "VideoMetadata":
        """The metadata a catalog ``VideoRecord`` holds."""
        return cls(rec.title, rec.description, list(rec.tags or []), list(rec.people or []), dict(rec.extra or {}))

    def differs_from(self, rec) -> bool:
        """Whether committing this metadata would change what ``rec`` (a ``VideoRecord``) stores."""
        return self.as_dict() != VideoMetadata.of_record(rec).as_dict()

    def text(self) -> str:
        """The catalogue text that the metadata block embeds."""
        parts = [self.title or "", self.description or "", ", ".join(self.tags), ", ".join(self.people)]
        return ". ".join(p for p in parts if p)


@dataclass
class Sidecar:
    by_source: dict[str, VideoMetadata] = field(default_factory=dict)
    by_abspath: dict[str, VideoMetadata] = field(default_factory=dict)
    by_name: dict[str, list[VideoMetadata]] = field(default_factory=dict)
    lines: dict[int, str] = field(default_factory=dict)  # id(meta) -> "FILE:LINE source"
    matched: set[int] = field(default_factory=set)  # id(meta) of the lines lookup() returned

    def lookup(self, source: str) -> VideoMetadata | None:
        meta = self._find(source)
        if meta is not None:
            self.matched.add(id(meta))
        return meta

    def _find(self, source: str) -> VideoMetadata | None:
        if source in self.by_source:
            return self.by_source[source]
        ap = os.path.abspath(source)
        if ap in self.by_abspath:
            return self.by_abspath[ap]
        cands = self.by_name.get(os.path.basename(source), [])
        return cands[0] if len(cands) == 1 else None

    @classmethod
    def from_mapping(cls, rows: "dict[str, dict]") -> "Sidecar":
        """A sidecar from ``{source: {"title", "description", "tags", "people", ...}}``
        (the library's ``Index.add(metadata=...)``), validated like a file's lines."""
        out = cls()
        for src, row in rows.items():
            if not isinstance(src, str) or not src:
                raise InputError(f"metadata key {src!r} is not a source path")
            meta = VideoMetadata.from_dict(dict(row), where=f"metadata[{src!r}]")
            out.lines[id(meta)] = f"metadata[{src!r}]"
            out.by_source[src] = meta
            out.by_abspath[os.path.abspath(src)] = meta
            out.by_name.setdefault(os.path.basename(src), []).append(meta)
        return out

    def unmatched(self) -> list[str]:
        """The lines (``FILE:LINE: source``) that no looked-up file matched: a typo'd
        path, a file not given to this run, a name shared by several files."""
        return [where for key, where in self.lines.items() if key not in self.matched]


def _str_list(value, *, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise InputError(f"{where}: field {key!r} must be a string or a list of strings")


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
                tags=_str_list(row.get("tags"), where=f"{path}:{lineno}", key="tags"),
                people=_str_list(row.get("people"), where=f"{path}:{lineno}", key="people"),
                extra={k: v for k, v in row.items() if k not in _KNOWN},
            )
            src = row["source"]
            out.lines[id(meta)] = f"{path}:{lineno}: {src}"
            out.by_source[src] = meta
            out.by_abspath[os.path.abspath(src)] = meta
            out.by_name.setdefault(os.path.basename(src), []).append(meta)
    return out
