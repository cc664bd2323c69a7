"""Voice of the customer: the language and sentiment of every comment, and the themes comments carry.

Computed once per change of the data (after each import, and again when the comments or the model
change), stored in ``comment_scores`` and ``comment_themes``, never recomputed per page view.

Sentiment. A lexicon alone agrees badly with what customers mean, so Touchpoint learns from the
store's own comments whose score labels them: detractors, CSAT 1–2 and hard CES answers are
negative; promoters, CSAT 4–5 and easy CES answers positive; the middle of each scale neutral. Per
language with enough labelled comments, a TF-IDF (words and word pairs) logistic regression is
cross-fitted: comments are split in two folds by their text, and each fold is scored by the model
trained on the other, so no comment is scored by a model that saw it, and the agreement reported is
held-out agreement. The neutral band of the predicted probability is calibrated on the labelled
comments (the band that best separates the three classes). English comments without enough labels
fall back to the VADER lexicon (shipped in its package); other languages without enough labels stay
unscored with the reason. Language comes from the response's ``language`` column when it holds a
code, else from py3langid's bundled model, with a tempered prior from the corpus itself so a short
"ok" in a Portuguese corpus is read as Portuguese.

Themes. Discovered per language by non-negative matrix factorisation of TF-IDF (stop words per
language), labelled by their top terms; plus analyst rules (keywords and phrases, ``*`` as a word
ending) kept in the store's settings. A comment can carry several themes.

Scale. Everything above follows from a comment's text, language column and score label, so the
analysis reads each distinct (source, text, language column, label) once from DuckDB with the number
of comments that carry it, and counts it that many times: TF-IDF document frequencies, the logistic
regression's sample weights, the neutral band, the agreements and NMF (rows scaled by √count) are
those of the comments written out (tested against the repeated corpus). The results reach the
comments through a join in DuckDB. Memory follows the distinct texts: the 10 M-response demo's
5.9 M comments are 4,551 of them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cx.engine import read_cursor
from cx.errors import TouchpointError
from cx.store import Store, quote_ident

MODEL_VERSION = "voice-1"
MIN_PER_CLASS = 50  # labelled negative and positive comments a language needs to learn its own model
MIN_THEME_DOCS = 60  # comments a language needs before themes are discovered in it
MAX_AUTO_THEMES = 16  # at most half of them complaints, half praise
THEME_SHARE = 0.3  # a comment carries a discovered theme when it holds this share of its topic weight
LEXICON_VERSION = "vader-3.3.2"
# Languages the detector chooses among (the ones customer feedback is usually written in).
LANGUAGE_NAMES = {
    "en": "English", "pt": "Portuguese", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
    "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish", "pl": "Polish",
    "cs": "Czech", "ro": "Romanian", "hu": "Hungarian", "el": "Greek", "tr": "Turkish", "ru": "Russian",
    "uk": "Ukrainian", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "id": "Indonesian", "vi": "Vietnamese",
    "th": "Thai", "ja": "Japanese", "zh": "Chinese", "ko": "Korean",
}
UNDETERMINED = "und"
STOP_WORD_LANGUAGES = {"en": "english", "pt": "portuguese", "es": "spanish", "fr": "french", "de": "german",
                       "it": "italian", "nl": "dutch", "sv": "swedish", "da": "danish", "no": "norwegian",
                       "fi": "finnish", "pl": "polish", "cs": "czech", "ro": "romanian", "hu": "hungarian",
                       "el": "greek", "tr": "turkish", "ru": "russian", "uk": "ukrainian", "ar": "arabic",
                       "he": "hebrew", "hi": "hindi", "id": "indonesian", "vi": "vietnamese"}
LABELS = ("negative", "neutral", "positive")
SCORE_CLASSES = {"nps": ("detractor", "passive", "promoter"), "csat": ("dissatisfied", "neutral", "satisfied"),
                 "ces": ("hard", "neutral", "easy")}
GRAINS = ("week", "month", "quarter")

# Default analyst rules (editable on the Voice page): English and Portuguese words for the themes
# customers raise most. ``*`` matches any word ending.
DEFAULT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Delivery", ("deliver*", "shipping", "courier", "parcel", "tracking", "arriv*", "entreg*", "prazo", "chegou",
                  "chegar", "atras*")),
    ("Price & value", ("price*", "expensive", "cheap*", "value for money", "overpriced", "preco*", "caro", "barato")),
    ("Support", ("support", "agent", "customer service", "on hold", "call back", "atendimento", "resposta")),
    ("Billing & refunds", ("bill*", "charge*", "invoice", "refund*", "fee", "reembolso", "estorno", "cobr*")),
    ("App & website", ("app", "crash*", "freez*", "website", "checkout", "site")),
    ("Product quality", ("quality", "broke*", "damaged", "defect*", "qualidade", "quebrad*", "defeito")),
)

# Each source of comments: the text, its key, its date and the score that labels it. Only constants:
# no user value ever reaches these fragments.
_CSAT_SIGN = """CASE WHEN coalesce(csat_max, 5) <= 10 THEN
        CASE WHEN csat >= coalesce(csat_max, 5) - 1 THEN 1 WHEN csat <= coalesce(csat_min, 1) + 1 THEN -1 ELSE 0 END
      ELSE CASE WHEN csat >= coalesce(csat_min, 1) + 0.8 * (coalesce(csat_max, 5) - coalesce(csat_min, 1)) THEN 1
                WHEN csat <= coalesce(csat_min, 1) + 0.4 * (coalesce(csat_max, 5) - coalesce(csat_min, 1)) THEN -1
                ELSE 0 END END"""
_CES7 = "(1.0 + 6.0 * (ces - coalesce(ces_min, 1)) / nullif(coalesce(ces_max, 7) - coalesce(ces_min, 1), 0))"
_CES_SIGN = f"CASE WHEN {_CES7} <= 3 THEN -1 WHEN {_CES7} < 5 THEN 0 ELSE 1 END"
_NPS_SIGN = "CASE WHEN nps <= 6 THEN -1 WHEN nps <= 8 THEN 0 ELSE 1 END"


@dataclass(frozen=True)
class Source:
    table: str
    key: str
    text: str
    date: str
    sign: str  # SQL: -1 / 0 / 1 from the row's own score, NULL without one
    hint: str  # SQL: the row's language column, or NULL

    @property
    def has_text(self) -> str:
        """SQL: the row has a comment (its text is neither NULL nor blank)."""
        return f"{self.text} IS NOT NULL AND trim({self.text}) <> ''"

    @property
    def text_hash(self) -> str:
        """SQL: md5 of the row's text, the stamp a score carries of the text it was made from."""
        return f"md5({self.text})"


SOURCES = {
    "responses": Source("responses", "response_id", "comment", "submitted_at",
                        f"CASE WHEN nps IS NOT NULL THEN {_NPS_SIGN} WHEN csat IS NOT NULL THEN {_CSAT_SIGN} "
                        f"WHEN ces IS NOT NULL THEN {_CES_SIGN} END", "language"),
    "tickets": Source("tickets", "ticket_id",
                      "nullif(concat_ws('. ', nullif(trim(subject), ''), nullif(trim(description), '')), '')",
                      # A ticket's CSAT rates how the case was handled, not what its text says (a text
                      # describes a problem either way): ticket texts are scored, never learned from.
                      "created_at", "CAST(NULL AS INTEGER)", "NULL"),
}


class VoiceError(TouchpointError):
    """Comments cannot be analysed as asked (an invalid theme rule, an unknown filter)."""


# -- reading comments ------------------------------------------------------------------------------
def _comments_sql(src: Source) -> str:
    return (f"SELECT '{src.table}' AS source, CAST({quote_ident(src.key)} AS VARCHAR) AS id, {src.text} AS text, "
            f"{src.text_hash} AS text_hash, {src.sign} AS sign, {src.hint} AS hint "
            f"FROM {quote_ident(src.table)} WHERE {src.has_text}")


def _all_comments_sql() -> str:
    return " UNION ALL ".join(_comments_sql(s) for s in SOURCES.values())


def fingerprint(store: Store) -> str:
    """A digest of every comment, its label and the model version: equal digests mean the stored
    scores are current."""
    return _fingerprint(store)[0]


def _fingerprint(store: Store) -> tuple[str, int]:
    """``fingerprint``, and the number of comments it covers."""
    with store.cursor() as cur:
        n, h = cur.execute(
            f"SELECT count(*), CAST(coalesce(sum(hash(source, id, text, sign, hint)), 0) AS VARCHAR) "
            f"FROM ({_all_comments_sql()})").fetchone()
    return f"{MODEL_VERSION}:{n}:{h}", int(n)


