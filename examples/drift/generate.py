#!/usr/bin/env python3
"""A drifting stream of ad-conversion events: "fashion, not physics".

Each row is one ad impression: device, country, ad category, hour of day, price, and whether it
converted. The conversion behaviour changes week by week: `outdoor` gear becomes fashionable
(its conversion rate climbs), `electronics` cools down, mobile users grow more price sensitive,
and evenings matter more as the weeks pass. Feature distributions drift slowly too (more mobile
traffic), so a model trained on week 0 decays, and retraining on recent data recovers.

    python3 generate.py --out data --weeks 8 --rows-per-week 2000 [--seed 7]

writes data/schema.json and data/batches/week-00.csv ... week-07.csv (one batch per week,
named in time order so a watched directory picks them up in order), plus
data/shuffled.csv (week 0 with its labels shuffled: a model trained on it must be rejected)
and data/skewed.csv (week 0 with prices ×5: a batch validation must quarantine).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import random
from pathlib import Path

DEVICES = ["mobile", "desktop", "tablet"]
COUNTRIES = ["US", "DE", "FR", "BR", "IN"]
CATEGORIES = ["fashion", "electronics", "outdoor", "home", "books"]

SCHEMA = {
    "columns": [
        {"name": "device", "type": "categorical", "categories": DEVICES},
        {"name": "country", "type": "categorical", "categories": COUNTRIES},
        {"name": "category", "type": "categorical", "categories": CATEGORIES},
        {"name": "hour", "type": "numeric", "min": 0, "max": 23},
        {"name": "price", "type": "numeric", "min": 0, "max": 2000},
        {"name": "converted", "type": "label", "task": "classification", "classes": ["0", "1"]},
    ],
    "label": "converted",
}


def conversion_logit(week: int, device: str, country: str, category: str, hour: int, price: float) -> float:
    t = week / 7.0  # 0 → 1 over eight weeks
    z = -0.2
    z += {"fashion": 0.6, "electronics": 0.9 - 1.8 * t, "outdoor": -1.2 + 2.6 * t, "home": 0.1, "books": -0.4}[category]
    z += {"mobile": 0.3, "desktop": 0.0, "tablet": -0.2}[device]
    z += {"US": 0.3, "DE": 0.1, "FR": 0.0, "BR": -0.3, "IN": -0.2}[country]
    evening = 1.0 if 18 <= hour <= 23 else 0.0
    z += (0.3 + 1.0 * t) * evening
    sensitivity = 1.0 + (1.5 * t if device == "mobile" else 0.0)
    z -= sensitivity * (math.log1p(price) - 4.0)
    return z


def event(rng: random.Random, week: int) -> dict[str, str]:
    t = week / 7.0
    mobile_share = 0.45 + 0.2 * t
    device = rng.choices(DEVICES, weights=[mobile_share, (1 - mobile_share) * 0.7, (1 - mobile_share) * 0.3])[0]
    country = rng.choices(COUNTRIES, weights=[0.35, 0.2, 0.15, 0.15, 0.15])[0]
    category = rng.choices(CATEGORIES, weights=[0.25, 0.25, 0.15 + 0.1 * t, 0.2, 0.15])[0]
    hour = rng.randrange(24)
    price = round(min(2000.0, rng.lognormvariate(4.0, 0.8)), 2)
    p = 1 / (1 + math.exp(-conversion_logit(week, device, country, category, hour, price)))
    converted = "1" if rng.random() < p else "0"
    return {"device": device, "country": country, "category": category, "hour": str(hour), "price": f"{price}",
            "converted": converted}


def write(path: Path, rows: list[dict[str, str]]) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[c["name"] for c in SCHEMA["columns"]])
        w.writeheader()
        w.writerows(rows)
    tmp.rename(path)  # readers never see half a file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data")
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--rows-per-week", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    (out / "batches").mkdir(parents=True, exist_ok=True)
    (out / "schema.json").write_text(json.dumps(SCHEMA, indent=2) + "\n")
    weeks = [[event(rng, w) for _ in range(args.rows_per_week)] for w in range(args.weeks)]
    for w, rows in enumerate(weeks):
        write(out / "batches" / f"week-{w:02d}.csv", rows)
    labels = [r["converted"] for r in weeks[0]]
    rng.shuffle(labels)
    write(out / "shuffled.csv", [dict(r, converted=l) for r, l in zip(weeks[0], labels)])
    write(out / "skewed.csv", [dict(r, price=f"{min(2000.0, float(r['price']) * 5):.2f}") for r in weeks[0]])
    rates = [sum(r["converted"] == "1" for r in rows) / len(rows) for rows in weeks]
    print(f"wrote {out}/schema.json and {len(weeks)} weekly batches of {args.rows_per_week} rows; "
          f"conversion rate by week: {', '.join(f'{r:.2f}' for r in rates)}")


if __name__ == "__main__":
    main()
