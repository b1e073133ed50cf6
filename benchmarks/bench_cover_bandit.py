"""Offline evaluation of the cover bandits: a simulation with user segments whose
click probabilities depend on cover content, and a replay estimator over a logged
stream, as Netflix describes for artwork personalisation.

World
    ``--videos`` videos with ``--k`` covers each. Every cover has a content embedding
    (a random unit vector in a ``--dim``-d space, the stand-in for the visual
    embedding) and a quality score in [0.3, 0.9]. ``--segments`` user segments each
    have a taste vector; a user's context vector is their segment's taste plus noise
    (the stand-in for the embedding of their recent searches). The click probability
    of a user of segment s on cover c of video v is
    ``sigmoid(base_v + gamma * cos(taste_s, e_c) + eta * (quality_c - 0.5))``, so the
    best cover differs by segment, and quality helps a little for everyone.

Live comparison
    One event stream (video, segment, context, and a uniform number that decides the
    click: a click happens when it is below the chosen cover's probability) is
    replayed for every policy, so they differ only by their choices: random, fixed
    best-quality, Thompson sampling (quality prior) and LinUCB (context features
    ``[1, cos(u, e_1..K)]``). Each keeps one bandit per video, as the service does.
    Reported: cumulative CTR and cumulative expected regret against the oracle that
    knows every probability.

Replay (offline) evaluation
    A second stream is logged with a uniformly random policy (propensity 1/K). The
    rejection-sampling replay of Li et al. (WSDM 2011) walks the log, asks the policy
    for its choice, and keeps the event (reward and learning update) only when it
    matches the logged cover; its CTR estimate is unbiased for a uniform logger. For
    the two fixed policies the inverse-propensity (IPS) estimate is given too. Both
    are compared with each policy's true CTR on the live stream.

Run: ``python -m benchmarks.bench_cover_bandit [--events 40000]``; writes
``bench-results/cover_bandit.json`` and ``cover_bandit.png``. About a minute.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.core import add_out, entry_parser, write_json
from engine.covers import ArmState, BestQuality, LinUCB, RandomPolicy, ThompsonSampling, context_features, update_arm

__all__ = ["World", "make_world", "run_live", "replay", "main"]


@dataclass
class World:
    """The simulated catalogue and audience."""

    emb: np.ndarray  # (V, K, d) unit cover embeddings
    quality: np.ndarray  # (V, K)
    base: np.ndarray  # (V,) logit of the base click rate
    taste: np.ndarray  # (S, d) unit segment tastes
    seg_p: np.ndarray  # (S,) segment shares
    gamma: float
    eta: float
    noise: float

    def ctr(self, v: int, s: int) -> np.ndarray:
        logit = self.base[v] + self.gamma * (self.emb[v] @ self.taste[s]) + self.eta * (self.quality[v] - 0.5)
        return 1.0 / (1.0 + np.exp(-logit))


def make_world(rng: np.random.Generator, videos: int, k: int, dim: int, segments: int,
               gamma: float = 3.0, eta: float = 1.0, noise: float = 0.3) -> World:
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    return World(
        emb=unit(rng.normal(size=(videos, k, dim))),
        quality=rng.uniform(0.3, 0.9, size=(videos, k)),
        base=np.log(0.06 / 0.94) + rng.normal(0, 0.3, size=videos),
        taste=unit(rng.normal(size=(segments, dim))),
        seg_p=rng.dirichlet(np.ones(segments) * 3),
        gamma=gamma, eta=eta, noise=noise,
    )


def make_stream(world: World, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    v = rng.integers(world.emb.shape[0], size=n)
    s = rng.choice(len(world.seg_p), size=n, p=world.seg_p)
    u = world.taste[s] + rng.normal(0, world.noise, size=(n, world.taste.shape[1]))
    return {"video": v, "segment": s, "context": u, "coin": rng.random(n)}


def _policies() -> dict:
    ts = ThompsonSampling(propensity_draws=16)
    return {"random": RandomPolicy(), "best_quality": BestQuality(), "thompson": ts,
            "linucb": LinUCB(alpha=0.5, fallback=ts)}


def _fresh_arms(world: World) -> list[list[ArmState]]:
    return [[ArmState(quality=float(q)) for q in world.quality[v]] for v in range(world.emb.shape[0])]


def run_live(world: World, stream: dict, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Every policy on the same stream: per event the click (0/1) and the expected regret."""
    out = {}
    n = len(stream["video"])
    for name, pol in _policies().items():
        rng = np.random.default_rng(seed)
        arms = _fresh_arms(world)
        clicks = np.zeros(n, dtype=np.int8)
        regret = np.zeros(n)
        for i in range(n):
            v, s = int(stream["video"][i]), int(stream["segment"][i])
            x = context_features(stream["context"][i], world.emb[v]) if name == "linucb" else None
            c = pol.choose(arms[v], x, rng)
            p = world.ctr(v, s)
            r = float(stream["coin"][i] < p[c.arm])
            update_arm(arms[v][c.arm], x, r)
            clicks[i] = int(r)
            regret[i] = p.max() - p[c.arm]
        out[name] = {"clicks": clicks, "regret": regret}
    return out