# -- language ---------------------------------------------------------------------------------------
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_IDENT_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(sorted(LANGUAGE_NAMES))
    return ident


def _hint_code(hint: Any) -> str | None:
    if not isinstance(hint, str) or not hint.strip():
        return None
    h = hint.strip().lower()
    code = re.split(r"[-_ ]", h)[0]
    if code in LANGUAGE_NAMES:
        return code
    by_name = {v.lower(): k for k, v in LANGUAGE_NAMES.items()}
    return by_name.get(h)


def detect_languages(texts: Sequence[str], hints: Sequence[Any] | None = None) -> list[str]:
    """ISO 639-1 code of each text (``und`` when it has no letters). A valid code or language name in
    ``hints`` wins. Short, ambiguous texts lean towards the corpus's own languages: the detector's
    probabilities are multiplied by the square root of the share each language has among the texts
    it is sure about (probability ≥ 0.9)."""
    ident = _identifier()
    hints = list(hints) if hints is not None else [None] * len(texts)
    out: list[str | None] = [None] * len(texts)
    unsure: list[int] = []
    counts: dict[str, int] = {}
    with _IDENT_LOCK:
        for i, (text, hint) in enumerate(zip(texts, hints)):
            code = _hint_code(hint)
            if code:
                out[i] = code
            elif not _LETTERS.search(text or ""):
                out[i] = UNDETERMINED
                continue
            else:
                lang, p = ident.classify(text)
                if p >= 0.9:
                    out[i] = lang
                else:
                    unsure.append(i)
                    continue
            counts[out[i]] = counts.get(out[i], 0) + 1
        total = sum(counts.values())
        prior = {k: math.sqrt((counts.get(k, 0) + 0.5) / (total + 0.5 * len(LANGUAGE_NAMES))) for k in LANGUAGE_NAMES}
        for i in unsure:
            ranked = ident.rank(texts[i])
            out[i] = max(ranked, key=lambda lp: lp[1] * prior.get(lp[0], 0.0))[0]
    return [str(c) for c in out]


def language_name(code: str | None) -> str:
    if code == UNDETERMINED or code is None:
        return "no words"
    return LANGUAGE_NAMES.get(code, code)


# -- sentiment ------------------------------------------------------------------------------------
def _normalise(text: str) -> str:
    """Lower case without accents: customers type "otimo" for "ótimo"."""
    return unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode("ascii") if text else ""


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def lexicon_scores(texts: Sequence[str]) -> np.ndarray:
    """VADER compound score (−1…1) of each English text."""
    analyzer = _vader()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=float)


