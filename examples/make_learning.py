"""Write the README's learning log: examples/learning.csv, learners.csv and exercises.csv (synthetic, made up here).

The article's section 6.6 suggests exercises to learners from their history. No real log ships with
kiln, so this script invents one with a hidden structure that a good recommender must find and that
popularity alone cannot: each exercise has a topic, a difficulty and a popularity (a heavy tail); each
learner cares for one to three topics and has a level that grows as they practise. A learner picks a
topic they care for, then an exercise of that topic near their level, the popular ones more often.
The same seed gives the same files: `python examples/make_learning.py`; other sizes for the bench:
`python examples/make_learning.py --learners 3000 --exercises 2000 --topics 30 --out /tmp/big`.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
START = np.datetime64("2026-01-05T08:00:00")


def generate(
    learners: int = 300,
    exercises: int = 200,
    topics: int = 12,
    history: float = 25.0,
    skew: float = 1.0,
    focus: float = 0.2,
    repeat: float = 0.08,
    growth: float = 0.005,
    seed: int = 0,
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """(interactions, learners, exercises) as rows of text.

    `history`: the median number of exercises a learner attempts; `skew`: how heavy the popularity tail is
    (0: all alike); `growth`: how much a learner's level rises per exercise; `focus`: the Dirichlet concentration of a learner's topics (small: one or two topics);
    `repeat`: the chance that a learner redoes an exercise they did before.
    """
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, topics, exercises)
    difficulty = rng.beta(2.0, 2.0, exercises)
    appeal = rng.pareto(1.5, exercises) + 1.0  # heavy-tailed: a few exercises everybody is sent to
    appeal = appeal**skew
    prefers = rng.dirichlet(np.full(topics, focus), learners)
    level = rng.beta(2.0, 3.0, learners)
    events: list[dict[str, str]] = []
    for learner in range(learners):
        count = max(3, int(rng.lognormal(np.log(history), 0.6)))
        when = START + np.timedelta64(int(rng.integers(0, 30 * 86400)), "s")
        done: list[int] = []
        skill = level[learner]
        for _ in range(count):
            if done and rng.random() < repeat:
                item = int(rng.choice(done))
            else:
                t = rng.choice(topics, p=prefers[learner])
                pool = np.flatnonzero(topic == t)
                if len(pool) == 0:
                    continue
                fit = np.exp(-((difficulty[pool] - skill) ** 2) / (2 * 0.12**2))
                weight = appeal[pool] * fit + 1e-9
                item = int(rng.choice(pool, p=weight / weight.sum()))
            correct = rng.random() < 1.0 / (1.0 + np.exp(8 * (difficulty[item] - skill)))
            score = int(np.clip(rng.normal(80 if correct else 45, 12), 0, 100))
            events.append(
                {"learner_id": f"L{learner:04d}", "exercise_id": f"E{item:04d}", "ts": str(when), "score": str(score)}
            )
            done.append(item)
            skill = min(1.0, skill + growth)
            when = when + np.timedelta64(int(rng.integers(600, 3 * 86400)), "s")
    learner_rows = [
        {"learner_id": f"L{i:04d}", "grade": str(int(np.clip(round(level[i] * 8 + rng.normal(0, 1)), 1, 8)))}
        for i in range(learners)
    ]
    exercise_rows = [
        {"exercise_id": f"E{i:04d}", "topic": f"topic{topic[i]:02d}", "difficulty": f"{difficulty[i]:.3f}"}
        for i in range(exercises)
    ]
    return events, learner_rows, exercise_rows


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=300)
    parser.add_argument("--exercises", type=int, default=200)
    parser.add_argument("--topics", type=int, default=12)
    parser.add_argument("--history", type=float, default=25.0)
    parser.add_argument("--skew", type=float, default=1.0)
    parser.add_argument("--focus", type=float, default=0.2)
    parser.add_argument("--repeat", type=float, default=0.08)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    events, learners, exercises = generate(
        args.learners, args.exercises, args.topics, args.history, args.skew, args.focus, args.repeat, args.seed
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "learning.csv", events)
    write(args.out / "learners.csv", learners)
    write(args.out / "exercises.csv", exercises)
    print(f"Wrote {len(events)} interactions of {len(learners)} learners on {len(exercises)} exercises to {args.out}")


if __name__ == "__main__":
    main()
