"""The shared filter set: a date range (or preset), a comparison period and dimension values.

One frozen object resolves every default once and is the cache key of every view (STYLE 8). It
round-trips through a URL query string, so a copied link reproduces the same view; values in a URL
that do not exist in the data are dropped with a notice, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Mapping

from cx.store import TABLES, Store, quote_ident

PRESETS = {
    "last_30": "Last 30 days",
    "last_90": "Last 90 days",
    "qtd": "Quarter to date",
    "ytd": "Year to date",
    "last_365": "Last 12 months",
    "all": "All time",
    "custom": "Custom range",
}
DEFAULT_PRESET = "last_90"
COMPARISONS = {"previous": "Previous period", "year": "Same period last year"}
# Filterable dimensions shown first, in this order; analyst-mapped dimensions follow.
CORE_DIMENSIONS = ("channel", "touchpoint", "journey_stage", "segment", "region", "product")
MAX_VALUES_PER_DIMENSION = 500
# Columns that are dimensions of one table but make no sense as a global filter.
NOT_FILTERS = frozenset({"step", "status", "currency"})


@dataclass(frozen=True)
class Filters:
    """What every page shows: ``start``–``end`` (inclusive dates), compared with an earlier period,
    restricted to the listed values of each dimension (empty = all values)."""

    preset: str = DEFAULT_PRESET
    start: date | None = None
    end: date | None = None
    compare: str = "previous"
    dims: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    @property
    def where(self) -> dict[str, tuple[str, ...]]:
        """Dimension → selected values, only for dimensions with a selection."""
        return {d: v for d, v in self.dims if v}

    def with_dim(self, dim: str, values: tuple[str, ...] | list[str]) -> "Filters":
        rest = {d: v for d, v in self.dims}
        rest[dim] = tuple(sorted(set(values)))
        return replace(self, dims=tuple(sorted((d, v) for d, v in rest.items() if v)))

    def resolved(self, first: date | None, last: date | None) -> "Filters":
        """The same filters with ``start``/``end`` computed from the preset, anchored on the latest
        date in the data (``last``) so an old export still shows its own recent period."""
        if self.preset == "custom" and self.start and self.end:
            return self
        if last is None:
            return replace(self, start=None, end=None)
        start: date | None
        if self.preset == "last_30":
            start = last - timedelta(days=29)
        elif self.preset == "last_90":
            start = last - timedelta(days=89)
        elif self.preset == "last_365":
            start = last - timedelta(days=364)
        elif self.preset == "qtd":
            start = date(last.year, 3 * ((last.month - 1) // 3) + 1, 1)
        elif self.preset == "ytd":
            start = date(last.year, 1, 1)
        else:
            start = first
        return replace(self, start=start, end=last)

    def comparison(self) -> tuple[date, date] | None:
        """The comparison period: the same number of days just before, or the same dates a year earlier."""
        if self.start is None or self.end is None:
            return None
        from cx.metrics import previous_range  # the one definition the comparisons themselves use

        return previous_range(self.start, self.end, self.compare)

    def to_query_params(self) -> dict[str, str | list[str]]:
        """The filters as URL query parameters (defaults left out, so links stay short)."""
        out: dict[str, str | list[str]] = {}
        if self.preset != DEFAULT_PRESET:
            out["range"] = self.preset
        if self.preset == "custom" and self.start and self.end:
            out["from"] = self.start.isoformat()
            out["to"] = self.end.isoformat()
        if self.compare != "previous":
            out["compare"] = self.compare
        for dim, values in self.dims:
            if values:
                out[f"f.{dim}"] = list(values)
        return out

    @classmethod
    def from_query_params(cls, params: Mapping[str, Any], known: Mapping[str, list[str]]) -> tuple["Filters", list[str]]:
        """Filters read from URL query parameters; anything unknown is ignored and reported in plain words.

        ``known`` maps each filterable dimension to its values in the data."""
        notices: list[str] = []

        def one(key: str) -> str | None:
            v = params.get(key)
            if isinstance(v, (list, tuple)):
                v = v[-1] if v else None
            return None if v is None else str(v)

        def many(key: str) -> list[str]:
            v = params.get(key)
            if v is None:
                return []
            return [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]

        preset = one("range") or DEFAULT_PRESET
        if preset not in PRESETS:
            notices.append(f"The link's date range “{preset}” is not known; showing the {PRESETS[DEFAULT_PRESET].lower()}.")
            preset = DEFAULT_PRESET
        start = end = None
        if preset == "custom":
            try:
                start = date.fromisoformat(one("from") or "")
                end = date.fromisoformat(one("to") or "")
                if start > end:
                    raise ValueError
            except ValueError:
                notices.append("The link's custom dates are not valid (from ≤ to, as YYYY-MM-DD); showing the "
                               f"{PRESETS[DEFAULT_PRESET].lower()}.")
                preset, start, end = DEFAULT_PRESET, None, None
        compare = one("compare") or "previous"
        if compare not in COMPARISONS:
            notices.append(f"The link's comparison “{compare}” is not known; comparing with the previous period.")
            compare = "previous"
        dims: dict[str, tuple[str, ...]] = {}
        for key in params:
            if not str(key).startswith("f."):
                continue
            dim = str(key)[2:]
            if dim not in known:
                notices.append(f"The link filters on “{dim}”, which this data does not have; that filter is ignored.")
                continue
            values = many(key)
            good = [v for v in values if v in set(known[dim])]
            if len(good) < len(values):
                bad = [v for v in values if v not in set(known[dim])]
                notices.append(f"{dim}: {', '.join(repr(b) for b in bad[:5])} not found in the data; ignored.")
            if good:
                dims[dim] = tuple(sorted(set(good)))
        return cls(preset=preset, start=start, end=end, compare=compare, dims=tuple(sorted(dims.items()))), notices


# Each table's own date column: what a date filter applies to.
DATE_COLUMNS = {"responses": "submitted_at", "tickets": "created_at", "orders": "ordered_at",
                "events": "occurred_at", "customers": "signup_at"}


def data_date_span(store: Store) -> tuple[date | None, date | None]:
    """The first and last dates found in any canonical table (the anchor of date presets); on an
    external engine, in its tables."""
    from cx import engine, external

    if engine.is_external():
        return external.date_span(engine.backend_for(), DATE_COLUMNS)
    parts = " UNION ALL ".join(
        f"SELECT min({c}) AS lo, max({c}) AS hi FROM {quote_ident(t)}" for t, c in DATE_COLUMNS.items()
    )
    with store.cursor() as cur:
        lo, hi = cur.execute(f"SELECT CAST(min(lo) AS DATE), CAST(max(hi) AS DATE) FROM ({parts})").fetchone()
    return lo, hi


DIMENSION_CACHE_KEY = "cache:dimension_values"


def dimension_values(store: Store) -> dict[str, list[str]]:
    """Every filterable dimension with its values (most frequent first, at most 500), across tables.

    Counting them reads every row of every table (1–2 s at tens of millions of rows), so the answer is
    kept in the store keyed on its data version: a restarted app on unchanged data finds it at once,
    and any import or removal (which changes the version) makes it be counted again. On an external
    engine they are counted in its tables (the app caches them for a few minutes)."""
    from cx import engine, external

    if engine.is_external():
        return external.dimension_values(engine.backend_for(), CORE_DIMENSIONS, NOT_FILTERS, MAX_VALUES_PER_DIMENSION)
    version = store.data_version()
    saved = store.get_setting(DIMENSION_CACHE_KEY)
    if isinstance(saved, dict) and saved.get("data_version") == version:
        return {d: list(values) for d, values in saved["values"]}
    out = _count_dimension_values(store)
    store.set_setting(DIMENSION_CACHE_KEY, {"data_version": version, "values": [[d, v] for d, v in out.items()]})
    return out


def _count_dimension_values(store: Store) -> dict[str, list[str]]:
    by_dim: dict[str, list[str]] = {}
    for table in TABLES:
        for dim in store.dimensions(table):
            if dim in NOT_FILTERS:
                continue
            by_dim.setdefault(dim, []).append(table)
    order = [d for d in CORE_DIMENSIONS if d in by_dim] + sorted(d for d in by_dim if d not in CORE_DIMENSIONS)
    if not order:
        return {}
    # One scan per table (GROUPING SETS: every dimension of the table at once), then the counts of a
    # dimension found in several tables add up. Identifiers come from the store's own column list (a
    # whitelist), never from the user; dimension names travel as bound values.
    parts, args = [], []
    for table in TABLES:
        dims = [d for d in order if table in by_dim[d]]
        if not dims:
            continue
        which = " ".join(f"WHEN grouping({quote_ident(d)}) = 0 THEN ?" for d in dims)
        args += dims
        parts.append(
            f"SELECT CASE {which} END AS dim, CAST(coalesce({', '.join(quote_ident(d) for d in dims)}) AS VARCHAR) AS v, "
            f"count(*) AS n FROM {quote_ident(table)} "
            f"GROUP BY GROUPING SETS ({', '.join(f'({quote_ident(d)})' for d in dims)})")
    with store.cursor() as cur:
        rows = cur.execute(
            f"SELECT dim, v FROM (SELECT dim, v, sum(n) AS n FROM ({' UNION ALL '.join(parts)}) WHERE v IS NOT NULL "
            f"GROUP BY dim, v) QUALIFY row_number() OVER (PARTITION BY dim ORDER BY n DESC, v) <= "
            f"{int(MAX_VALUES_PER_DIMENSION)} ORDER BY dim, n DESC, v", args).fetchall()
    found: dict[str, list[str]] = {}
    for dim, v in rows:
        found.setdefault(dim, []).append(v)
    return {d: found[d] for d in order if d in found}