def _label(score: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.where(score <= lo, "negative", np.where(score >= hi, "positive", "neutral")).astype(object)


class _WeightedTfidf:
    """sklearn's ``TfidfVectorizer`` (smooth IDF, sublinear TF, L2 rows) fitted as if each text were
    repeated ``weight`` times, without repeating it: exports carry the same short comments millions of
    times, and Touchpoint analyses each distinct text once with its count as its weight. Document
    frequencies, ``min_df``/``max_df`` and ``max_features`` count weighted documents, so the vocabulary
    and IDF equal the vectoriser's on the repeated corpus (tested)."""

    def __init__(self, *, ngram_range=(1, 1), min_df=1, max_df=1.0, max_features=None, stop_words=None,
                 token_pattern=r"(?u)\b\w+\b", dtype=np.float64):
        self.params = {"ngram_range": ngram_range, "stop_words": stop_words, "token_pattern": token_pattern,
                       "preprocessor": _normalise}
        self.min_df, self.max_df, self.max_features, self.dtype = min_df, max_df, max_features, dtype

    def fit_transform(self, texts, weights=None):
        from sklearn.feature_extraction.text import CountVectorizer

        counter = CountVectorizer(**self.params)
        counts = counter.fit_transform(texts)  # ValueError: no words at all
        w = np.ones(counts.shape[0]) if weights is None else np.asarray(weights, dtype=float)
        n = float(w.sum())
        present = counts.copy()
        present.data[:] = 1
        df = np.asarray(present.T @ w).ravel()
        lo = self.min_df if isinstance(self.min_df, (int, np.integer)) else self.min_df * n
        hi = self.max_df if isinstance(self.max_df, (int, np.integer)) else self.max_df * n
        keep = (df >= lo) & (df <= hi)
        if self.max_features is not None and keep.sum() > self.max_features:
            tf = np.asarray(counts.T @ w).ravel()
            if np.all(w == np.rint(w)):  # counts: rank as scikit-learn does, ties included (its int64 argsort)
                tf = np.rint(tf).astype(np.int64)
            idx = np.where(keep)[0]
            keep = np.zeros_like(keep)
            keep[idx[(-tf[idx]).argsort()[:self.max_features]]] = True
        if not keep.any():
            raise ValueError("After pruning, no terms remain.")
        self.terms = counter.get_feature_names_out()[keep]
        self._counter = CountVectorizer(**self.params, vocabulary=list(self.terms))
        self.idf = np.log((1.0 + n) / (1.0 + df[keep])) + 1.0
        return self._weigh(counts[:, np.where(keep)[0]])

    def transform(self, texts):
        return self._weigh(self._counter.transform(texts))

    def _weigh(self, counts):
        from sklearn.preprocessing import normalize

        x = counts.astype(np.float64).tocsr()
        np.log(x.data, out=x.data)
        x.data += 1.0
        x = x.multiply(self.idf[None, :]).tocsr()
        return normalize(x, norm="l2", copy=False).astype(self.dtype)

    def get_feature_names_out(self):
        return self.terms


def _vectorizer() -> _WeightedTfidf:
    return _WeightedTfidf(ngram_range=(1, 2), min_df=2, max_features=200_000, dtype=np.float32)


PREDICT_CHUNK = 100_000  # texts transformed and scored at a time


def _fit_predict(train_text, train_y, test_text, train_weight=None) -> np.ndarray:
    """Probability of the positive class for each test text, from a TF-IDF logistic regression fitted
    on the training texts (each counted ``train_weight`` times), classes balanced."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(train_y, dtype=int)
    w = np.ones(len(y)) if train_weight is None else np.asarray(train_weight, dtype=float)
    vec = _vectorizer()
    x = vec.fit_transform(train_text, w)
    # class_weight="balanced" on the repeated corpus: n / (2 · n_class), counted in weights.
    total = w.sum()
    balance = np.where(y == 1, total / (2 * w[y == 1].sum()), total / (2 * w[y == 0].sum()))
    model = LogisticRegression(C=2.0, max_iter=2000)
    model.fit(x, y, sample_weight=w * balance)
    test_text = list(test_text)
    return np.concatenate([model.predict_proba(vec.transform(test_text[i:i + PREDICT_CHUNK]))[:, 1]
                           for i in range(0, len(test_text), PREDICT_CHUNK)] or [np.zeros(0)])


def _fold(text_hash: str) -> int:
    return int(text_hash[-1], 16) % 2


def _calibrate_band(score: np.ndarray, sign: np.ndarray,
                    weight: np.ndarray | None = None) -> tuple[float, float, float]:
    """(low, high, macro-F1): the neutral band of the score (−1…1) that best reproduces the three
    score-derived classes on labelled comments (each counted ``weight`` times), over a grid of bands
    0, 0.05 … 0.9 wide on each side. Exact on every labelled comment: cumulative class weights along the
    sorted scores give each band's counts."""
    weight = np.ones(len(score)) if weight is None else np.asarray(weight, dtype=float)
    truth = np.asarray(sign).astype(int)
    if weight[truth == 0].sum() < 20:
        return -0.2, 0.2, math.nan
    order = np.argsort(score, kind="stable")
    score, truth, weight = np.asarray(score, dtype=float)[order], truth[order], weight[order]
    cum = {c: np.concatenate([[0.0], np.cumsum(np.where(truth == c, weight, 0.0))]) for c in (-1, 0, 1)}
    total = {c: cum[c][-1] for c in (-1, 0, 1)}

    def at_most(x: float) -> dict[int, float]:  # class weights of the comments scored ≤ x
        i = np.searchsorted(score, x, side="right")
        return {c: cum[c][i] for c in (-1, 0, 1)}

    def below(x: float) -> dict[int, float]:  # … scored < x
        i = np.searchsorted(score, x, side="left")
        return {c: cum[c][i] for c in (-1, 0, 1)}

    best = (-0.2, 0.2, -1.0)
    grid = np.round(np.arange(0.0, 0.95, 0.05), 2)
    for lo in grid:
        neg = at_most(-lo)  # predicted negative: score ≤ −lo (it wins where the two sides meet)
        for hi in grid:
            not_pos = below(hi) if hi > -lo else neg  # predicted positive: score ≥ hi and not negative
            pos = {c: total[c] - not_pos[c] for c in (-1, 0, 1)}
            mid = {c: total[c] - neg[c] - pos[c] for c in (-1, 0, 1)}
            f1s = []
            for c, pred in ((-1, neg), (0, mid), (1, pos)):
                denom = sum(pred.values()) + total[c]
                f1s.append(2 * pred[c] / denom if denom > 0 else 0.0)
            f1 = sum(f1s) / 3
            if f1 > best[2] + 1e-9:
                best = (-float(lo), float(hi), float(f1))
    return best


@dataclass(frozen=True)
class ModelReport:
    """How one language's comments were scored, and how well the scores agree with the customers' own
    scores on comments the model did not see (held-out)."""

    language: str
    method: str  # learned | lexicon | unscored
    comments: int
    negative_labelled: int
    positive_labelled: int
    neutral_labelled: int
    band: tuple[float, float] | None = None
    agreement: float | None = None  # negative vs positive, on labelled polar comments
    agreement_3: float | None = None  # three classes, with the calibrated neutral band
    macro_f1: float | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def score_comments(texts: Sequence[str], signs: Sequence[Any], languages: Sequence[str],
                   text_hashes: Sequence[str] | None = None,
                   weights: Sequence[float] | None = None) -> tuple[pd.DataFrame, list[ModelReport]]:
    """Sentiment of each text: columns ``sentiment_label`` (negative / neutral / positive, None when
    unscored), ``sentiment_score`` (−1…1), ``unscored_reason``, ``model_version``; plus one report
    per language. ``signs`` are the labels the customers' own scores give (−1, 0, 1 or None).
    ``weights``: how many comments each row stands for (a distinct text with its label, counted once);
    the models, bands, counts and agreements are those of the comments written out."""
    texts = np.asarray(list(texts), dtype=object)
    n = len(texts)
    weight = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    sign = np.array([np.nan if s is None or (isinstance(s, float) and math.isnan(s)) else float(s) for s in signs])
    langs = np.asarray(list(languages), dtype=object)
    hashes = np.asarray(list(text_hashes) if text_hashes is not None else
                        [hashlib.md5(t.encode("utf-8")).hexdigest() for t in texts], dtype=object)
    label = np.full(n, None, dtype=object)
    score = np.full(n, np.nan)
    reason = np.full(n, None, dtype=object)
    version = np.full(n, None, dtype=object)
    reports: list[ModelReport] = []
    for lang in sorted(set(langs), key=lambda c: -weight[langs == c].sum()):
        idx = np.where(langs == lang)[0]
        s, w = sign[idx], weight[idx]
        n_neg, n_pos, n_neu = (int(round(w[s == c].sum())) for c in (-1, 1, 0))
        n_lang = int(round(w.sum()))
        name = language_name(lang)
        if lang == UNDETERMINED:
            reason[idx] = "No words to score (only numbers, punctuation or symbols)."
            reports.append(ModelReport(lang, "unscored", n_lang, n_neg, n_pos, n_neu, reason="no words"))
            continue
        if n_neg >= MIN_PER_CLASS and n_pos >= MIN_PER_CLASS:
            folds = np.array([_fold(h) for h in hashes[idx]])
            p = np.full(len(idx), np.nan)
            polar = np.isin(s, (-1, 1))
            for k in (0, 1):
                train = polar & (folds != k)
                test = folds == k
                if not test.any():
                    continue
                if w[train & (s == -1)].sum() < 5 or w[train & (s == 1)].sum() < 5:  # one fold too small: use both
                    train = polar
                p[test] = _fit_predict(texts[idx][train], (s[train] == 1).astype(int), texts[idx][test], w[train])
            sc = 2 * p - 1
            labelled = ~np.isnan(s)
            lo, hi, f1 = _calibrate_band(sc[labelled], s[labelled].astype(int), w[labelled])
            score[idx] = sc
            label[idx] = _label(sc, lo, hi)
            version[idx] = f"{MODEL_VERSION}:learned:{lang}"
            agree = float(np.average((sc[polar] > 0) == (s[polar] == 1), weights=w[polar]))
            truth3 = np.array(LABELS, dtype=object)[s[labelled].astype(int) + 1]
            agree3 = float(np.average(label[idx][labelled] == truth3, weights=w[labelled]))
            reports.append(ModelReport(lang, "learned", n_lang, n_neg, n_pos, n_neu, (lo, hi), agree, agree3,
                                       None if math.isnan(f1) else f1))
        elif lang == "en":
            sc = lexicon_scores(texts[idx])
            score[idx] = sc
            label[idx] = _label(sc, -0.05, 0.05)
            version[idx] = LEXICON_VERSION
            polar = np.isin(s, (-1, 1))
            agree = float(np.average((sc[polar] > 0) == (s[polar] == 1), weights=w[polar])) if polar.any() else None
            reports.append(ModelReport(lang, "lexicon", n_lang, n_neg, n_pos, n_neu, (-0.05, 0.05), agree,
                                       reason=f"fewer than {MIN_PER_CLASS} negative and positive scored comments"))
        else:
            why = (f"No sentiment model for {name}: it needs at least {MIN_PER_CLASS} negative and "
                   f"{MIN_PER_CLASS} positive scored comments in {name} to learn from (has {n_neg} and {n_pos}).")
            reason[idx] = why
            reports.append(ModelReport(lang, "unscored", n_lang, n_neg, n_pos, n_neu, reason=why))
    frame = pd.DataFrame({"sentiment_label": label, "sentiment_score": score, "unscored_reason": reason,
                          "model_version": version})
    return frame, reports


# -- discovered themes ------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def stop_words_for(lang: str) -> frozenset[str]:
    """Stop words of a language (lower case, accents removed), from the stop-words package."""
    name = STOP_WORD_LANGUAGES.get(lang)
    if not name:
        return frozenset()
    from stop_words import get_stop_words

    words = {_normalise(w) for w in get_stop_words(name)}
    if lang == "en":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        words |= set(ENGLISH_STOP_WORDS)
    # Also each piece the tokenizer makes of a stop word ("shouldn't" → "shouldn"), as it would see it.
    words |= {p for w in list(words) for p in _THEME_TOKEN.findall(w)}
    return frozenset(w for w in words if w)


_THEME_TOKEN = re.compile(r"(?u)\b[^\W\d_]{2,}\b")


def _theme_label(terms: list[str], k: int = 3) -> str:
    chosen: list[str] = []
    for t in terms:
        words = set(t.split())
        if any(words <= set(c.split()) for c in chosen):
            continue  # already said by a phrase
        chosen = [c for c in chosen if not set(c.split()) <= words]
        chosen.append(t)
        if len(chosen) == k:
            break
    return " · ".join(chosen)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The median of ``values`` each repeated ``weights`` times (``np.quantile(…, 0.5)`` of the copies:
    the mean of the two middle values when the half falls between two of them)."""
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[order])
    i = int(np.searchsorted(cum, 0.5 * cum[-1]))
    if cum[i] == 0.5 * cum[-1] and i + 1 < len(v):
        return float((v[i] + v[i + 1]) / 2)
    return float(v[i])


NMF_FIT_TEXTS = 50_000  # distinct texts a theme model is fitted on, at most


def discover_themes(texts: Sequence[str], lang: str, polarity: Sequence[int] | None = None, *,
                    weights: Sequence[float] | None = None, max_per_group: int = MAX_AUTO_THEMES // 2,
                    seed: int = 0) -> tuple[list[str], list[list[int]]]:
    """Recurring themes of one language's texts: (labels, for each text the indices of its themes).

    Complaints and praise are found apart, so the many happy comments do not drown the few unhappy
    ones: NMF of TF-IDF words (stop words of the language removed) is fitted on the negative texts
    (``polarity`` −1) and on the positive ones (+1), at most ``max_per_group`` themes each. A text
    carries a complaint theme only if it is negative or neutral (0 / None), a praise theme only if
    positive or neutral, when the theme holds at least ``THEME_SHARE`` of its weight in that model and
    the weight is a real one (at least 30% of what the theme's typical members carry). A label is the
    theme's top terms. Without ``polarity`` every text is fitted as one group. ``weights``: how many
    comments each text stands for; a text counted k times weighs as k copies would (its TF-IDF row is
    scaled by √k for the squared-error fit), so distinct texts are analysed once."""
    from sklearn.decomposition import NMF
    from scipy import sparse

    texts = list(texts)
    n = len(texts)
    weight = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    pol = np.zeros(n) if polarity is None else np.array([0 if p is None or p != p else p for p in polarity], float)
    groups = [(None, np.ones(n, bool))] if polarity is None else [(-1, pol < 0), (1, pol > 0)]
    stop = stop_words_for(lang)
    vec = _WeightedTfidf(token_pattern=_THEME_TOKEN.pattern, stop_words=sorted(stop) if stop else None,
                         min_df=max(3, int(weight.sum()) // 2000), max_df=0.3, max_features=20_000)
    try:
        x = vec.fit_transform(texts, weight)
    except ValueError:  # nothing left after stop words
        return [], [[] for _ in texts]
    terms = vec.get_feature_names_out()
    labels: list[str] = []
    assigned: list[list[int]] = [[] for _ in texts]
    rng = np.random.default_rng(seed)
    for sign, member in groups:
        rows = np.where(member)[0]
        # One theme per 40 comments, and at most one per two distinct texts (fewer texts than that are no themes).
        k = int(min(max_per_group, weight[rows].sum() // 40, x.shape[1] - 1, len(rows) // 2))
        if weight[rows].sum() < MIN_THEME_DOCS or k < 2:
            continue
        fit_rows = np.sort(rows if len(rows) <= NMF_FIT_TEXTS else rng.choice(rows, NMF_FIT_TEXTS, replace=False))
        nmf = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=400)
        nmf.fit(sparse.diags(np.sqrt(weight[fit_rows])) @ x[fit_rows])
        eligible = np.ones(n, bool) if sign is None else (pol * sign >= 0)
        w = np.vstack([nmf.transform(x[i:i + PREDICT_CHUNK]) for i in range(0, n, PREDICT_CHUNK)])
        typical = np.array([_weighted_median(col[col > 0], weight[fit_rows][col > 0]) if (col > 0).any() else np.inf
                            for col in w[fit_rows].T])
        total = w.sum(axis=1, keepdims=True)
        share = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        strong = (share >= THEME_SHARE) & (w >= 0.3 * typical) & eligible[:, None]
        base = len(labels)
        labels += [_theme_label([terms[j] for j in np.argsort(-row)[:8]]) for row in nmf.components_]
        for i, j in zip(*np.nonzero(strong)):
            assigned[i].append(base + int(j))
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):  # two themes with one label: number them
        if lab in seen:
            seen[lab] += 1
            labels[i] = f"{lab} ({seen[lab]})"
        else:
            seen[lab] = 1
    return labels, assigned


# -- analyst rules --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """An analyst theme: a comment carries it when it contains one of the terms (whole words, case and
    accents ignored; ``*`` at the end of a term matches any word ending)."""

    theme: str
    terms: tuple[str, ...]

    def pattern(self) -> str:
        parts = []
        for term in self.terms:
            t = _normalise(term.strip())
            wild = t.endswith("*")
            t = t.rstrip("*").strip()
            if not t:
                continue
            body = r"\s+".join(re.escape(w) for w in t.split())
            parts.append(r"\b" + body + (r"\w*" if wild else r"\b"))
        return "(" + "|".join(parts) + ")"


def parse_rules(raw: Any) -> list[Rule]:
    """Rules from their stored form (``[{"theme": ..., "terms": [...]}, ...]``), validated."""
    rules: list[Rule] = []
    names: set[str] = set()
    for item in raw or []:
        theme = str(item.get("theme", "")).strip()
        terms = tuple(str(t).strip() for t in item.get("terms", []) if str(t).strip().strip("*").strip())
        if not theme:
            raise VoiceError("A theme rule has no name.", fix="Give every rule a theme name, or delete the row.")
        if len(theme) > 80:
            raise VoiceError(f"The theme name {theme[:30]!r}… is longer than 80 characters.", fix="Shorten it.")
        if not terms:
            raise VoiceError(f"The theme {theme!r} has no keywords.",
                             fix="List words or phrases separated by commas, e.g. late, delay*, never arrived.")
        if theme.lower() in names:
            raise VoiceError(f"The theme {theme!r} is defined twice.", fix="Merge its keywords into one rule.")
        names.add(theme.lower())
        rules.append(Rule(theme, terms))
    return rules


def load_rules(store: Store) -> list[Rule]:
    """The analyst rules in the store (the defaults until the analyst saves their own)."""
    raw = store.get_setting("voice_rules", None)
    if raw is None:
        return [Rule(t, terms) for t, terms in DEFAULT_RULES]
    return parse_rules(raw)


def save_rules(store: Store, rules: list[Rule]) -> int:
    """Store the rules and re-tag every comment with them; returns the number of theme tags written."""
    rules = parse_rules([{"theme": r.theme, "terms": list(r.terms)} for r in rules])
    with store.transaction() as cur:
        cur.execute("INSERT OR REPLACE INTO settings VALUES ('voice_rules', ?)",
                    [json.dumps([{"theme": r.theme, "terms": list(r.terms)} for r in rules])])
        return _apply_rules(cur, rules)


def _apply_rules(cur, rules: list[Rule], *, scores_current: bool = False) -> int:
    """Tag every comment whose current text a rule matches. Each distinct text is normalised and
    matched once; the matches reach the comments through their text hash. ``scores_current``: every
    row of ``comment_scores`` was just made from the present comments (as ``refresh`` writes them), so
    the check that a comment's text is still the one scored is skipped."""
    cur.execute("DELETE FROM comment_themes WHERE origin = 'rule'")
    if not rules:
        return 0
    cur.execute("CREATE OR REPLACE TEMP TABLE voice_norm AS SELECT source, text_hash, "
                f"strip_accents(lower(any_value(text))) AS norm FROM ({_all_comments_sql()}) "
                "GROUP BY source, text_hash")
    cur.execute("CREATE OR REPLACE TEMP TABLE voice_hits (source VARCHAR, text_hash VARCHAR, theme VARCHAR)")
    try:
        for rule in rules:
            cur.execute("INSERT INTO voice_hits SELECT source, text_hash, ? FROM voice_norm "
                        "WHERE regexp_matches(norm, ?)", [rule.theme, rule.pattern()])
        current = "" if scores_current else (
            f"JOIN (SELECT source, id, text_hash FROM ({_all_comments_sql()})) c "
            "ON c.source = s.source AND c.id = s.id AND c.text_hash = s.text_hash")
        cur.execute("INSERT INTO comment_themes SELECT s.source, s.id, h.theme, 'rule' FROM comment_scores s "
                    "JOIN (SELECT DISTINCT source, text_hash, theme FROM voice_hits) h "
                    f"ON h.source = s.source AND h.text_hash = s.text_hash {current}")
    finally:
        cur.execute("DROP TABLE IF EXISTS voice_norm")
        cur.execute("DROP TABLE IF EXISTS voice_hits")
    return int(cur.execute("SELECT count(*) FROM comment_themes WHERE origin = 'rule'").fetchone()[0])


# -- refresh ----------------------------------------------------------------------------------------
_REFRESH_LOCK = threading.Lock()

# Distinct comments one analysis may hold in the app's process (and in an import). Measured: 1.6 GB at
# the peak for 589,428 different comments (about 2.7 KB each: the texts in pandas, then TF-IDF, the
# models and the themes), so 500,000 keep the app near its 2 GB budget; repeated comments cost no
# Python memory (the analysis runs on distinct texts). Beyond it the analysis runs from the command
# line (`python -m cx voice`), which may use the machine's memory. TOUCHPOINT_VOICE_MAX_COMMENTS changes it.
APP_MAX_COMMENTS = 500_000
BYTES_PER_TEXT = 2_700


class TooManyComments(VoiceError):
    """More comments than the app analyses in its own process."""


def app_comment_limit() -> int:
    """How many comments the app (its pages and imports) analyses itself."""
    raw = os.environ.get("TOUCHPOINT_VOICE_MAX_COMMENTS", "").strip()
    if not raw:
        return APP_MAX_COMMENTS
    try:
        limit = int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        limit = 0
    if limit <= 0:
        raise VoiceError(f"TOUCHPOINT_VOICE_MAX_COMMENTS={raw!r} is not a number of comments.",
                         fix=f"Use a whole number such as 2000000, or unset it for the default ({APP_MAX_COMMENTS:,}).")
    return limit


@dataclass(frozen=True)
class RefreshResult:
    comments: int
    rescored: bool
    reports: tuple[ModelReport, ...]
    themes: int

    def as_dict(self) -> dict[str, Any]:
        return {"comments": self.comments, "rescored": self.rescored, "themes": self.themes,
                "models": [r.as_dict() for r in self.reports]}


def _texts_sql() -> str:
    """Each distinct comment once — its source, text, language column and the label its score gives —
    with how many comments it stands for. Everything the analysis decides about a comment follows from
    these four, so it runs on distinct texts and the results reach each comment through a join."""
    return (f"SELECT source, text_hash, any_value(text) AS text, hint, sign, count(*) AS n "
            f"FROM ({_all_comments_sql()}) GROUP BY source, text_hash, hint, sign "
            f"ORDER BY source, text_hash, hint, sign")


# A distinct text's discovered themes: one row per text (its key, as _texts_sql groups) and theme.
_THEME_COLUMNS = ("source", "text_hash", "hint", "sign", "theme", "origin")

# A distinct text's results reach every comment that has it (same source, text, language column and label).
_SAME_TEXT = ("c.source = r.source AND c.text_hash = r.text_hash AND c.hint IS NOT DISTINCT FROM r.hint "
              "AND c.sign IS NOT DISTINCT FROM r.sign")


def refresh(store: Store, *, force: bool = False, limited: bool = True) -> RefreshResult:
    """Score every comment and find its themes when the comments changed since the last time (or
    ``force``); a no-op otherwise. Writes ``comment_scores`` and ``comment_themes`` in one transaction.
    Each distinct text is analysed once, weighted by how many comments carry it (results equal those of
    analysing every comment: tested), so memory follows the number of distinct texts, not of comments.
    ``limited``: refuse (``TooManyComments``, nothing written) rather than analyse more than
    ``app_comment_limit()`` distinct texts in this process, as the app and imports do; the command line
    (``python -m cx voice``) passes False."""
    with _REFRESH_LOCK:
        fp, n = _fingerprint(store)
        state = store.get_setting("voice_state", {}) or {}
        if not force and state.get("fingerprint") == fp:
            reports = tuple(ModelReport(**{**r, "band": tuple(r["band"]) if r.get("band") else None})
                            for r in state.get("models", []))
            return RefreshResult(int(state.get("comments", 0)), False, reports, int(state.get("themes", 0)))
        max_texts = app_comment_limit() if limited else None
        with store.cursor() as cur:
            sql = _texts_sql() + ("" if max_texts is None else f" LIMIT {int(max_texts) + 1}")
            frame = cur.execute(sql).df()
            if max_texts is not None and len(frame) > max_texts:
                distinct = int(cur.execute(f"SELECT count(*) FROM ({_texts_sql()})").fetchone()[0])
                need = max(1, round(distinct * BYTES_PER_TEXT / 1e9))
                raise TooManyComments(
                    f"The store holds {n:,} comments, {distinct:,} of them different. Analysing them needs about "
                    f"{need} GB of memory, more than the app uses for it (it analyses up to {max_texts:,} different "
                    f"comments itself).",
                    fix="Stop the app, run python -m cx voice once (on a machine with that much memory), then start "
                        "the app again: the Voice page shows that analysis. Or raise TOUCHPOINT_VOICE_MAX_COMMENTS "
                        "if this machine has the memory.")
        rules = load_rules(store)
        if frame.empty:
            results = frame[["source", "text_hash", "hint", "sign"]].assign(
                language=[], sentiment_label=[], sentiment_score=[], unscored_reason=[], model_version=[])
            reports: list[ModelReport] = []
            themes = pd.DataFrame(columns=list(_THEME_COLUMNS))
        else:
            weight = frame["n"].to_numpy(dtype=float)
            # Language depends on the text and its language column only: each such pair is detected once.
            key = frame["text"].astype(str) + "\x00" + frame["hint"].fillna("").astype(str)
            _, first, inverse = np.unique(key.to_numpy(dtype=object).astype(str), return_index=True,
                                          return_inverse=True)
            langs = np.asarray(detect_languages(frame["text"].to_numpy()[first], frame["hint"].to_numpy()[first]),
                               dtype=object)[inverse]
            sign = frame["sign"].to_numpy(dtype=float, na_value=np.nan)
            scored, reports = score_comments(frame["text"].to_numpy(), [None if math.isnan(s) else s for s in sign],
                                             langs, frame["text_hash"].to_numpy(), weight)
            results = pd.concat([frame[["source", "text_hash", "hint", "sign"]].reset_index(drop=True),
                                 pd.Series(langs, name="language"), scored], axis=1)
            # Complaint or praise: the customer's own score where there is one, else the sentiment.
            by_label = scored["sentiment_label"].map({"negative": -1, "neutral": 0, "positive": 1}).to_numpy(float)
            polarity = np.where(np.isnan(sign), np.nan_to_num(by_label, nan=0.0), sign)
            themes = _discover_all(frame, langs, polarity, weight)
        results["sign"] = results["sign"].astype("Int64")
        themes["sign"] = themes["sign"].astype("Int64")
        with store.transaction() as cur:
            cur.execute("DELETE FROM comment_scores")
            cur.execute("DELETE FROM comment_themes")
            # Streamed from the tables (no copy of the comments is held): each comment takes the results of
            # its distinct text. Each text's themes are distinct already, so neither insert needs DISTINCT.
            each_comment = f"(SELECT source, id, text_hash, hint, sign FROM ({_all_comments_sql()}))"
            cur.register("voice_results", results)
            try:
                cur.execute(
                    "INSERT INTO comment_scores SELECT c.source, c.id, r.language, r.sentiment_label, "
                    "r.sentiment_score, r.unscored_reason, r.model_version, c.text_hash "
                    f"FROM {each_comment} c JOIN voice_results r ON {_SAME_TEXT}")
            finally:
                cur.unregister("voice_results")
            if len(themes):
                cur.register("voice_themes", themes.drop_duplicates())
                try:
                    cur.execute("INSERT INTO comment_themes SELECT c.source, c.id, r.theme, r.origin "
                                f"FROM {each_comment} c JOIN voice_themes r ON {_SAME_TEXT}")
                finally:
                    cur.unregister("voice_themes")
            _apply_rules(cur, rules, scores_current=True)
            n_themes = int(cur.execute("SELECT count(DISTINCT theme) FROM comment_themes").fetchone()[0])
            comments = int(frame["n"].sum())
            new_state = {"fingerprint": fp, "comments": comments, "themes": n_themes,
                         "models": [r.as_dict() for r in reports]}
            cur.execute("INSERT OR REPLACE INTO settings VALUES ('voice_state', ?)", [json.dumps(new_state)])
        return RefreshResult(comments, True, tuple(reports), n_themes)


def _discover_all(frame: pd.DataFrame, langs: np.ndarray, polarity: np.ndarray, weight: np.ndarray) -> pd.DataFrame:
    """Discovered themes per source and language (ticket texts are another genre than survey comments),
    one row per distinct text (``source, text_hash, hint, sign``) and theme."""
    parts = []
    for source in SOURCES:
        m = (frame["source"] == source).to_numpy()
        if m.any():
            parts.append(_discover_source(frame[m].reset_index(drop=True), langs[m], polarity[m], weight[m]))
    return pd.concat(parts, ignore_index=True)


def _discover_source(frame: pd.DataFrame, langs: np.ndarray, polarity: np.ndarray, weight: np.ndarray) -> pd.DataFrame:
    counts = pd.Series(weight).groupby(langs).sum().sort_values(ascending=False, kind="stable")
    several = int((counts >= MIN_THEME_DOCS).sum()) > 1
    parts = []
    for lang, n in counts.items():
        if lang == UNDETERMINED or n < MIN_THEME_DOCS:
            continue
        idx = np.where(langs == lang)[0]
        labels, assigned = discover_themes(frame["text"].to_numpy()[idx], str(lang), polarity[idx], weights=weight[idx])
        if not labels:
            continue
        prefix = f"[{lang}] " if several else ""
        rows = [(i, t) for i, ts in zip(idx, assigned) for t in ts]
        if rows:
            pos, th = zip(*rows)
            part = frame.iloc[list(pos)][["source", "text_hash", "hint", "sign"]].reset_index(drop=True)
            parts.append(part.assign(theme=[prefix + labels[t] for t in th], origin="auto"))
    if not parts:
        return pd.DataFrame(columns=list(_THEME_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def is_current(store: Store) -> bool:
    """Whether the stored analysis was made from the comments the store holds now."""
    return fingerprint(store) == (store.get_setting("voice_state", {}) or {}).get("fingerprint")


def refresh_after_import(store: Store, kind: str, note=None) -> None:
    """The import's hook: rescore when the import touched a table with comments. The import itself has
    already committed; a failure here is kept in the store and shown on the Voice page, never undoes it.
    ``note(fraction, message)`` reports progress."""
    if kind not in SOURCES or os.environ.get("TOUCHPOINT_VOICE", "").lower() == "defer":
        return  # deferred: the Voice page and `python -m cx voice` analyse on first use instead
    if note is not None:
        note(0.85, "Reading the comments: language, sentiment and themes")
    try:
        refresh(store)
        store.set_setting("voice_error", None)
    except TouchpointError as exc:  # said in plain words already, with its fix
        store.set_setting("voice_error", str(exc))
    except Exception as exc:  # noqa: BLE001 - the import stands; the page offers a recompute with this message
        store.set_setting("voice_error", f"{type(exc).__name__}: {exc}")


def model_reports(store: Store) -> list[ModelReport]:
    """The per-language reports of the last scoring."""
    state = store.get_setting("voice_state", {}) or {}
    return [ModelReport(**{**r, "band": tuple(r["band"]) if r.get("band") else None}) for r in state.get("models", [])]


# -- reading the results ----------------------------------------------------------------------------
def _source(source: str) -> Source:
    if source not in SOURCES:
        raise VoiceError(f"There are no comments in {source!r}.", fix=f"Use one of {', '.join(SOURCES)}.")
    return SOURCES[source]


def _current_sql(src: Source) -> str:
    """Every row of the source that has text, with its score (only when scored from this very text)."""
    return (f"SELECT c.*, s.language, s.sentiment_label, s.sentiment_score, s.unscored_reason, s.model_version, "
            f"s.id IS NOT NULL AS analysed FROM ({_comments_sql(src)}) c LEFT JOIN comment_scores s "
            f"ON s.source = c.source AND s.id = c.id AND s.text_hash = c.text_hash")


def sources_with_comments(store: Store) -> list[str]:
    """The sources that hold at least one comment (each found by reading until its first comment)."""
    with read_cursor(store) as cur:
        return [name for name, s in SOURCES.items()
                if cur.execute(f"SELECT EXISTS (SELECT 1 FROM {quote_ident(s.table)} WHERE {s.has_text})").fetchone()[0]]


def current_counts(store: Store) -> dict[str, int]:
    """Comments in the store now, and how many of them have a current analysis (a score row made from
    their present text; removed or edited rows never count with a stale one)."""
    with read_cursor(store) as cur:
        n, a = cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE analysed) FROM ("
            + " UNION ALL ".join(_current_sql(s) for s in SOURCES.values()) + ")").fetchone()
    return {"comments": int(n), "analysed": int(a)}


def _scope(store: Store, src: Source, start: date | None, end: date | None,
           where: dict[str, Sequence[str]] | None) -> tuple[str, list[Any], list[str]]:
    """WHERE clause (dates, dimension filters) over the source table, its parameters, and the filters
    the table cannot apply. Dimension names come from the table's own columns (a whitelist)."""
    clauses, params, ignored = ["TRUE"], [], []
    if start is not None:
        clauses.append(f"{quote_ident(src.date)} >= ?")
        params.append(pd.Timestamp(start).to_pydatetime())
    if end is not None:
        clauses.append(f"{quote_ident(src.date)} < ?")
        params.append((pd.Timestamp(end) + pd.Timedelta(days=1)).to_pydatetime())
    cols = set(store.columns(src.table))
    for dim, values in (where or {}).items():
        values = [str(v) for v in values if v is not None]
        if not values:
            continue
        if dim not in cols:
            ignored.append(dim)
            continue
        clauses.append(f"CAST({quote_ident(dim)} AS VARCHAR) IN ({', '.join('?' for _ in values)})")
        params += values
    return " AND ".join(clauses), params, ignored


def _score_columns(src: Source, metric: str) -> tuple[str, str, str]:
    """SQL (score, good flag, bad flag) of a row for a metric; scores on their metric's usual scale."""
    if metric == "nps" and src.table == "responses":
        return "nps", "CAST(nps >= 9 AS INT)", "CAST(nps <= 6 AS INT)"
    if metric == "csat":
        hi, lo = "coalesce(csat_max, 5)", "coalesce(csat_min, 1)"
        sat = f"CASE WHEN {hi} <= 10 THEN csat >= {hi} - 1 ELSE csat >= {lo} + 0.8 * ({hi} - {lo}) END"
        return (f"1.0 + 4.0 * (csat - {lo}) / nullif({hi} - {lo}, 0)", f"CAST({sat} AS INT)",
                f"CAST(NOT ({sat}) AS INT)")
    if metric == "ces" and src.table == "responses":
        return _CES7, f"CAST({_CES7} >= 5 AS INT)", f"CAST({_CES7} < 5 AS INT)"
    raise VoiceError(f"{metric!r} cannot be compared across themes of {src.table}.",
                     fix="Choose NPS, CSAT or CES for survey comments, CSAT for tickets.")


METRIC_LABELS = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}
SCALE_LABELS = {"nps": "0–10", "csat": "1–5", "ces": "1–7"}


def _category_sql(src: Source) -> str:
    if src.table == "responses":
        return ("CASE WHEN nps IS NOT NULL THEN CASE WHEN nps <= 6 THEN 'detractor' WHEN nps <= 8 THEN 'passive' "
                "ELSE 'promoter' END WHEN csat IS NOT NULL THEN "
                f"CASE {_CSAT_SIGN} WHEN -1 THEN 'dissatisfied' WHEN 0 THEN 'neutral' ELSE 'satisfied' END "
                f"WHEN ces IS NOT NULL THEN CASE {_CES_SIGN} WHEN -1 THEN 'hard' WHEN 0 THEN 'neutral' ELSE 'easy' END END")
    return f"CASE WHEN csat IS NOT NULL THEN CASE {_CSAT_SIGN} WHEN -1 THEN 'dissatisfied' WHEN 0 THEN 'neutral' ELSE 'satisfied' END END"


def metrics_with_data(store: Store, source: str = "responses") -> list[str]:
    """The score metrics (nps, csat, ces) that rows with comments in the source carry."""
    src = _source(source)
    cols = ["nps", "csat", "ces"] if src.table == "responses" else ["csat"]
    with read_cursor(store) as cur:
        counts = cur.execute(f"SELECT {', '.join(f'count({c}) FILTER (WHERE {src.has_text})' for c in cols)} "
                             f"FROM {quote_ident(src.table)}").fetchone()
    return [c for c, n in zip(cols, counts) if n]


def _base(store: Store, src: Source, start, end, where, metric: str | None = None) -> tuple[str, list[Any], list[str]]:
    """Rows of the source in scope: every row (with or without text) with its text, analysis, category
    and, given a metric, its score and good/bad flags."""
    clause, params, ignored = _scope(store, src, start, end, where)
    score = good = bad = "NULL"
    if metric:
        score, good, bad = _score_columns(src, metric)
    extra = ", ".join(f"CAST(t.{quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}"
                      for c in ("customer_id", "channel") if c in set(store.columns(src.table)))
    sql = (f"SELECT CAST(t.{quote_ident(src.key)} AS VARCHAR) AS id, t.{quote_ident(src.date)} AS ts, {extra}, "
           f"t.text, t.text IS NOT NULL AS has_text, t.category, t.score, t.good, t.bad, t.nps_v, t.csat_v, t.ces_v, "
           f"s.language, s.sentiment_label, s.sentiment_score, s.unscored_reason, s.id IS NOT NULL AS analysed "
           f"FROM (SELECT *, nullif(trim({src.text}), '') AS text, {src.text_hash} AS text_hash, "
           f"{_category_sql(src)} AS category, {score} AS score, {good} AS good, {bad} AS bad, "
           + ("nps AS nps_v, csat AS csat_v, ces AS ces_v " if src.table == "responses" else
              "NULL AS nps_v, csat AS csat_v, NULL AS ces_v ")
           + f"FROM {quote_ident(src.table)} WHERE {clause}) t "
           f"LEFT JOIN comment_scores s ON s.source = '{src.table}' "
           f"AND s.id = CAST(t.{quote_ident(src.key)} AS VARCHAR) AND s.text_hash = t.text_hash")
    return sql, params, ignored


def sentiment_summary(store: Store, *, source: str = "responses", start=None, end=None,
                      where=None) -> dict[str, Any]:
    """Counts in scope: rows, comments, analysed, negative / neutral / positive, unscored, and the
    unscored reasons with their counts."""
    src = _source(source)
    sql, params, ignored = _base(store, src, start, end, where)
    with read_cursor(store) as cur:
        r = cur.execute(
            f"SELECT count(*), count(*) FILTER (WHERE has_text), count(*) FILTER (WHERE has_text AND analysed), "
            "count(*) FILTER (WHERE sentiment_label = 'negative'), count(*) FILTER (WHERE sentiment_label = 'neutral'), "
            "count(*) FILTER (WHERE sentiment_label = 'positive'), "
            "count(*) FILTER (WHERE has_text AND analysed AND sentiment_label IS NULL), avg(sentiment_score) "
            f"FROM ({sql})", params).fetchone()
        reasons = cur.execute(f"SELECT unscored_reason, count(*) AS n FROM ({sql}) WHERE has_text AND analysed "
                              "AND sentiment_label IS NULL GROUP BY 1 ORDER BY 2 DESC", params).fetchall()
    keys = ("rows", "comments", "analysed", "negative", "neutral", "positive", "unscored")
    out: dict[str, Any] = {k: int(v or 0) for k, v in zip(keys, r[:7])}
    out["mean_score"] = None if r[7] is None else float(r[7])
    out["reasons"] = [(str(a), int(b)) for a, b in reasons]
    out["ignored_filters"] = ignored
    return out


def _grain(grain: str) -> str:
    if grain not in GRAINS:
        raise VoiceError(f"Unknown time grain {grain!r}.", fix=f"Use one of {', '.join(GRAINS)}.")
    return grain


def sentiment_trend(store: Store, *, source: str = "responses", grain: str = "month", start=None, end=None,
                    where=None) -> pd.DataFrame:
    """Per period: comments, negative / neutral / positive / unscored counts, their shares of the scored
    comments (%), and the mean sentiment score (−1…1)."""
    src = _source(source)
    sql, params, _ = _base(store, src, start, end, where)
    with read_cursor(store) as cur:
        df = cur.execute(
            f"SELECT CAST(date_trunc('{_grain(grain)}', ts) AS DATE) AS period, count(*) AS comments, "
            "count(*) FILTER (WHERE sentiment_label = 'negative') AS negative, "
            "count(*) FILTER (WHERE sentiment_label = 'neutral') AS neutral, "
            "count(*) FILTER (WHERE sentiment_label = 'positive') AS positive, "
            "count(*) FILTER (WHERE sentiment_label IS NULL) AS unscored, avg(sentiment_score) AS mean_score "
            f"FROM ({sql}) WHERE has_text GROUP BY 1 ORDER BY 1", params).df()
    scored = (df["negative"] + df["neutral"] + df["positive"]).astype(float)
    for c in ("negative", "neutral", "positive"):
        df[f"pct_{c}"] = (100.0 * df[c] / scored.where(scored > 0)).astype(float)
    return df


def theme_impact(store: Store, *, source: str = "responses", metric: str | None = None, start=None, end=None,
                 where=None, confidence: float = 0.95) -> pd.DataFrame:
    """One row per theme in scope: ``mentions`` (comments carrying it), ``share`` (% of comments),
    ``mean_sentiment`` (−1…1), ``pct_negative`` (% of its scored comments), and against the chosen
    metric: ``mean_with`` / ``mean_without`` (mean score of commented rows mentioning the theme vs the
    other commented rows, on the metric's scale), ``diff`` with its Welch ``diff_low``–``diff_high``
    interval, and ``points_cost``: how many points the metric (NPS, % CSAT satisfied, % CES easy) would
    rise if the rows mentioning the theme had not been detractors / dissatisfied / hard — the metric
    without those rows minus the actual. Sorted by mentions."""
    from scipy import stats as st

    src = _source(source)
    if not metric:  # the first score the source's rows carry (a scan: only when none is asked for)
        metrics_here = metrics_with_data(store, source)
        metric = metrics_here[0] if metrics_here else None
    sql, params, _ = _base(store, src, start, end, where, metric)
    with read_cursor(store) as cur:
        tot = cur.execute(f"SELECT count(score), coalesce(sum(good), 0), coalesce(sum(bad), 0), "
                          "count(*) FILTER (WHERE has_text AND analysed), count(score) FILTER (WHERE has_text AND analysed), "
                          "sum(score) FILTER (WHERE has_text AND analysed), "
                          "sum(score * score) FILTER (WHERE has_text AND analysed) "
                          f"FROM ({sql})", params).fetchone()
        th = cur.execute(
            f"SELECT t.theme, t.origin, count(*) AS mentions, avg(b.sentiment_score) AS mean_sentiment, "
            "count(b.sentiment_label) AS scored, count(*) FILTER (WHERE b.sentiment_label = 'negative') AS negative, "
            "count(b.score) AS n, sum(b.score) AS s, sum(b.score * b.score) AS ss, coalesce(sum(b.bad), 0) AS bad "
            f"FROM ({sql}) b JOIN comment_themes t ON t.source = ? AND t.id = b.id "
            "WHERE b.has_text AND b.analysed GROUP BY 1, 2 ORDER BY mentions DESC, theme",
            params + [src.table]).df()
    cols = ["theme", "origin", "mentions", "share", "mean_sentiment", "pct_negative", "mean_with", "mean_without",
            "diff", "diff_low", "diff_high", "points_cost", "n"]
    if th.empty:
        return pd.DataFrame(columns=cols)
    n_all, good_all, bad_all, comments, n_c, s_c, ss_c = tot
    th["share"] = 100.0 * th["mentions"] / comments if comments else np.nan
    th["pct_negative"] = 100.0 * th["negative"] / th["scored"].where(th["scored"] > 0)
    out = []
    for r in th.itertuples(index=False):
        row = {"theme": r.theme, "origin": r.origin, "mentions": int(r.mentions), "share": float(r.share),
               "mean_sentiment": None if pd.isna(r.mean_sentiment) else float(r.mean_sentiment),
               "pct_negative": None if pd.isna(r.pct_negative) else float(r.pct_negative), "n": int(r.n),
               "mean_with": np.nan, "mean_without": np.nan, "diff": np.nan, "diff_low": np.nan, "diff_high": np.nan,
               "points_cost": np.nan}
        if metric and r.n:
            n1, s1, ss1 = float(r.n), float(r.s), float(r.ss)
            n0, s0, ss0 = float(n_c) - n1, float(s_c or 0) - s1, float(ss_c or 0) - ss1
            m1 = s1 / n1
            row["mean_with"] = m1
            if n0 > 0:
                m0 = s0 / n0
                row["mean_without"], row["diff"] = m0, m1 - m0
                if n1 > 1 and n0 > 1:
                    v1 = max((ss1 - n1 * m1 * m1) / (n1 - 1), 0.0)
                    v0 = max((ss0 - n0 * m0 * m0) / (n0 - 1), 0.0)
                    se = math.sqrt(v1 / n1 + v0 / n0)
                    if se > 0:
                        df_ = (v1 / n1 + v0 / n0) ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1))
                        half = float(st.t.ppf(0.5 + confidence / 2, df_)) * se
                        row["diff_low"], row["diff_high"] = m1 - m0 - half, m1 - m0 + half
            b = float(r.bad)
            if n_all and n_all - b > 0:
                if metric == "nps":
                    actual = 100.0 * (good_all - bad_all) / n_all
                    without = 100.0 * (good_all - (bad_all - b)) / (n_all - b)
                else:
                    actual = 100.0 * good_all / n_all
                    without = 100.0 * good_all / (n_all - b)
                row["points_cost"] = without - actual
        out.append(row)
    frame = pd.DataFrame(out, columns=cols)
    frame.attrs["metric"] = metric
    return frame


