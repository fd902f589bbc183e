"""Recommendation: from an interaction log to top-k suggestions per user (`kiln train --user ... --item ...`)."""

from kiln.recommend.interactions import Columns, Interactions, Log, Split, aggregate, read_log, split
from kiln.recommend.recommender import Recommender

__all__ = ["Columns", "Interactions", "Log", "Recommender", "Split", "aggregate", "read_log", "split"]
