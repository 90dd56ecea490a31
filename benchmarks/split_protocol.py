"""Does it matter how `train/` is cut? Movie-grouped against per-review splits.

The official train and test splits hold disjoint movies. A split of `train/`
by review id puts reviews of most movies on both sides, so a model can score
on names and titles it memorised. For each way of splitting, this fits the
TF-IDF 1-2-gram logistic regression (C chosen on `eval` only) on `train` and
scores it on `eval` and `report`, with 95% intervals, and counts the movies
that `eval`/`report` share with `train`.

  python benchmarks/split_protocol.py [--data ../shared/data/aclImdb_train.tar.gz]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Dict, List

import common
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from imdb_sentiment.components import imdb_data
from imdb_sentiment.pipeline.config import IngestionConfig
from imdb_sentiment.components.evaluation_results import wilson_interval

C_GRID = (1.0, 4.0, 16.0)


def evaluate(reviews: List[imdb_data.Review], rule: imdb_data.SplitRule) -> Dict:
    parts: Dict[str, List[imdb_data.Review]] = {"train": [], "eval": [], "report": []}
    for review in reviews:
        parts[rule.split_of(review)].append(review)
    texts = {s: common.tokenize([r.text for r in rs]) for s, rs in parts.items()}
    labels = {s: np.array([r.label for r in rs]) for s, rs in parts.items()}
    vectorizer = TfidfVectorizer(analyzer=lambda tokens: _ngrams(tokens), min_df=2,
                                 sublinear_tf=True)
    matrices = {"train": vectorizer.fit_transform(texts["train"])}
    matrices.update({s: vectorizer.transform(texts[s]) for s in ("eval", "report")})
    by_c = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(matrices["train"], labels["train"])
        by_c[c] = model
    chosen = max(C_GRID, key=lambda c: (by_c[c].predict(matrices["eval"]) == labels["eval"]).mean())
    result = {"group_by_movie": rule.group_by_movie, "chosen_C_on_eval": chosen,
              "reviews": {s: len(rs) for s, rs in parts.items()}}
    train_movies = {r.movie_id for r in parts["train"]}
    for split in ("eval", "report"):
        right = by_c[chosen].predict(matrices[split]) == labels[split]
        result[split] = {"accuracy": round(float(right.mean()), 4),
                         "interval95": wilson_interval(float(right.mean()), len(right)),
                         "reviews_whose_movie_is_in_train": round(float(np.mean(
                             [r.movie_id in train_movies for r in parts[split]])), 3)}
    return result


def _ngrams(tokens: List[str]) -> List[str]:
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    args = parser.parse_args()
    started = time.time()
    reviews = [r for r in imdb_data.read_reviews(args.data, imdb_data.ReadReport())
               if r.source_split == "train"]
    base = IngestionConfig().split_rule()
    results = [evaluate(reviews, dataclasses.replace(base, group_by_movie=grouped))
               for grouped in (True, False)]
    rows = [{"split by": "movie" if r["group_by_movie"] else "review",
             "C (chosen on eval)": r["chosen_C_on_eval"],
             **{f"{s} acc [95%]": f"{r[s]['accuracy']:.4f} {r[s]['interval95']}"
                for s in ("eval", "report")},
             **{f"{s}: movie in train": r[s]["reviews_whose_movie_is_in_train"]
                for s in ("eval", "report")}} for r in results]
    print(common.table(rows, list(rows[0])))
    path = common.write_result("split_protocol", {"results": results,
                                                  "seconds": round(time.time() - started)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
