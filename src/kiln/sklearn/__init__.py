"""kiln inside scikit-learn: estimators that train with kiln's loop and save normal run folders.

from kiln.sklearn import KilnClassifier
clf = KilnClassifier(hidden=(64, 64), epochs=30, random_state=0)
cross_val_score(make_pipeline(StandardScaler(), clf), X, y, cv=5)
clf.fit(X, y).save("runs/from-sklearn")
"""

from kiln.sklearn.estimators import KilnClassifier, KilnRegressor

__all__ = ["KilnClassifier", "KilnRegressor"]
