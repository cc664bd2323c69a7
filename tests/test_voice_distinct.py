"""The analysis runs once per distinct comment, weighted by how many comments carry it. These tests
write a corpus out with its repeats and check the weighted analysis of its distinct texts gives what
the plain one gives on every copy: vocabulary, IDF and rows; sentiment scores, labels, bands and
reports; discovered themes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from cx import voice
from test_voice import NEG_CLOSERS, NEG_OPENERS, POS_CLOSERS, POS_OPENERS
from test_voice_themes import _corpus


def _repeat(items, counts):
    return [x for x, k in zip(items, counts) for _ in range(k)]


def _weighted_corpus(seed=5):
    """Distinct labelled comments with uneven repeat counts (1–9): (texts, signs, counts)."""
    rng = np.random.default_rng(seed)
    neg = [f"{a}, {b}" for a, b in itertools.product(NEG_OPENERS, NEG_CLOSERS)]
    pos = [f"{a}, {b}" for a, b in itertools.product(POS_OPENERS, POS_CLOSERS)]
    mid = ["It was ok, nothing special.", "Fine I guess.", "Average delivery, average app."]
    texts = neg + pos + mid + [t.replace(",", " and") for t in neg[:10] + pos[:10]]
    signs = [-1] * len(neg) + [1] * len(pos) + [0] * len(mid) + [0] * 20
    return texts, signs, rng.integers(1, 10, len(texts))


def test_weighted_tfidf_equals_sklearn_on_the_repeated_corpus():
    texts, _, counts = _weighted_corpus()
    for params in ({"ngram_range": (1, 2), "min_df": 2, "max_features": None},
                   {"ngram_range": (1, 1), "min_df": 9, "max_df": 0.3, "max_features": 25}):
        ours = voice._WeightedTfidf(**params)
        x = ours.fit_transform(texts, counts).toarray()
        ref = TfidfVectorizer(preprocessor=voice._normalise, token_pattern=r"(?u)\b\w+\b", sublinear_tf=True, **params)
        full = ref.fit_transform(_repeat(texts, counts)).toarray()
        assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
        assert len(ours.terms) == (25 if params["max_features"] else len(ours.terms)) and len(ours.terms) > 10
        np.testing.assert_allclose(ours.idf, ref.idf_, rtol=1e-12)
        first = np.cumsum(np.r_[0, counts[:-1]])  # each text's first copy in the repeated corpus
        np.testing.assert_allclose(x, full[first], atol=1e-12)
        np.testing.assert_allclose(ours.transform(["The app keeps crashing, zzz"]).toarray(),
                                   ref.transform(["The app keeps crashing, zzz"]).toarray(), atol=1e-12)


def test_weighted_tfidf_keeps_the_same_terms_as_sklearn_when_counts_tie_at_the_cut():
    # 200 texts of 6 words out of 300, repeated 1–3 times: many words share a count at each cut-off.
    rng = np.random.default_rng(0)
    words = [f"w{i:03d}" for i in range(300)]
    texts = [" ".join(rng.choice(words, 6, replace=False)) for _ in range(200)]
    counts = rng.integers(1, 4, len(texts))
    for ngrams, limit in (((1, 1), 10), ((1, 1), 137), ((1, 2), 1000)):
        ours = voice._WeightedTfidf(ngram_range=ngrams, max_features=limit)
        ours.fit_transform(texts, counts)
        ref = TfidfVectorizer(preprocessor=voice._normalise, token_pattern=r"(?u)\b\w+\b", ngram_range=ngrams,
                              sublinear_tf=True, max_features=limit).fit(_repeat(texts, counts))
        assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out()), (ngrams, limit)


def test_the_weighted_median_is_the_median_of_the_copies():
    rng = np.random.default_rng(1)
    for _ in range(500):
        values = rng.integers(0, 5, rng.integers(1, 8)).astype(float)
        weights = rng.integers(1, 4, len(values))
        assert voice._weighted_median(values, weights.astype(float)) == np.quantile(np.repeat(values, weights), 0.5)


def test_sentiment_of_distinct_texts_with_weights_equals_scoring_every_copy(monkeypatch):
    monkeypatch.setattr(voice, "MIN_PER_CLASS", 40)
    texts, signs, counts = _weighted_corpus()
    langs = ["en"] * len(texts)
    full, full_reports = voice.score_comments(_repeat(texts, counts), _repeat(signs, counts), _repeat(langs, counts))
    once, once_reports = voice.score_comments(texts, signs, langs, weights=counts)
    first = np.cumsum(np.r_[0, counts[:-1]])
    assert list(once["sentiment_label"]) == list(full["sentiment_label"].iloc[first])
    np.testing.assert_allclose(once["sentiment_score"], full["sentiment_score"].iloc[first], atol=1e-4)
    a, b = full_reports[0], once_reports[0]
    assert (b.method, b.comments, b.negative_labelled, b.positive_labelled, b.neutral_labelled) == (
        "learned", int(counts.sum()), a.negative_labelled, a.positive_labelled, a.neutral_labelled)
    assert b.band == a.band
    assert b.agreement == pytest.approx(a.agreement) and b.agreement_3 == pytest.approx(a.agreement_3)


def test_the_neutral_band_is_the_best_on_a_hand_checked_case():
    # Scores and labels where the band (−0.3, 0.3) separates the three classes perfectly; weights
    # count a comment several times, so the weighted result equals the repeated one.
    score = np.array([-0.9, -0.5, -0.35, -0.1, 0.0, 0.2, 0.4, 0.8])
    sign = np.array([-1, -1, -1, 0, 0, 0, 1, 1])
    weight = np.array([3, 1, 2, 10, 5, 7, 4, 2])
    lo, hi, f1 = voice._calibrate_band(score, sign, weight)
    assert f1 == 1.0 and -0.35 < lo <= -0.1 and 0.2 < hi <= 0.4
    assert voice._calibrate_band(np.repeat(score, weight), np.repeat(sign, weight)) == (lo, hi, f1)
    # Every band on the grid: the weighted macro-F1 of the best one equals a plain count on the copies.
    rs, rt = np.repeat(score, weight), np.repeat(sign, weight)
    rt[0] = 0  # one wrong label: no band is perfect any more
    lo, hi, f1 = voice._calibrate_band(rs, rt)
    pred = np.where(rs <= lo, -1, np.where(rs >= hi, 1, 0))
    f1s = [2 * ((pred == c) & (rt == c)).sum() / ((pred == c).sum() + (rt == c).sum()) for c in (-1, 0, 1)]
    assert f1 == pytest.approx(np.mean(f1s)) and f1 < 1.0


def test_themes_of_distinct_texts_with_weights_are_those_of_every_copy():
    """NMF's solver takes another path on √k-scaled rows than on k copies, so a label may order its
    words differently; the themes found and which comments carry them must be the same."""
    texts, truth, polarity = _corpus(per_theme=40)
    counts = np.random.default_rng(11).integers(1, 6, len(texts))
    first = np.cumsum(np.r_[0, counts[:-1]])  # each text's first copy in the repeated corpus
    labels_full, assigned_full = voice.discover_themes(_repeat(texts, counts), "en", _repeat(polarity, counts))
    labels, assigned = voice.discover_themes(texts, "en", polarity, weights=counts)
    assigned_full = [assigned_full[j] for j in first]

    def known(labels, assigned):  # each theme as the known theme most of its comments come from
        names = {}
        for t in range(len(labels)):
            members = [truth[i] for i, ts in enumerate(assigned) if t in ts]
            names[t] = max(set(members), key=members.count)
        return [sorted(names[t] for t in ts) for ts in assigned], sorted(names.values())

    per_text, themes = known(labels, assigned)
    per_text_full, themes_full = known(labels_full, assigned_full)
    assert themes == themes_full and set(themes) == set(truth) and len(labels) == len(labels_full) == 16
    assert np.mean([a == b for a, b in zip(per_text, per_text_full)]) >= 0.97