def replay(world: World, log: dict, seed: int) -> dict[str, dict]:
    """Rejection-sampling replay and IPS estimates over a uniformly random log."""
    k = world.emb.shape[1]
    n = len(log["video"])
    results = {}
    for name, pol in _policies().items():
        rng = np.random.default_rng(seed)
        arms = _fresh_arms(world)
        kept = clicks = 0
        ips = 0.0
        for i in range(n):
            v = int(log["video"][i])
            a_log, r = int(log["arm"][i]), float(log["reward"][i])
            x = context_features(log["context"][i], world.emb[v]) if name == "linucb" else None
            c = pol.choose(arms[v], x, rng)
            if c.arm == a_log:
                kept += 1
                clicks += r
                ips += r * k  # reward / propensity (1/K)
                update_arm(arms[v][c.arm], x, r)
        results[name] = {"replay_ctr": clicks / max(1, kept), "matched_events": kept,
                         "ips_ctr": ips / n if name in ("random", "best_quality") else None}
    return results


def plot(live: dict, oracle: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    skip = 200  # the first events' CTR is noise over a handful of clicks
    for name, r in live.items():
        t = np.arange(1, len(r["clicks"]) + 1)
        a1.plot(t[skip:], (np.cumsum(r["clicks"]) / t)[skip:], label=name)
        a2.plot(t, np.cumsum(r["regret"]), label=name)
    a1.axhline(oracle, color="grey", ls="--", lw=1, label="oracle")
    a1.set_xlabel("events")
    a1.set_ylabel("cumulative CTR")
    a1.set_ylim(0, oracle * 1.25)
    a1.grid(alpha=0.3)
    a1.legend()
    a2.set_xlabel("events")
    a2.set_ylabel("cumulative expected regret (clicks)")
    a2.grid(alpha=0.3)
    a2.legend()
    fig.suptitle("Cover policies on one simulated stream (same users, same coin flips)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = entry_parser("bench_cover_bandit", __doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--logged", type=int, default=40_000, help="events in the uniformly random log")
    ap.add_argument("--seed", type=int, default=0)
    add_out(ap, Path("bench-results") / "cover_bandit.json", "the JSON result (the PNG beside it)")
    args = ap.parse_args(argv)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    world = make_world(rng, args.videos, args.k, args.dim, args.segments)
    stream = make_stream(world, rng, args.events)
    live = run_live(world, stream, args.seed)
    oracle = float(np.mean([world.ctr(int(v), int(s)).max() for v, s in zip(stream["video"], stream["segment"])]))

    log = make_stream(world, rng, args.logged)
    log["arm"] = rng.integers(args.k, size=args.logged)
    log["reward"] = np.array([float(c < world.ctr(int(v), int(s))[a]) for v, s, a, c in
                              zip(log["video"], log["segment"], log["arm"], log["coin"])])
    rep = replay(world, log, args.seed)

    summary = {"settings": vars(args) | {"out": str(args.out)}, "oracle_ctr": oracle, "policies": {}}
    last = args.events // 4
    for name, r in live.items():
        summary["policies"][name] = {
            "ctr": float(r["clicks"].mean()),
            "ctr_last_quarter": float(r["clicks"][-last:].mean()),
            "expected_ctr": float(np.mean(r["regret"] * -1) + oracle),
            "cumulative_regret": float(r["regret"].sum()),
            **rep[name],
        }
    summary["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(live, oracle, args.out.with_suffix(".png"))
    write_json(args.out, summary)
    print(f"oracle CTR {oracle:.4f}")
    print(f"{'policy':13s} {'CTR':>7s} {'last 1/4':>8s} {'regret':>8s} {'replay CTR':>10s} {'matched':>8s} "
          f"{'IPS CTR':>8s}")
    for name, p in summary["policies"].items():
        ips = f"{p['ips_ctr']:.4f}" if p["ips_ctr"] is not None else "-"
        print(f"{name:13s} {p['ctr']:7.4f} {p['ctr_last_quarter']:8.4f} {p['cumulative_regret']:8.0f} "
              f"{p['replay_ctr']:10.4f} {p['matched_events']:8d} {ips:>8s}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
