"""``marquee ab report``: the online A/B from the service's Redis logs, optionally promoting.
In interleave mode (MARQUEE_AB ``"mode": "interleave"``) it reports the users' preference
between the two arms instead (serving.ab_interleaving). In split mode an arm that interleaves
against another (``against``) serves slates of two versions, so the split's figures say what
its users got and its verdict is the preference between the two teams."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from marquee.home import Home

if TYPE_CHECKING:
    from serving.ab_interleaving import InterleavingReport
    from serving.ab_report import ABReport

console = Console()


def _since(value: str | None) -> float:
    """Unix seconds from a number or an ISO time (UTC when no zone is given)."""
    if value is None:
        return 0.0
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"--since {value!r}: not Unix seconds or an ISO time") from exc
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def report_command(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Only slates served from then (Unix seconds or ISO time).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    promote: Annotated[
        bool, typer.Option("--promote", help="On a 'promote' verdict, move the alias.")
    ] = False,
    alias: Annotated[str, typer.Option(help="The alias --promote moves.")] = "champion",
    control: Annotated[
        str | None, typer.Option(help="The control arm (default: the first configured).")
    ] = None,
) -> None:
    """Per-arm acceptance, mean reward and completion with 95% CIs, an SRM check (which stops
    the verdict when it fails), Welch's test against the control arm and a verdict. In
    interleave mode: choices credited to each arm, users won, ties, and the preference for B
    with its 95% CI, and a verdict."""
    from serving.ab_interleaving import build_interleaving_report
    from serving.ab_report import build_report, read_feedback, read_served
    from serving.wiring import ServiceConfigError, service_redis, service_settings

    home: Home = ctx.obj
    try:
        settings = service_settings(home)
    except ServiceConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    shares = {arm.name: arm.share for arm in settings.ab.arms}
    if control is not None and control not in shares:
        raise typer.BadParameter(f"no arm {control!r}; arms: {', '.join(shares)}")
    start = _since(since)
    with service_redis(settings) as handle:
        served = read_served(handle.client, settings.redis_prefix, start)
        events = read_feedback(handle.client, settings.redis_prefix)
    if settings.ab.mode == "interleave":
        if control is not None:
            raise typer.BadParameter("--control is for split mode; interleaving compares A and B")
        first, second = (arm.name for arm in settings.ab.arms)
        inter = build_interleaving_report(served, events, (first, second), since=start)
        moved = _promote(home, settings.model_name, alias, promote, inter)
        _print_interleaving(inter, as_json, alias, moved)
        return
    report = build_report(served, events, shares, control=control, since=start)
    tests = [
        build_interleaving_report(
            served, events, (arm.against, arm.name), since=start, arm=arm.name
        )
        for arm in settings.ab.arms
        if arm.against is not None
    ]
    if len(tests) > 1 and promote:
        raise typer.BadParameter("--promote needs one interleaved arm; MARQUEE_AB has several")
    promoted = _promote(home, settings.model_name, alias, promote, tests[0] if tests else report)
    if as_json:
        payload = report.as_dict()
        if tests:
            payload["interleaving"] = [t.as_dict() for t in tests]
        payload["promoted"] = promoted
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    table = Table(title="online A/B (per user, 95% CI)")
    for col in (
        "arm",
        "versions",
        "users",
        "slates",
        "feedback",
        "acceptance",
        "mean reward",
        "completion",
    ):
        table.add_column(col)

    def fmt(v: float, ci: tuple[float, float]) -> str:
        if math.isnan(v):
            return "-"
        return f"{v:.3f}" if math.isnan(ci[0]) else f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"

    for a in report.arms:
        table.add_row(
            a.arm,
            ",".join(a.versions),
            str(a.users),
            str(a.slates),
            str(a.feedback_events),
            fmt(a.acceptance, a.acceptance_ci95),
            fmt(a.mean_reward, a.mean_reward_ci95),
            fmt(a.completion, a.completion_ci95),
        )
    console.print(table)
    srm = report.srm
    expected = {k: round(v, 1) for k, v in srm.expected.items()}
    console.print(
        f"SRM: users {srm.observed} vs expected {expected}, chi-square {srm.chi2:.2f}, "
        f"p = {srm.p_value:.3g}: {'ok' if srm.ok else 'MISMATCH'}"
    )
    if not tests:
        console.print(f"verdict: {report.verdict}: {report.reason}")
    else:  # the split's verdict would compare a mixture of versions: the teams decide
        console.print(f"split: {report.reason}")
        for test in tests:
            _print_interleaving(test, False, alias, None)
    if promoted is not None:
        console.print(f"{alias} -> version {promoted}")


def _promote(
    home: Home, model_name: str, alias: str, promote: bool, report: ABReport | InterleavingReport
) -> int | None:
    """With --promote and a "promote" verdict, move ``alias`` to the winning arm's version."""
    if not promote or report.verdict != "promote":
        return None
    if report.promote_version is None:
        raise typer.BadParameter(
            f"arm {report.promote_arm!r} did not serve exactly one registered version"
        )
    from agent.registry import PolicyRegistry

    PolicyRegistry(home.tracking_uri, model_name).set_alias(alias, report.promote_version)
    return report.promote_version


def _print_interleaving(
    report: InterleavingReport, as_json: bool, alias: str, promoted: int | None
) -> None:
    if as_json:
        payload = report.as_dict()
        payload["promoted"] = promoted
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    table = Table(title="online interleaving (team draft; per user)")
    for col in ("arm", "versions", "credited choices", "users won"):
        table.add_column(col)
    for t in report.teams:
        table.add_row(t.arm, ",".join(t.versions), str(t.credited_choices), str(t.users_won))
    console.print(table)
    counts = (
        f"{report.slates} interleaved slates, {report.users} users, "
        f"{report.users_with_choices} with a credited choice"
    )
    if report.uncredited_events:
        counts += f" ({report.uncredited_events} events named no movie of their slate)"
    console.print(counts)
    console.print(f"verdict: {report.verdict}: {report.reason}")
    if promoted is not None:
        console.print(f"{alias} -> version {promoted}")


def register(ab_app: typer.Typer) -> None:
    """Attach ``report`` to the ``marquee ab`` group."""
    ab_app.command("report")(report_command)
