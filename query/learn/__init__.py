"""Learning from use: search feedback, a click model, and a learned ranking that goes
live only when it is at least as good as what serves now (docs/learning.md).

``store`` (feedback events, SQLite WAL), ``clickmodel`` (position-bias-corrected
relevance), ``features`` and ``collect`` (what the planner's stages know about each
candidate), ``train`` (the linear ranker and the safety gate), ``ranker`` (models and
the live pointer), ``interleave`` (team-draft interleaving), ``serve`` (the Searcher's
ranking hook), ``retrain`` and ``service`` (the command and the service's schedule).
"""
from query.learn.clickmodel import Relevance, Session, fit_pbm, naive_ctr, propensities
from query.learn.config import LearnConfig, load_config
from query.learn.features import FEATURES, QueryCandidates
from query.learn.interleave import Tally, credit, team_draft
from query.learn.ranker import DEFAULT_VERSION, LinearRanker, ModelStore
from query.learn.store import EVENT_KINDS, Event, FeedbackStore
from query.learn.train import GateReport, fit_linear, gate

__all__ = ["Relevance", "Session", "fit_pbm", "naive_ctr", "propensities", "LearnConfig", "load_config", "FEATURES",
           "QueryCandidates", "Tally", "credit", "team_draft", "DEFAULT_VERSION", "LinearRanker", "ModelStore",
           "EVENT_KINDS", "Event", "FeedbackStore", "GateReport", "fit_linear", "gate"]
