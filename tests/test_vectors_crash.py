"""A save killed with SIGKILL at any point leaves the old or the new state, never a mix.

A child process opens a saved store, adds and removes vectors, and saves; a test
hook (``engine.vectors.sharded._SAVE_HOOK``) makes it SIGKILL itself after the Nth
file the save writes, renames or deletes. For every N the parent then opens the
folder and compares counts, ids and search results with the two legal states.
A second test kills a child that saves in a loop after seeded random delays.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.vectors import SearchParams, VectorSettings, VectorStore

REPO = Path(__file__).resolve().parents[1]
DIM = 16
SETTINGS = VectorSettings(dim=DIM, num_shards=2, flat_max=200, use_gpu="never")
# The same store with its refine rows in an append-only file (engine/vectors/vecfile.py):
# saves append to a file an older manifest still names, so kills must not mix those.
DISK_SETTINGS = VectorSettings(
    dim=DIM, num_shards=2, flat_max=200, use_gpu="never", approx_factory="IVF{nlist},PQ4x4fs,Refine(SQfp16@disk)"
)

CHILD = r"""
import os, signal, sys
import numpy as np
from engine.vectors import sharded
from engine.vectors import VectorSettings, VectorStore

path, kill_at, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
steps = []

def hook(name):
    steps.append(name)
    print(name, flush=True)
    if len(steps) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

sharded._SAVE_HOOK = hook

def vectors(seed, n):
    x = np.random.default_rng(seed).standard_normal((n, %(dim)d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

store = VectorStore.open(path)
if mode == "once":
    ids = np.arange(1000, 1100)
    store.add(ids, vectors(1, 100), ids)
    gone = np.arange(0, 40, 2)
    store.remove(gone, gone)
    store.save(2)
else:  # loop: save i adds 50 ids 1000+50i.. and removes ids 2i, 2i+1
    seq = store.applied_seq
    while True:
        seq += 1
        ids = np.arange(1000 + 50 * seq, 1050 + 50 * seq)
        store.add(ids, vectors(seq, 50), ids)
        gone = np.array([2 * seq, 2 * seq + 1])
        store.remove(gone, gone)
        store.save(seq)
        print("saved", seq, flush=True)
""" % {"dim": DIM}


def base_vectors() -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((600, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module", params=["in-ram", "refine-on-disk"])
def settings(request: pytest.FixtureRequest) -> VectorSettings:
    return SETTINGS if request.param == "in-ram" else DISK_SETTINGS


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, settings: VectorSettings) -> Path:
    """A saved store at applied_seq 1: 600 vectors, both shards approximate."""
    path = tmp_path_factory.mktemp("pristine") / "store"
    with VectorStore.create(path, settings) as store:
        ids = np.arange(600)
        store.add(ids, base_vectors(), ids)
        store.save(1)
        assert {s["kind"] for s in store.info()["shards"]} == {"approx"}
    return path


def run_child(path: Path, kill_at: int, mode: str = "once") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(kill_at), mode],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )


def snapshot(path: Path, settings: VectorSettings) -> dict:
    queries = base_vectors()[:50] + 0.01
    with VectorStore.open(path, expected=settings) as store:
        scores, ids = store.search(queries, SearchParams(k=10, nprobe=10_000))
        return {
            "seq": store.applied_seq,
            "count": store.count(),
            "ids": store.live_ids(),
            "scores": scores,
            "found": ids,
        }


def test_kill_at_every_save_step_leaves_old_or_new(pristine: Path, tmp_path: Path, settings: VectorSettings) -> None:
    old = snapshot(pristine, settings)
    full = tmp_path / "full"
    shutil.copytree(pristine, full)
    done = run_child(full, kill_at=10**6)
    assert done.returncode == 0, done.stderr
    steps = done.stdout.split()
    # two shard indexes + two tombstone files + the manifest + superseded files
    assert steps.count("manifest") == 1 and steps.count("shard-index") == 2 and "cleanup" in steps
    assert steps.count("shard-vectors") == (2 if settings is DISK_SETTINGS else 0)
    new = snapshot(full, settings)
    assert new["count"] == 600 + 100 - 20 and new["seq"] == 2

    seen = set()
    for kill_at in range(1, len(steps) + 1):
        trial = tmp_path / f"kill-{kill_at}"
        shutil.copytree(pristine, trial)
        result = run_child(trial, kill_at)
        assert result.returncode == -signal.SIGKILL, result.stderr
        state = snapshot(trial, settings)
        want = new if state["seq"] == 2 else old
        assert state["seq"] in (1, 2)
        assert state["count"] == want["count"]
        np.testing.assert_array_equal(state["ids"], want["ids"])
        np.testing.assert_array_equal(state["found"], want["found"])
        np.testing.assert_array_equal(state["scores"], want["scores"])
        seen.add(state["seq"])
        # the writable open in snapshot() removed whatever the dead save left behind
        names = sorted(p.name for p in trial.iterdir() if p.name not in ("manifest.json", ".lock"))
        assert all(not n.startswith(".") for n in names), names
    assert seen == {1, 2}, "kill points must cover both sides of the manifest write"


def test_kill_after_random_delays_never_mixes(pristine: Path, tmp_path: Path, settings: VectorSettings) -> None:
    rng = np.random.default_rng(7)
    path = tmp_path / "loop"
    shutil.copytree(pristine, path)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for round_no in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(10**9), "loop"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # Wait for the first completed save, then kill at a random moment after it.
        line = proc.stdout.readline() if proc.stdout else ""
        while line and not line.startswith("saved"):
            line = proc.stdout.readline()
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        with VectorStore.open(path, expected=settings) as store:
            seq = store.applied_seq
            assert seq >= 2, f"round {round_no}: no save completed"
            # The state of save `seq`: base ids minus 0..2*seq+1 (ids 0,1 are never
            # removed: seq starts at 2) plus the added blocks 1100.. up to seq.
            added = np.concatenate([np.arange(1000 + 50 * s, 1050 + 50 * s) for s in range(2, seq + 1)])
            removed = np.arange(4, 2 * seq + 2)
            want = np.sort(np.concatenate([np.setdiff1d(np.arange(600), removed), added]))
            np.testing.assert_array_equal(store.live_ids(), want)
            # and every added vector sits under its own id
            x = np.random.default_rng(seq).standard_normal((50, DIM)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            # k_factor: the disk variant's 4-sub-quantizer PQ base is too coarse to
            # rank an exact match into the default 8 candidates of k=1.
            _, found = store.search(x, SearchParams(k=1, nprobe=10_000, k_factor=200))
            np.testing.assert_array_equal(found[:, 0], np.arange(1000 + 50 * seq, 1050 + 50 * seq))
