"""Benchmark (not a test): how often Touchpoint's sentiment agrees with people on a public labelled set.

    python -m bench.sentiment_agreement [--resources DIR]

The labelled set is the one published with VADER (Hutto & Gilbert, ICWSM 2014): 23,699 English
sentences — tweets, movie-review and Amazon-review snippets, New York Times editorial snippets — each
rated −4…+4 by about 20 people. It ships inside the ``vaderSentiment`` source distribution on PyPI
(``additional_resources/hutto_ICWSM_2014.tar.gz``); without ``--resources`` it is fetched once with
``pip download`` into ``bench/.cache/`` (the package registry is the only network this needs, and
the app itself never does).

Two of Touchpoint's paths are measured (cx.voice.score_comments), on the sentences people rated
clearly (|mean| ≥ 0.5, the same cut as the paper's classification):
- *lexicon*: what English comments get before the store holds enough scored comments to learn from
  (VADER, neutral band ±0.05);
- *learned*: the model a store learns from its customers' own scores, here from the human signs,
  each sentence scored by the half of the data that did not train on it (two hash folds), as in the app.
Agreement = share of those sentences whose sign the score gets right.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cx import voice  # noqa: E402

CACHE = ROOT / "bench" / ".cache" / "vader-resources"
SETS = {"tweets": "tweets_GroundTruth.txt", "movie reviews": "movieReviewSnippets_GroundTruth.txt",
        "Amazon reviews": "amazonReviewSnippets_GroundTruth.txt",
        "NYT editorials": "nytEditorialSnippets_GroundTruth.txt"}
CLEAR = 0.5  # |mean human rating| at or above which a sentence counts as clearly negative or positive


def fetch(dest: Path = CACHE) -> Path:
    """The folder holding the ground-truth files, downloading the sdist into ``dest`` if needed."""
    folder = dest / "hutto_ICWSM_2014"
    if (folder / SETS["tweets"]).exists():
        return folder
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    "vaderSentiment==3.3.2", "-d", str(dest)], check=True)
    with tarfile.open(dest / "vaderSentiment-3.3.2.tar.gz") as sdist:
        inner = sdist.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=inner) as resources:
            resources.extractall(dest, filter="data")
    return folder


def load(folder: Path) -> pd.DataFrame:
    frames = []
    for name, file in SETS.items():
        rows = [line.split("\t", 2) for line in (folder / file).read_text(encoding="utf-8").splitlines() if line.strip()]
        frames.append(pd.DataFrame({"set": name, "rating": [float(r[1]) for r in rows],
                                    "text": [r[2].strip() for r in rows]}))
    return pd.concat(frames, ignore_index=True)


def measure(frame: pd.DataFrame) -> pd.DataFrame:
    clear = frame[frame["rating"].abs() >= CLEAR].reset_index(drop=True)
    sign = np.sign(clear["rating"]).astype(int)
    out = []
    for name, part in [("all four", clear), *clear.groupby("set", sort=False)]:
        s = sign[part.index].to_numpy()
        texts = part["text"].tolist()
        t0 = time.perf_counter()
        lexicon = voice.lexicon_scores(texts)
        t_lex = time.perf_counter() - t0
        t0 = time.perf_counter()
        learned, _ = voice.score_comments(texts, s.tolist(), ["en"] * len(texts))
        t_learn = time.perf_counter() - t0
        learned_score = learned["sentiment_score"].to_numpy()
        out.append({"set": name, "sentences": len(part), "negative": int((s < 0).sum()),
                    "lexicon agreement": float(((lexicon > 0) == (s > 0)).mean()),
                    "learned agreement": float(((learned_score > 0) == (s > 0)).mean()),
                    "lexicon s": round(t_lex, 2), "learned s": round(t_learn, 2)})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=Path, help="folder holding the *_GroundTruth.txt files")
    args = parser.parse_args(argv)
    result = measure(load(args.resources or fetch()))
    pct = {c: (lambda v: f"{v:.1%}") for c in ("lexicon agreement", "learned agreement")}
    print(result.to_string(index=False, formatters=pct))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
