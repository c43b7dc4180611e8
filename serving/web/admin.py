"""What the /admin page shows, read from MLflow's registry and tracking store: the policy
versions with their aliases, and the champion's learning curve as chart geometry (the template
draws it as SVG; no script library).

The registry is read through agent.registry.PolicyRegistry (MLflow's own client). A home with
no tracking file yet has no registry: the page says nothing is trained rather than creating an
empty database.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from serving.deps import SettingsDep
from serving.settings import Settings

log = logging.getLogger(__name__)

# Curves worth drawing, in order of preference; both come from agent.training's callbacks.
CURVE_METRICS = (
    ("eval/mean_return", "Evaluation return (simulated users)"),
    ("train/episode_return", "Training episode return"),
)
_lock = threading.Lock()


@dataclass(frozen=True)
class VersionRow:
    version: int
    aliases: tuple[str, ...]
    run_id: str
    registered: str  # UTC, to the minute
    best_return: float | None
    final_return: float | None


@dataclass(frozen=True)
class Tick:
    at: float  # pixels along the axis
    label: str


@dataclass(frozen=True)
class Chart:
    """A line chart's geometry in SVG user units: the plot area starts at (left, top)."""

    title: str
    metric: str
    points: tuple[tuple[int, float], ...]  # (step, value), as logged
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    polyline: str  # "x,y x,y ..."
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]


@dataclass
class RegistryView:
    model: str
    versions: list[VersionRow] = field(default_factory=list)
    curve_of: VersionRow | None = None  # whose curve is drawn (the champion, else the newest)
    charts: list[Chart] = field(default_factory=list)
    error: str | None = None


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def line_chart(
    title: str,
    metric: str,
    points: list[tuple[int, float]],
    width: int = 640,
    height: int = 260,
) -> Chart:
    """Chart geometry for ``points`` (sorted by step): y grows upwards, five ticks a side."""
    left, top, right, bottom = 64, 12, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    pts = sorted(points)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = (min(xs), max(xs)) if xs else (0, 1)
    y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    polyline = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
    x_ticks = tuple(
        Tick(px(x0 + (x1 - x0) * i / 4), f"{round(x0 + (x1 - x0) * i / 4):,}") for i in range(5)
    )
    y_ticks = tuple(
        Tick(py(y0 + (y1 - y0) * i / 4), _fmt(y0 + (y1 - y0) * i / 4)) for i in range(5)
    )
    return Chart(
        title, metric, tuple(pts), width, height, left, top, plot_w, plot_h, polyline,
        x_ticks, y_ticks,
    )  # fmt: skip


def read_registry(registry: Any, champion: str = "champion") -> RegistryView:
    """Versions (newest first) with aliases, registration time and returns from their runs,
    and the learning curves of the ``champion`` alias's run (else the newest version's)."""
    client, name = registry.client, registry.model_name
    view = RegistryView(model=name)
    for row in registry.versions():
        version = int(row["version"])
        mv = client.get_model_version(name, str(version))
        metrics: dict[str, float] = {}
        if row["run_id"]:
            metrics = dict(client.get_run(row["run_id"]).data.metrics)
        stamp = datetime.fromtimestamp(int(mv.creation_timestamp or 0) / 1000, UTC)
        view.versions.append(
            VersionRow(
                version=version,
                aliases=tuple(sorted(row["aliases"])),
                run_id=str(row["run_id"] or ""),
                registered=stamp.strftime("%Y-%m-%d %H:%M UTC"),
                best_return=metrics.get("eval/best_return"),
                final_return=metrics.get("eval/final_return"),
            )
        )
    if not view.versions:
        return view
    view.curve_of = next((v for v in view.versions if champion in v.aliases), view.versions[0])
    if view.curve_of.run_id:
        for metric, title in CURVE_METRICS:
            history = client.get_metric_history(view.curve_of.run_id, metric)
            points = [(int(m.step), float(m.value)) for m in history]
            if len(points) >= 2:
                view.charts.append(line_chart(title, metric, points))
    return view


class AdminRegistry:
    """Opens the policy registry of the app's home on first need (None until the tracking
    file exists); tests override ``get_admin_registry``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._registry: Any | None = None

    def get(self) -> Any | None:
        if self._registry is None:
            uri = self.settings.home_dir().tracking_uri
            if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
                return None
            from agent.registry import PolicyRegistry  # MLflow: imported only when there is one

            self._registry = PolicyRegistry(uri, model_name=self.settings.model_name)
        return self._registry

    def view(self) -> RegistryView | None:
        """The registry's view, None without a registry; a failing read becomes ``error``."""
        registry = self.get()
        if registry is None:
            return None
        try:
            return read_registry(registry)
        except Exception as exc:  # MLflow's errors are many; the page must still render
            log.warning("cannot read the policy registry: %s", type(exc).__name__)
            return RegistryView(
                model=self.settings.model_name,
                error=f"cannot read the registry ({type(exc).__name__}; see the log)",
            )


async def get_admin_registry(request: Request, settings: SettingsDep) -> AdminRegistry:
    found: AdminRegistry | None = getattr(request.app.state, "admin_registry", None)
    if found is None:
        with _lock:
            found = getattr(request.app.state, "admin_registry", None)
            if found is None:
                found = AdminRegistry(settings)
                request.app.state.admin_registry = found
    return found


AdminRegistryDep = Annotated[AdminRegistry, Depends(get_admin_registry)]