def theme_trend(store: Store, *, source: str = "responses", themes: Sequence[str] = (), grain: str = "month",
                start=None, end=None, where=None) -> pd.DataFrame:
    """Per period and theme: mentions, and their share (%) of the period's comments."""
    src = _source(source)
    sql, params, _ = _base(store, src, start, end, where)
    themes = [str(t) for t in themes]
    if not themes:
        return pd.DataFrame(columns=["period", "theme", "mentions", "comments", "share"])
    g = _grain(grain)
    with read_cursor(store) as cur:
        df = cur.execute(
            f"WITH b AS ({sql}), per AS (SELECT CAST(date_trunc('{g}', ts) AS DATE) AS period, count(*) AS comments "
            "FROM b WHERE has_text AND analysed GROUP BY 1), "
            f"hits AS (SELECT CAST(date_trunc('{g}', b.ts) AS DATE) AS period, t.theme, count(*) AS mentions FROM b "
            "JOIN comment_themes t ON t.source = ? AND t.id = b.id "
            f"WHERE b.has_text AND b.analysed AND t.theme IN ({', '.join('?' for _ in themes)}) GROUP BY 1, 2) "
            "SELECT p.period, th.theme, coalesce(h.mentions, 0) AS mentions, p.comments FROM per p "
            f"CROSS JOIN (SELECT unnest([{', '.join('?' for _ in themes)}]) AS theme) th "
            "LEFT JOIN hits h ON h.period = p.period AND h.theme = th.theme ORDER BY 1, 2",
            params + [src.table] + themes + themes).df()
    df["share"] = 100.0 * df["mentions"] / df["comments"].where(df["comments"] > 0)
    return df


