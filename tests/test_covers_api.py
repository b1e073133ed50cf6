"""Covers over HTTP and the CLI: the chosen cover with its impression, the variants'
scores and reasons, click feedback that survives a restart, tenancy, signed links."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from api.app import Settings, create_app  # noqa: E402
from api.auth import KeyStore, service_db_path  # noqa: E402
from tests import synth  # noqa: E402


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def env(tmp_path_factory, tools, visual_image):
    """An index of two real-ish clips of tenant alpha (a face photo held 3 s, and
    FFmpeg test sources with cuts), keys for alpha and beta."""
    from indexer.pipeline import IndexOptions, index_paths

    base = tmp_path_factory.mktemp("covers_api")
    face = base / "face.mp4"
    synth._ffmpeg("-loop", "1", "-i", str(visual_image), "-t", "3", "-r", "10", "-vf", "scale=512:-2",
                  *synth._X264, *synth._BITEXACT, str(face))
    cuts, _ = synth.make_cuts_clip(base, size=(320, 240))
    idx = base / "index"
    report = index_paths([str(face), str(cuts)], idx, options=IndexOptions(tenant="alpha", speech=False, ocr=False))
    assert not report.failed, report.summary()
    store = KeyStore(service_db_path(idx))
    a_key, _ = store.create("alpha", "search")
    b_key, _ = store.create("beta", "search")
    store.close()
    from engine.catalog import Catalog

    cat = Catalog(idx / "catalog.sqlite", read_only=True)
    vids = {Path(v.source).name: v.video_id for v in cat.list_videos()}
    cat.close()
    return {"idx": idx, "A": _bearer(a_key), "B": _bearer(b_key), "face": vids["face.mp4"],
            "cuts": vids["cuts.mp4"]}


def _app(idx: Path):
    return create_app(idx, Settings(rate=0, warm_models=False))


def test_cover_feedback_and_restart(env):
    idx, A, B, vid = env["idx"], env["A"], env["B"], env["face"]
    with TestClient(_app(idx)) as c:
        r = c.get(f"/v1/videos/{vid}/cover", headers=A)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/jpeg" and r.headers["cache-control"] == "no-store"
        im = Image.open(io.BytesIO(r.content))
        assert im.format == "JPEG" and abs(im.width / im.height - 16 / 9) < 0.02
        variant, imp = int(r.headers["x-cover-variant"]), r.headers["x-cover-impression"]
        assert r.headers["x-cover-policy"] == "thompson"
        assert (idx / "covers" / vid).is_dir()

        j = c.get(f"/v1/videos/{vid}/covers", headers=A).json()
        assert j["video_id"] == vid and j["variants"]
        for v in j["variants"]:
            assert 0 <= v["score"] <= 1 and v["reasons"] and "sharpness" in v["parts"]
            assert 0 < v["bandit"]["posterior_mean_ctr"] < 1
        served = next(v for v in j["variants"] if v["variant_id"] == variant)
        assert served["impressions"] == 1 and served["clicks"] == 0

        r = c.post("/v1/feedback", headers=A, json={"impression": imp})
        assert r.status_code == 200, r.text
        assert r.json() == {"recorded": True, "impression": imp, "variant_id": variant, "clicks": 1,
                            "impressions": 1}
        assert c.post("/v1/feedback", headers=A, json={"impression": imp}).json()["recorded"] is False

        # Another tenant sees neither the video nor the impression.
        assert c.get(f"/v1/videos/{vid}/cover", headers=B).status_code == 404
        r = c.post("/v1/feedback", headers=B, json={"impression": imp})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    # A new app on the same index (a restart) reads back what was committed.
    with TestClient(_app(idx)) as c:
        j = c.get(f"/v1/videos/{vid}/covers", headers=A).json()
        served = next(v for v in j["variants"] if v["variant_id"] == variant)
        assert served["impressions"] == 1 and served["clicks"] == 1
        pol = j["policy"]
        prior_alpha = pol["base_ctr"] * (0.5 + served["score"]) * pol["prior_strength"]
        assert served["bandit"]["alpha"] == pytest.approx(prior_alpha + 1)  # the click moved the posterior


def test_covers_report_the_posterior_the_policy_samples(env):
    """GET /covers reports the Beta posterior that Thompson sampling draws from, clamps
    included. With a base rate so low that every prior mean is under the policy's floor
    (0.001), the route used to report the unclamped prior (alpha 0.0005..0.0015 instead
    of 0.01 before clicks)."""
    from engine.covers import ArmState, ThompsonSampling, beta_params
    from indexer.covers.service import CoverService

    idx, A, vid = env["idx"], env["A"], env["face"]
    th = ThompsonSampling(prior_strength=10.0, base_ctr=1e-4)
    with TestClient(_app(idx)) as c:
        svc = c.app.state.svc
        svc.cover_service = CoverService(idx, thompson=th)  # the state closes it at shutdown
        j = c.get(f"/v1/videos/{vid}/covers", headers=A).json()
        assert j["policy"]["base_ctr"] == 1e-4 and j["variants"]
        arms = svc.covers().store.arm_states(svc.covers().store.variants(
            svc.index().catalog.get_video(vid).key))
        for v, arm in zip(j["variants"], arms):
            bandit = v["bandit"]
            assert bandit["alpha"] == pytest.approx(1e-3 * 10 + v["clicks"])  # the floor of the prior mean
            assert (bandit["alpha"], bandit["beta"]) == pytest.approx(beta_params(arm, 10.0, 1e-4))
            assert (bandit["alpha"], bandit["beta"]) == pytest.approx(
                beta_params(ArmState(v["score"], v["impressions"], v["clicks"]), 10.0, 1e-4))
            assert bandit["posterior_mean_ctr"] == pytest.approx(bandit["alpha"] / (bandit["alpha"] + bandit["beta"]))


def test_context_aspect_signed_link_and_errors(env):
    idx, A, vid = env["idx"], env["A"], env["cuts"]
    with TestClient(_app(idx)) as c:
        r = c.get(f"/v1/videos/{vid}/cover", headers=A,
                  params={"context": "colourful test pattern", "aspect": "3:4", "user": "u7"})
        assert r.status_code == 200, r.text
        assert r.headers["x-cover-policy"] == "linucb"
        im = Image.open(io.BytesIO(r.content))
        assert abs(im.width / im.height - 3 / 4) < 0.02

        # The page's way: a signed link from a search hit instead of a key.
        t = c.app.state.svc.signer.sign("alpha", vid)
        r = c.get(f"/v1/videos/{vid}/cover", params={"t": t})
        assert r.status_code == 200
        imp = r.headers["x-cover-impression"]
        r = c.post("/v1/feedback", json={"impression": imp, "video_id": vid, "t": t})
        assert r.status_code == 200 and r.json()["recorded"] is True
        other = c.app.state.svc.signer.sign("alpha", env["face"])
        r = c.post("/v1/feedback", json={"impression": imp, "video_id": env["face"], "t": other})
        assert r.status_code == 404  # a link for one video cannot click another's impression

        # A click that names the variant attaches to its latest unclicked impression.
        r = c.get(f"/v1/videos/{vid}/cover", headers=A, params={"policy": "best_quality"})
        v = int(r.headers["x-cover-variant"])
        r = c.post("/v1/feedback", headers=A, json={"video_id": vid, "variant_id": v})
        assert r.status_code == 200 and r.json()["variant_id"] == v

        assert c.get(f"/v1/videos/{vid}/cover", headers=A, params={"policy": "greedy"}).status_code == 400
        assert c.get(f"/v1/videos/{vid}/cover", headers=A, params={"aspect": "0:9"}).status_code == 400
        assert c.get("/v1/videos/vnope/cover", headers=A).status_code == 404
        r = c.post("/v1/feedback", headers=A, json={})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_input"
        assert c.get(f"/v1/videos/{vid}/cover").status_code == 401  # keys exist: no local mode


def test_cli_writes_covers_and_scores(env, tmp_path):
    from api.cli import main

    out = tmp_path / "out"
    rc = main(["covers", env["face"], "--index", str(env["idx"]), "--out", str(out), "--k", "2",
               "--aspects", "16:9,1:1", "--title", "海军少将 Grace Hopper", "--template",
               str(Path(__file__).resolve().parents[1] / "indexer" / "covers" / "templates" / "default.json")])
    assert rc == 0
    report = json.loads((out / "covers.json").read_text())
    assert 1 <= len(report["covers"]) <= 2 and report["candidates"]
    for cover in report["covers"]:
        assert cover["variant_id"] >= 1 and cover["reasons"]
        for aspect, path in cover["files"].items():
            w, h = (int(x) for x in aspect.split(":"))
            im = Image.open(path)
            assert abs(im.width / im.height - w / h) < 0.02
    assert main(["covers", "vnope", "--index", str(env["idx"]), "--out", str(out)]) == 1
    assert main(["covers", env["face"], "--index", str(env["idx"]), "--out", str(out), "--aspects", "wide"]) == 2
