"""bench/recommend.py's child: the `implicit` package's ALS and BPR on the split the parent wrote (runs in the
bench's own venv, bench/.venv-recommend; kiln is not importable there and not needed).

Reads <dir>/split.npz (train_users, train_items, users, items, eval_users, k, seed), fits each model on the
training pairs (confidence = the pair's weight), writes <dir>/<model>.npz: top-k item indices per
evaluated user with their training items excluded, and the fit time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


def main(folder: Path, factors: int, iterations: int, regularization: float, alpha: float) -> None:
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking

    data = np.load(folder / "split.npz")
    n_users, n_items, k, seed = (int(data[key]) for key in ("users", "items", "k", "seed"))
    weights = data["train_weights"].astype(np.float32)
    matrix = sp.csr_matrix((weights, (data["train_users"], data["train_items"])), shape=(n_users, n_items))
    matrix.sum_duplicates()
    models = {
        "als": lambda: AlternatingLeastSquares(
            factors=factors, iterations=iterations, regularization=regularization, alpha=alpha, random_state=seed
        ),
        "bpr": lambda: BayesianPersonalizedRanking(
            factors=factors, iterations=100, learning_rate=0.05, regularization=0.01, random_state=seed
        ),
    }
    users = data["eval_users"]
    for name, make in models.items():
        model = make()
        start = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - start
        ids, _ = model.recommend(users, matrix[users], N=k, filter_already_liked_items=True)
        np.savez(folder / f"{name}.npz", top=np.asarray(ids, np.int64), seconds=seconds)


if __name__ == "__main__":
    with threadpool_limits(1, "blas"):  # implicit warns and slows down with multi-threaded BLAS
        main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