VERBATIM_SENTIMENTS = ("negative", "neutral", "positive", "unscored")
VERBATIM_COLUMNS = ("date", "customer", "channel", "nps", "csat", "ces", "category", "sentiment", "sentiment_score",
                    "language", "themes", "comment", "id")


def verbatims(store: Store, *, source: str = "responses", start=None, end=None, where=None, search: str = "",
              themes: Sequence[str] = (), sentiments: Sequence[str] = (), categories: Sequence[str] = (),
              limit: int | None = 50, offset: int = 0, distinct: bool = False) -> tuple[pd.DataFrame, int]:
    """Comments in scope matching every given filter (search: words anywhere in the text, case and
    accents ignored), newest first: a page of rows (date, customer, channel, score, category,
    sentiment, sentiment score, language, themes, comment, id) and the number of rows matching.
    ``limit`` 0: the number only (and no rows). ``distinct``: the rows are different texts (the newest
    comment saying each), as examples; the number still counts every matching comment."""
    src = _source(source)
    sql, params, _ = _base(store, src, start, end, where)
    clauses, p2 = ["b.has_text"], []
    if search and search.strip():
        clauses.append("strpos(strip_accents(lower(b.text)), strip_accents(lower(?))) > 0")
        p2.append(search.strip())
    if themes:
        clauses.append(f"b.analysed AND b.id IN (SELECT id FROM comment_themes WHERE source = ? AND theme IN "
                       f"({', '.join('?' for _ in themes)}))")
        p2 += [src.table] + [str(t) for t in themes]
    if sentiments:
        bad = [s for s in sentiments if s not in VERBATIM_SENTIMENTS]
        if bad:
            raise VoiceError(f"Unknown sentiment {bad[0]!r}.", fix=f"Use {', '.join(VERBATIM_SENTIMENTS)}.")
        labels = [s for s in sentiments if s != "unscored"]
        parts = []
        if labels:
            parts.append(f"b.sentiment_label IN ({', '.join('?' for _ in labels)})")
            p2 += labels
        if "unscored" in sentiments:
            parts.append("b.sentiment_label IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")")
    if categories:
        clauses.append(f"b.category IN ({', '.join('?' for _ in categories)})")
        p2 += [str(c) for c in categories]
    where_sql = " AND ".join(clauses)
    cols = set(store.columns(src.table))
    customer = "b.customer_id" if "customer_id" in cols else "NULL"
    channel = "b.channel" if "channel" in cols else "NULL"
    page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {max(0, int(offset))}"
    with read_cursor(store) as cur:
        total = int(cur.execute(f"SELECT count(*) FROM ({sql}) b WHERE {where_sql}", params + p2).fetchone()[0])
        if limit == 0:  # the count only
            return pd.DataFrame(columns=list(VERBATIM_COLUMNS)), total
        # The page of rows first, then their themes (attaching themes before the LIMIT aggregated them for
        # every matching comment: 3.9 s for a page of 25 at 10 M).
        df = cur.execute(
            f"WITH page AS (SELECT b.* FROM ({sql}) b WHERE {where_sql} "
            + ("QUALIFY row_number() OVER (PARTITION BY b.text ORDER BY b.ts DESC, b.id) = 1 " if distinct else "")
            + f"ORDER BY b.ts DESC, b.id{page}) "
            f"SELECT b.ts AS date, {customer} AS customer, {channel} AS channel, b.nps_v AS nps, b.csat_v AS csat, "
            "b.ces_v AS ces, b.category, coalesce(b.sentiment_label, 'unscored') AS sentiment, "
            "round(b.sentiment_score, 2) AS sentiment_score, b.language, "
            "(SELECT string_agg(theme, '; ' ORDER BY theme) FROM comment_themes t WHERE t.source = ? AND t.id = b.id "
            "AND b.analysed) AS themes, b.text AS comment, b.id "
            "FROM page b ORDER BY b.ts DESC, b.id",
            params + p2 + [src.table]).df()
    return df, total


