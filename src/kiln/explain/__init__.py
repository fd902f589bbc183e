"""Why did the model say that: attributions of each prediction to its raw inputs (captum), global importance, plots."""

from kiln.explain.attribution import METHODS, Explanation, explain
from kiln.explain.importance import Importance, mean_attribution_map, permutation_importance

__all__ = ["Explanation", "Importance", "METHODS", "explain", "mean_attribution_map", "permutation_importance"]
