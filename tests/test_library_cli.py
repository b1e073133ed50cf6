"""The Python library (``import vidseek``), the CLI's small things, the CLI going through
a running server, metadata updates on re-index, progress in media seconds and the
default worker count (issue 22)."""
from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from api.cli import main
from indexer.options import WORKER_RSS_BYTES, default_workers
from tests import synth

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-speech", "--no-ocr", "--quiet"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory, tools) -> list[Path]:
    d = tmp_path_factory.mktemp("lib_clips")
    return [synth.make_no_audio_clip(d, seconds=2.0 + i, name=f"clip{i}.mp4") for i in range(3)]


# -- small CLI things ----------------------------------------------------------------------
def test_version_and_did_you_mean(capsys):
    import vidseek

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"vidseek {vidseek.__version__}"
    with pytest.raises(SystemExit) as e:
        main(["serch", "x", "--index", "i"])
    assert e.value.code == 2
    assert "did you mean 'search'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["graph", "entitty", "x", "--index", "i"])  # a plugin's subcommand
    assert "did you mean 'entity'" in capsys.readouterr().err


def test_help_names_k_and_index(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    assert "how many moments to return" in out and "the index folder" in out


def test_index_of_missing_paths_creates_no_index(tmp_path, capsys):
    idx = tmp_path / "idx"
    assert main(["index", str(tmp_path / "nope.mp4"), "--index", str(idx), *FAST]) == 2
    assert not idx.exists()
    err = capsys.readouterr().err
    assert "nope.mp4" in err and "was not created" in err


def test_info_into_a_closed_pipe_ends_quietly(tmp_path, clips):
    idx = tmp_path / "idx"
    assert main(["index", str(clips[0]), "--index", str(idx), *FAST]) == 0
    r, w = os.pipe()
    os.close(r)  # the reader is gone before vidseek writes anything: every write is EPIPE
    try:
        p = subprocess.run([sys.executable, "-m", "api.cli", "info", "--index", str(idx)], stdout=w,
                           stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    finally:
        os.close(w)
    assert "Traceback" not in p.stderr.decode() and "BrokenPipeError" not in p.stderr.decode()
    assert p.returncode == 141


def test_plurals():
    from api.cli import _plural
    from api.cli_production import _plural as plural2

    assert _plural(1, "video") == "1 video" and _plural(2, "video") == "2 videos" and _plural(0, "hit") == "0 hits"
    assert plural2(1, "piece") == "1 piece" and plural2(3, "piece") == "3 pieces"


# -- metadata updates and the sidecar ----------------------------------------------------
def test_changed_metadata_reindexes_and_unmatched_lines_are_reported(tmp_path, clips, capsys):
    idx = tmp_path / "idx"
    side = tmp_path / "meta.jsonl"
    side.write_text(json.dumps({"source": str(clips[0]), "title": "Harbour", "tags": ["boat"]}) + "\n"
                    + json.dumps({"source": str(tmp_path / "typo.mp4"), "title": "nobody"}) + "\n")
    assert main(["index", str(clips[0]), str(clips[1]), "--index", str(idx), "--metadata", str(side), *FAST]) == 0
    out = capsys.readouterr().out
    assert "UNMATCHED metadata line" in out and "meta.jsonl:2" in out and "typo.mp4" in out
    assert "meta.jsonl:1" not in out
    # same files, same sidecar: nothing to do
    assert main(["index", str(clips[0]), "--index", str(idx), "--metadata", str(side), *FAST, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["by_status"] == {"skipped": 1}
    side.write_text(json.dumps({"source": str(clips[0]), "title": "Harbour", "tags": ["zeppelin"]}) + "\n")
    assert main(["index", str(clips[0]), "--index", str(idx), "--metadata", str(side), *FAST, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["by_status"] == {"replaced": 1} and summary["unmatched_metadata"] == []
    import vidseek

    with vidseek.Index.open(idx) as index:
        hits = index.search("tag:zeppelin")
        assert [h.source for h in hits] == [str(clips[0])]
        assert index.search("tag:boat").hits == []
    # without a sidecar the stored metadata is kept
    assert main(["index", str(clips[0]), "--index", str(idx), *FAST, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["by_status"] == {"skipped": 1}


# -- progress and workers -------------------------------------------------------------------
def test_progress_bar_counts_seconds_of_media():
    from api.progress import TerminalProgress
    from indexer.ingest import IngestEvent

    bars = TerminalProgress(show=True, file=io.StringIO())
    bars(IngestEvent("start", total=2, total_bytes=10**9, total_seconds=30.0))
    assert bars._overall.total == 30.0
    bars(IngestEvent("stage", source="a", stage="shots", fraction=0.5, seconds=10.0))
    assert bars._overall.n == pytest.approx(5.0)
    bars(IngestEvent("file", source="a", done=1, total=2, bytes=9 * 10**8, seconds=10.0))
    assert bars._overall.n == pytest.approx(10.0)  # not 9e8 bytes
    bars(IngestEvent("file", source="b", done=2, total=2, bytes=10**8, seconds=20.0))
    assert bars._overall.n == pytest.approx(30.0)
    bars.close()


def test_default_workers_follow_cores_and_memory():
    gib = 1024**3
    assert default_workers(cores=2, available_bytes=18 * gib) == 2
    assert default_workers(cores=8, available_bytes=gib + 2 * WORKER_RSS_BYTES) == 2  # memory decides
    assert default_workers(cores=4, available_bytes=gib // 2) == 1  # never below one
    assert default_workers() >= 1


# -- the library ------------------------------------------------------------------------------
def test_library_facade(tmp_path, clips):
    import vidseek
    from engine.errors import NotFoundError

    with pytest.raises(NotFoundError, match="not a vidseek index"):
        vidseek.Index.open(tmp_path / "none")
    with vidseek.Index.create(tmp_path / "idx") as index:
        assert len(index) == 0
        report = index.add([clips[0].parent], metadata={str(clips[1]): {"title": "Second", "tags": ["kite"],
                                                                        "people": ["Ada"], "licence": "CC0"}},
                           workers=1, speech=False, ocr=False)
        assert report.indexed == 3 and not report.failed and report.unmatched_metadata == []
        assert len(index) == 3
        res = index.search("tag:kite", k=5)
        assert isinstance(res, vidseek.SearchResult) and [h.source for h in res] == [str(clips[1])]
        hit = res.hits[0]
        assert isinstance(hit, vidseek.Hit) and hit.end > hit.start >= 0 and hit.title == "Second"
        v = index.video(hit.video_id)
        assert (v.title, v.tags, v.people, v.record.extra) == ("Second", ["kite"], ["Ada"], {"licence": "CC0"})
        again = asyncio.run(index.asearch("tag:kite"))
        assert [h.video_id for h in again] == [hit.video_id]
        clip = index.clip(hit.video_id, 0.5, 1.5, tmp_path / "c.mp4")
        assert Path(clip.path).is_file()
        covers = index.covers(hit.video_id, tmp_path / "covers", k=1)
        assert len(covers) == 1 and "score" in covers[0]
        written = sorted(p.name for p in (tmp_path / "covers").glob("*.jpg"))
        assert written == ([] if covers[0]["reject"] else ["cover0_16x9.jpg"])
        gone = index.delete(hit.video_id)
        assert gone.video_id == hit.video_id and len(index) == 2
        assert index.search("tag:kite").hits == []


def test_covers_cli_writes_no_jpeg_for_a_rejected_cover(tmp_path, tools, capsys):
    black = tmp_path / "black.mp4"
    synth._ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x120:r=10:d=3", *synth._X264, *synth._BITEXACT, str(black))
    idx = tmp_path / "idx"
    assert main(["index", str(black), "--index", str(idx), *FAST]) == 0
    capsys.readouterr()
    import vidseek

    vid = vidseek.Index.open(idx).videos()[0].video_id
    out = tmp_path / "covers"
    assert main(["covers", vid, "--index", str(idx), "--out", str(out), "--k", "2", "--aspects", "1:1"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "covers.json").read_text())
    assert report["covers"] and all(c["reject"] for c in report["covers"])  # every frame is black
    assert list(out.glob("*.jpg")) == []
    assert "no JPEG written" in printed
    assert all(c["files"] == {} for c in report["covers"])


def test_graph_entity_typo_gets_did_you_mean(tmp_path, clips, capsys):
    idx = tmp_path / "idx"
    side = tmp_path / "m.jsonl"
    side.write_text(json.dumps({"source": str(clips[0]), "people": ["Ada Lovelace"]}) + "\n")
    assert main(["index", str(clips[0]), "--index", str(idx), "--metadata", str(side), *FAST]) == 0
    capsys.readouterr()
    assert main(["graph", "entity", "Ada Lovelase", "--index", str(idx)]) == 1
    assert "did you mean 'Ada Lovelace'" in capsys.readouterr().err


# -- the CLI through a running server -------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running_server(tmp_path, clips):
    import uvicorn

    from api.app import Settings, create_app

    idx = tmp_path / "idx"
    assert main(["index", str(clips[0]), "--index", str(idx), *FAST]) == 0
    port = _free_port()
    settings = Settings(port=port, advertise=True, warm_models=False, ingest_speech=False, ingest_ocr=False)
    server = uvicorn.Server(uvicorn.Config(create_app(idx, settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    for _ in range(600):  # a cap, not a timing assertion
        if server.started and (idx / "server.json").exists():
            break
        time.sleep(0.05)
    assert (idx / "server.json").exists()

    def stop() -> None:
        server.should_exit = True
        t.join(60)

    yield idx, f"http://127.0.0.1:{port}", stop
    stop()


def test_cli_uses_the_running_server(running_server, clips, tmp_path, capsys):
    from vidseek.client import find_server

    idx, url, stop = running_server
    assert oct((idx / "server.json").stat().st_mode & 0o777) == "0o600"
    assert find_server(idx).url == url
    # index while serve runs: handed to the server, with the sidecar's metadata
    side = tmp_path / "m.jsonl"
    side.write_text(json.dumps({"source": str(clips[1]), "title": "Via server", "tags": ["handoff"]}) + "\n"
                    + json.dumps({"source": "nowhere.mp4"}) + "\n")
    rc = main(["index", str(clips[1]), "--index", str(idx), "--metadata", str(side), *FAST])
    cap = capsys.readouterr()
    assert rc == 0, cap
    assert "handing the files to it" in cap.err and f"through the server at {url}: indexed 1 video;" in cap.out
    assert "UNMATCHED metadata line" in cap.out and "nowhere.mp4" in cap.out
    assert main(["search", "tag:handoff", "--index", str(idx), "--json"]) == 0
    cap = capsys.readouterr()
    assert f"through the server at {url}" in cap.err
    hits = json.loads(cap.out)["hits"]
    assert [h["source"] for h in hits] == [os.path.abspath(clips[1])]
    # options the server cannot take are refused with a message, not ignored
    assert main(["index", str(clips[2]), "--index", str(idx), "--no-faces", *FAST]) == 2
    assert "--no-faces cannot be handed to the server" in capsys.readouterr().err
    # the first key: a note that local mode ends now
    from api import keys as keys_cli

    assert keys_cli.main(["create", "--index", str(idx), "--tenant", "default", "--scopes", "search"]) == 0
    err = capsys.readouterr().err
    assert f"the server running at {url}" in err and "leaves local single-user mode now" in err
    # the CLI still goes through it (owner token), and --no-server searches locally
    assert main(["search", "tag:handoff", "--index", str(idx), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"]
    assert main(["search", "tag:handoff", "--index", str(idx), "--json", "--no-server"]) == 0
    cap = capsys.readouterr()
    assert "through the server" not in cap.err and json.loads(cap.out)["hits"]
    stop()
    assert not (idx / "server.json").exists()  # removed when the server stops
    assert main(["search", "tag:handoff", "--index", str(idx), "--json"]) == 0
    assert "through the server" not in capsys.readouterr().err


def test_server_file_goes_with_the_server_and_a_stale_one_is_ignored(tmp_path, clips, capsys):
    from vidseek.client import SERVER_FILE, find_server

    idx = tmp_path / "idx"
    assert main(["index", str(clips[0]), "--index", str(idx), *FAST]) == 0
    (idx / SERVER_FILE).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2**22 + 12345,
                                               "owner_token": "x"}))
    assert find_server(idx) is None  # its pid is gone
    (idx / SERVER_FILE).write_text(json.dumps({"url": f"http://127.0.0.1:{_free_port()}", "pid": os.getpid(),
                                               "owner_token": "x"}))
    assert find_server(idx) is None  # nothing answers there
    capsys.readouterr()
    assert main(["search", "anything", "--index", str(idx), "--json"]) == 0
    assert "through the server" not in capsys.readouterr().err


def test_withdraw_removes_only_our_file(tmp_path):
    from api.discovery import advertise, withdraw
    from vidseek.client import read_server_file

    advertise(tmp_path, "0.0.0.0", 8123, "tok")
    info = read_server_file(tmp_path)
    assert info.url == "http://127.0.0.1:8123" and info.pid == os.getpid() and info.owner_token == "tok"
    withdraw(tmp_path)
    assert not (tmp_path / "server.json").exists()
    (tmp_path / "server.json").write_text(json.dumps({"url": "u", "pid": os.getpid() + 1}))
    withdraw(tmp_path)
    assert (tmp_path / "server.json").exists()  # another process's file stays


# -- install: ranges, constraints and the packaged models ----------------------------------
def _requirements():
    import tomllib

    from packaging.requirements import Requirement

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in meta["dependencies"]]
    for extra in meta["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def _constraints() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version
    return out


def test_constraints_pin_every_dependency_inside_its_range():
    from packaging.utils import canonicalize_name

    pins = _constraints()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no exact version in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}")
    names = {canonicalize_name(r.name) for r in _requirements()}
    assert "torch" not in names and "torchvision" not in names  # installed first by the setup scripts
    from api.cli_models import PACKAGED

    for p in PACKAGED:  # the --no-deps packages are pinned in both places
        name, _, version = p.pin.partition("==")
        assert pins[canonicalize_name(name)] == version


def test_default_dependencies_leave_out_torchvision_pullers():
    import tomllib

    from packaging.requirements import Requirement

    deps = {Requirement(r).name for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert not deps & {"timm", "open-clip-torch", "torchvision", "torch"}


def test_models_list_and_fetch(monkeypatch, capsys):
    import api.cli_models as cm

    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["package"] for r in rows} == {p.pin for p in cm.PACKAGED}
    real = cm.importlib.util.find_spec
    monkeypatch.setattr(cm.importlib.util, "find_spec", lambda name, *a: None if name in ("timm", "nudenet")
                        else real(name, *a))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "MISSING" in out and "timm==1.0.31" in out and "vidseek models fetch" in out
    assert main(["models", "fetch", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pip install --no-deps timm==1.0.31 nudenet==3.4.2" in out
    assert main(["models", "fetch", "--dry-run", "--required-only"]) == 0
    out = capsys.readouterr().out
    assert "timm==1.0.31" in out and "nudenet" not in out


def test_progress_bar_never_passes_its_total(recwarn):
    from api.progress import TerminalProgress
    from indexer.ingest import IngestEvent

    bars = TerminalProgress(show=True, file=io.StringIO())
    bars(IngestEvent("start", total=1, total_seconds=12.04))
    bars(IngestEvent("stage", source="a", stage="shots", fraction=0.5, seconds=12.04))
    bars(IngestEvent("file", source="a", done=1, total=1, seconds=13.0))  # the analysis found more than the header
    assert bars._overall.n == pytest.approx(12.04)
    bars.close()
    assert not [w for w in recwarn if "clamping" in str(w.message)]