def revision(store: Store) -> str:
    """Changes whenever the stored analysis does (new scores, saved rules): with the data version, the
    key of every cached view of it."""
    with read_cursor(store) as cur:
        got = cur.execute("SELECT string_agg(value, '|' ORDER BY key) FROM settings "
                          "WHERE key IN ('voice_state', 'voice_rules', 'voice_error')").fetchone()[0]
    return hashlib.md5((got or "").encode("utf-8")).hexdigest()


def last_error(store: Store) -> str | None:
    """Why the last scoring after an import failed (None when it did not)."""
    return store.get_setting("voice_error", None)


def describe_models(reports: Sequence[ModelReport]) -> list[str]:
    """One plain sentence per language: how its comments were scored and how well that agrees."""
    out = []
    for r in reports:
        name = language_name(r.language)
        if r.method == "learned":
            out.append(f"{name}: {r.comments:,} comments, scored by a model learned from "
                       f"{r.negative_labelled + r.positive_labelled:,} of them that carry a low or high score; on "
                       f"comments it did not learn from it agrees with the customer's own score "
                       f"{100 * (r.agreement or 0):.1f}% of the time (negative vs positive)"
                       + (f", {100 * r.agreement_3:.1f}% with a neutral middle." if r.agreement_3 is not None else "."))
        elif r.method == "lexicon":
            out.append(f"{name}: {r.comments:,} comments, scored by the VADER lexicon (too few scored comments "
                       f"to learn from: {r.negative_labelled} low, {r.positive_labelled} high, {MIN_PER_CLASS} of each needed).")
        elif r.language != UNDETERMINED:
            out.append(f"{name}: {r.comments:,} comments left unscored ({r.negative_labelled} low and "
                       f"{r.positive_labelled} high scores; {MIN_PER_CLASS} of each are needed to learn {name}).")
        else:
            out.append(f"{r.comments:,} comments without words (numbers, punctuation or symbols only) left unscored.")
    return out


