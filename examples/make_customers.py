"""Write the README's customer tables: examples/customers.csv, new_customers.csv and labelled_later.csv.

The data is synthetic and the same on every run (fixed seeds, the standard library's `random`), so the
README's outputs can be reproduced: `python examples/make_customers.py`.

The rule behind `churned`: an inactive customer churns on the basic plan or when spending under 30 a
month, and so does a customer under 30 on the basic plan; then 5% of the labels are flipped at random.
Blanks are made after labelling, as in a real export: `age` in about 1 row of 15, `plan` in 1 of 20.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLANS = {"basic": (0.5, 20.0, 5.0), "pro": (0.35, 50.0, 10.0), "team": (0.15, 120.0, 20.0)}  # share, spend mean, sd


def customer(rng: random.Random, number: int) -> dict[str, str]:
    """One customer: an id, age, plan, active flag, monthly spend and whether they churned."""
    plan = rng.choices(list(PLANS), weights=[share for share, _, _ in PLANS.values()])[0]
    _, mean, sd = PLANS[plan]
    age, active, spend = rng.randint(18, 80), rng.random() < 0.6, max(5.0, rng.gauss(mean, sd))
    churned = (not active and (plan == "basic" or spend < 30)) or (age < 30 and plan == "basic")
    if rng.random() < 0.05:
        churned = not churned
    return {
        "id": f"c{number:04d}",
        "age": "" if rng.random() < 1 / 15 else str(age),
        "plan": "" if rng.random() < 1 / 20 else plan,
        "active": "true" if active else "false",
        "spend": f"{spend:.2f}",
        "churned": "yes" if churned else "no",
    }


def write(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    columns = ["id", "age", "plan", "active", "spend", "churned"]
    rng = random.Random(1)
    write(HERE / "customers.csv", [customer(rng, i) for i in range(1, 601)], columns)

    # Customers to score: no target, the columns in another order, a plan never seen in training, a blank age.
    rng = random.Random(2)
    new = [customer(rng, i) for i in range(601, 606)]
    new[1]["plan"] = "enterprise"
    new[3]["age"] = ""
    write(HERE / "new_customers.csv", new, ["id", "plan", "spend", "active", "age"])

    # Customers whose outcome became known later, two of them still without one.
    rng = random.Random(3)
    later = [customer(rng, i) for i in range(701, 821)]
    for row in later[10], later[50]:
        row["churned"] = ""
    write(HERE / "labelled_later.csv", later, columns)


if __name__ == "__main__":
    main()
