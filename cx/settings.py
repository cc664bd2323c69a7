"""Analysis settings kept in the store: metric targets, minimum sample size, significance level."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from cx.errors import TouchpointError
from cx.metrics import CES_EASY_MIN, MIN_N, REGISTRY
from cx.store import Store

SCALES = ((1, 5), (1, 7), (1, 10), (0, 10), (0, 100))
DEFAULT_TARGETS = {"nps": 30.0, "csat": 80.0, "ces": 5.5, "frt_median": 4.0, "ttr_median": 24.0, "churn_rate": 5.0}


class InvalidSetting(TouchpointError):
    """A setting outside what it can be."""


@dataclass(frozen=True)
class Settings:
    """What every page applies: targets per metric (in the metric's unit), the sample size below which
    a result is flagged, the significance level for calling a change a change, the CSAT and CES scales
    assumed for imports whose values fit several, and the lowest "easy" CES answer (on 1–7)."""

    targets: tuple[tuple[str, float], ...] = field(default=tuple(sorted(DEFAULT_TARGETS.items())))
    min_n: int = MIN_N
    alpha: float = 0.05
    csat_scale: tuple[int, int] = (1, 5)
    ces_scale: tuple[int, int] = (1, 7)
    ces_easy_min: float = CES_EASY_MIN

    @property
    def target_map(self) -> dict[str, float]:
        return dict(self.targets)

    def with_target(self, metric: str, value: float | None) -> "Settings":
        t = self.target_map
        if value is None:
            t.pop(metric, None)
        else:
            t[metric] = float(value)
        return replace(self, targets=tuple(sorted(t.items()))).validated()

    def validated(self) -> "Settings":
        for name, value in self.targets:
            if name not in REGISTRY:
                raise InvalidSetting(f"There is no metric {name!r} to set a target for.", fix="Choose a metric from the list.")
            if not isinstance(value, (int, float)) or math.isnan(value):
                raise InvalidSetting(f"The target for {REGISTRY[name].label} is not a number.", fix="Enter a number.")
            unit = REGISTRY[name].unit
            if unit == "points" and not -100 <= value <= 100:
                raise InvalidSetting(f"An NPS target must lie between −100 and 100 (got {value:g}).", fix="Enter a value in that range.")
            if unit == "percent" and not 0 <= value <= 100:
                raise InvalidSetting(f"A target for {REGISTRY[name].label} is a percentage from 0 to 100 (got {value:g}).",
                                     fix="Enter a value in that range.")
            if unit in ("hours", "count", "currency", "ratio", "score") and value < 0:
                raise InvalidSetting(f"The target for {REGISTRY[name].label} cannot be negative.", fix="Enter 0 or more.")
        if not 1 <= int(self.min_n) <= 100_000:
            raise InvalidSetting(f"The minimum sample size must be from 1 to 100,000 (got {self.min_n}).", fix="Enter a whole number, e.g. 30.")
        for name in ("csat_scale", "ces_scale"):
            if tuple(getattr(self, name)) not in SCALES:
                raise InvalidSetting(f"{getattr(self, name)} is not a scale Touchpoint knows.",
                                     fix="Choose one of " + ", ".join(f"{a}–{b}" for a, b in SCALES) + ".")
        if not 2 <= float(self.ces_easy_min) <= 7:
            raise InvalidSetting(f"The lowest “easy” CES answer must be from 2 to 7 on the 1–7 scale (got {self.ces_easy_min:g}).",
                                 fix="Use 5 for the usual top three boxes.")
        if not 0.001 <= float(self.alpha) <= 0.2:
            raise InvalidSetting(f"The significance level must be between 0.001 and 0.2 (got {self.alpha}).", fix="Use 0.05 for 95% confidence.")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"targets": dict(self.targets), "min_n": self.min_n, "alpha": self.alpha,
                "csat_scale": list(self.csat_scale), "ces_scale": list(self.ces_scale), "ces_easy_min": self.ces_easy_min}


def load_settings(store: Store) -> Settings:
    """The stored settings, or the defaults."""
    raw = store.get_setting("analysis", None)
    if not raw:
        return Settings()
    return Settings(targets=tuple(sorted((k, float(v)) for k, v in raw.get("targets", {}).items())),
                    min_n=int(raw.get("min_n", MIN_N)), alpha=float(raw.get("alpha", 0.05)),
                    csat_scale=tuple(raw.get("csat_scale", (1, 5))), ces_scale=tuple(raw.get("ces_scale", (1, 7))),
                    ces_easy_min=float(raw.get("ces_easy_min", CES_EASY_MIN)))


def save_settings(store: Store, settings: Settings) -> Settings:
    """Validate and store the settings (a bad value raises ``InvalidSetting`` and nothing changes)."""
    settings = settings.validated()
    store.set_setting("analysis", settings.as_dict())
    return settings


def target_status(metric: str, value: float | None, target: float | None) -> str | None:
    """"on target", "off target" or None when there is no target or no value."""
    if target is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    good_up = REGISTRY[metric].good == "up"
    return "on target" if (value >= target if good_up else value <= target) else "off target"
