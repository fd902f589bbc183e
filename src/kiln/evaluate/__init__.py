"""Step 5 of the lifecycle: metrics, plots and the HTML report."""

from kiln.evaluate.metrics import classification_metrics, regression_metrics, spread

__all__ = ["classification_metrics", "regression_metrics", "spread"]