def score_texts(texts: Sequence[str], store: Store | None = None) -> pd.DataFrame:
    """Sentiment of free texts (one per item): ``language``, ``label`` (negative / neutral / positive, or
    ``unscored``), ``score`` (−1…1) and ``reason``. With a store, each language the store has learned
    is scored by a model fitted on all of that store's scored comments in it (with the store's calibrated
    neutral band); otherwise English uses the VADER lexicon and other languages stay unscored."""
    texts = [str(t) for t in texts]
    langs = np.asarray(detect_languages(texts), dtype=object)
    label = np.full(len(texts), "unscored", dtype=object)
    score = np.full(len(texts), np.nan)
    reason = np.full(len(texts), None, dtype=object)
    learned = {r.language: r for r in (model_reports(store) if store is not None else []) if r.method == "learned"}
    for lang in sorted(set(langs)):
        idx = np.where(langs == lang)[0]
        batch = [texts[i] for i in idx]
        if lang in learned:
            with store.cursor() as cur:
                train = cur.execute(  # each distinct labelled text once, with how many comments say it
                    f"SELECT c.text, c.sign, count(*) FROM ({_current_sql(SOURCES['responses'])} UNION ALL "
                    f"{_current_sql(SOURCES['tickets'])}) c WHERE c.language = ? AND c.sign IN (-1, 1) "
                    f"GROUP BY c.text, c.sign ORDER BY c.text, c.sign", [lang]).fetchall()
            p = _fit_predict([t for t, _, _ in train], [int(s == 1) for _, s, _ in train], batch,
                             [k for _, _, k in train])
            sc = 2 * p - 1
            lo, hi = learned[lang].band or (-0.2, 0.2)
            score[idx], label[idx] = sc, _label(sc, lo, hi)
        elif lang == "en":
            sc = lexicon_scores(batch)
            score[idx], label[idx] = sc, _label(sc, -0.05, 0.05)
        elif lang == UNDETERMINED:
            reason[idx] = "No words to score."
        else:
            reason[idx] = (f"No sentiment model for {language_name(lang)}"
                           + (": import scored comments in it and pass --db." if store is None else
                              f": the store has too few scored comments in {language_name(lang)}."))
    return pd.DataFrame({"text": texts, "language": langs, "label": label, "score": np.round(score, 3), "reason": reason})
