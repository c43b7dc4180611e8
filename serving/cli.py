"""``marquee serve``, ``marquee learn`` and ``marquee promote``: the service's commands.

``serve`` runs the API under uvicorn (one worker by default, ``--workers N`` for several
processes: serving.workers says what they share; the policy watcher swaps new versions in),
with an access log that masks webhook secrets and tokens in query strings. ``learn`` runs the
online learner (agent.online) as its own process beside the service. ``promote`` moves a
registry alias (champion by default) to a version, which running services pick up.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer
from rich.console import Console

from agent.online import ONLINE_LEARNING_RATE
from marquee.home import Home
from serving.log_redaction import RedactSecretFilter

log = logging.getLogger(__name__)
console = Console()

# query parameters whose values never reach a log: the Plex webhook secret, Plex tokens, ...
# One filter masks secrets in query strings everywhere (serving.log_redaction).
RedactQueryFilter = RedactSecretFilter


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """Uvicorn's default logging config with the redacting filter on every handler."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": f"{__name__}.RedactQueryFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    for logger in config["loggers"].values():
        logger["level"] = level.upper()
    return config


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log each request (redacted).")] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (see serving.workers: what they share).")
    ] = 1,
) -> None:
    """Serve recommendations, feedback intake and the web page over HTTP."""
    import uvicorn

    from serving.app import create_app
    from serving.settings import Settings

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter(f"log level must be debug, info, warning or error: {log_level!r}")
    home: Home = ctx.obj
    logging.getLogger().addFilter(RedactQueryFilter())
    if workers > 1:
        _serve_workers(home, host, port, workers, log_level, access_log)
        return
    from serving import allocator

    allocator.tune()  # before any request thread allocates (serving.allocator)
    settings = Settings(home=home.root)
    app = create_app(settings, freeze_heap=True)
    console.print(f"serving on http://{host}:{port} (home {home.root})")
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=1,
        log_config=uvicorn_log_config(log_level),
        access_log=access_log,
    )


def _serve_workers(
    home: Home, host: str, port: int, workers: int, log_level: str, access_log: bool
) -> None:
    """``serve --workers N``: N processes that each build the app (serving.workers), each on
    its own listening socket (serving.supervisor); uvicorn's shared socket where the platform
    has no SO_REUSEPORT."""
    import uvicorn

    from serving import supervisor
    from serving.workers import FACTORY, HEALTHCHECK_SECONDS, worker_environment

    options: dict[str, Any] = {
        "log_config": uvicorn_log_config(log_level),
        "access_log": access_log,
    }
    with worker_environment(home.root) as redis_in_use:
        console.print(
            f"serving on http://{host}:{port} with {workers} workers (home {home.root}; "
            f"{redis_in_use} shared)"
        )
        if supervisor.available():
            code = supervisor.Supervisor(FACTORY, host, port, workers, options).run()
            if code:
                raise typer.Exit(code)
            return
        uvicorn.run(
            FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
            **options,
        )


def learn_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Option(help="Registry ref to start from.")] = "champion",
    batch_size: Annotated[int, typer.Option(help="Transitions per gradient step.")] = 128,
    gradient_steps: Annotated[int, typer.Option(help="Steps per train() call.")] = 50,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    register_every: Annotated[int, typer.Option(help="Steps between new versions.")] = 5_000,
    alias: Annotated[str, typer.Option(help="Alias of the versions it registers.")] = "challenger",
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    poll_seconds: Annotated[float, typer.Option(help="Wait between buffer polls.")] = 5.0,
    fresh: Annotated[bool, typer.Option(help="Ignore the checkpoint; start from source.")] = False,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the minibatches and torch (reproducible runs).")
    ] = None,
    paced: Annotated[
        bool,
        typer.Option(help="Train only up to the step budget a driver grants in Redis."),
    ] = False,
    learning_rate: Annotated[
        float,
        typer.Option(help="Constant learning rate of the actor and critic (agent.online)."),
    ] = ONLINE_LEARNING_RATE,
    rebase: Annotated[
        bool,
        typer.Option(
            help="Train each new version from the current source (--no-rebase: from the last)."
        ),
    ] = True,
) -> None:
    """Learn online from the feedback in the Redis replay buffer (runs until stopped)."""
    from agent.online import REDIS_TIMEOUT_SECONDS, LearnerConfig, OnlineLearner
    from agent.registry import PolicyNotFoundError
    from serving.redis_conn import connect
    from serving.settings import Settings
    from serving.wiring import migrate_keys

    home: Home = ctx.obj.ensure()
    settings = Settings(home=home.root)
    try:
        config = LearnerConfig(
            source=source,
            batch_size=batch_size,
            gradient_steps=gradient_steps,
            checkpoint_every=checkpoint_every,
            register_every=register_every,
            alias=alias,
            max_steps=max_steps,
            poll_seconds=poll_seconds,
            fresh=fresh,
            seed=seed,
            paced=paced,
            learning_rate=learning_rate,
            rebase=rebase,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    handle = connect(  # a batch job waits for a stalled Redis (agent.online: Redis outages)
        url,
        home.buffer_dir,
        timeout=max(settings.redis_timeout_seconds, REDIS_TIMEOUT_SECONDS),
        aof_fsync=settings.embedded_redis_fsync,
    )
    migrate_keys(handle, settings.redis_prefix)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    learner = OnlineLearner(
        home,
        handle.client,
        settings.redis_prefix,
        config,
        buffer_capacity=settings.buffer_capacity,
        model_name=settings.model_name,
    )
    try:
        state = learner.run(stop)
    except PolicyNotFoundError as exc:
        raise typer.BadParameter(f"{exc}: train one first (`marquee train`)") from None
    finally:
        handle.close()
    if state is not None:
        console.print(
            f"learner at step {state.steps}; checkpoint {learner.folder / state.zip}; "
            f"registered versions {state.registered or 'none'}"
        )


def promote_command(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Registered version number.")],
    alias: Annotated[str, typer.Option(help="Alias to move onto it.")] = "champion",
) -> None:
    """Point a registry alias at a version (running services swap it in on their next poll)."""
    from mlflow.exceptions import MlflowException

    from agent.registry import PolicyRegistry
    from serving.settings import Settings

    home: Home = ctx.obj
    registry = PolicyRegistry(home.tracking_uri, Settings(home=home.root).model_name)
    try:
        registry.set_alias(alias, version)
    except MlflowException as exc:
        raise typer.BadParameter(f"cannot set {alias!r} on version {version}: {exc}") from None
    console.print(f"{alias} -> version {version}")


def register(app: typer.Typer) -> None:
    """Attach the commands to the root app."""
    app.command("serve")(serve_command)
    app.command("learn")(learn_command)
    app.command("promote")(promote_command)
