"""``postroom run`` (the worker) and ``postroom admin token`` (the admin endpoint's token)."""

from __future__ import annotations

import signal
import sys
from datetime import timedelta

import click

from postroom.cli._common import PostroomGroup, command, echo, parse_time_limit_option, state
from postroom.core.contract.errors import UserError
from postroom.core.data.validation import BATCH_SIZE
from postroom.core.inbound.fetch import BATCH_MAILS
from postroom.core.worker.admin_http import new_admin_token
from postroom.core.worker.idle import RENEW_EVERY
from postroom.core.worker.log_format import LOG_FORMATS, LogFormat, configure_logging
from postroom.core.worker.memory import limit_malloc_arenas, release_after, release_startup_garbage
from postroom.core.worker.scheduler import Worker, install_signal_handlers
from postroom.core.worker.standby_switch import DEFAULT_STANDBY_AFTER, Handover, engine_argv, exec_standby

#: Seconds after the start at which the worker gives back its start-up garbage a second time.
SETTLE_SECONDS = 30.0


def listen_address(value: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT`` as (host, port); the host defaults to 127.0.0.1."""
    host, _, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not port.isdigit() or (":" in host and not bracketed):
        raise UserError(f"--admin-listen takes [HOST:]PORT (an IPv6 host in brackets), not {value!r}.")
    number = int(port)
    if not 0 <= number <= 65535:
        raise UserError(f"The admin port must be between 0 and 65535, not {number}.")
    return host or "127.0.0.1", number


@command(None, "run")
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Profiles fetched at the same time.",
)
@click.option(
    "--lease",
    type=click.IntRange(5, 3600),
    default=60,
    show_default=True,
    help="Seconds a fetch lease lasts without renewal (how soon others take over a dead worker).",
)
@click.option(
    "--admin-listen",
    help="Serve the reload endpoint, /health and /metrics on [HOST:]PORT (host: 127.0.0.1; IPv6 as [::1]:PORT).",
)
@click.option(
    "--metrics-without-token",
    is_flag=True,
    help="Serve /metrics without the admin token (only where the network already restricts the port).",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="Log lines as text, or as one JSON object per line (time, level, logger, message, exception).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(BATCH_SIZE.low, BATCH_SIZE.high),
    default=BATCH_MAILS,
    show_default=True,
    help="Mails downloaded and committed together; a stop request is honoured between batches.",
)
@click.option(
    "--idle-renew",
    type=click.IntRange(1, 29 * 60),
    default=int(RENEW_EVERY),
    show_default=True,
    help="Seconds after which an IMAP IDLE is ended and restarted (servers may drop it after 30 minutes).",
)
@click.option(
    "--standby-after",
    type=click.IntRange(0, 7 * 24 * 3600),
    default=DEFAULT_STANDBY_AFTER,
    show_default=True,
    help="Seconds with nothing stored, sent or failed after which the worker waits in its small "
    "standby form, without the database stack (0: never; never with --admin-listen).",
)
@parse_time_limit_option
@click.option("--verbose", "-v", is_flag=True, help="Log every cycle, not only those that did something.")
def run_command(
    threads: int,
    lease: int,
    admin_listen: str | None,
    metrics_without_token: bool,
    log_format: LogFormat,
    batch_size: int,
    parse_time_limit: float,
    idle_renew: int,
    standby_after: int,
    verbose: bool,
) -> None:
    """The worker: fetch every profile on its interval and send due replies, until SIGTERM."""
    configure_logging(log_format)
    limit_malloc_arenas()  # before any thread of the worker starts
    handover = Handover.take()  # woken by the standby (core/worker/standby_switch.py)
    app = state().app()
    worker = Worker(
        app,
        threads=threads,
        lease=timedelta(seconds=lease),
        admin_address=listen_address(admin_listen) if admin_listen else None,
        verbose=verbose,
        batch_mails=batch_size,
        parse_time_limit=parse_time_limit,
        metrics_need_token=not metrics_without_token,
        idle_renew=idle_renew,
        standby_after=standby_after,
        handover=handover,
    )
    install_signal_handlers(worker, signal)
    release_startup_garbage()  # the imports' leftovers, before the threads start
    release_after(SETTLE_SECONDS, worker.stopping)  # and once more after the first fetch cycles
    status = worker.run()
    if worker.standing_by:
        url = app.engine.url.render_as_string(hide_password=False)
        app.dispose()  # its connections end cleanly rather than with the process image
        exec_standby(worker.handover_to_standby(url, engine_argv(), log_format))
    sys.exit(status)


@click.group("admin", cls=PostroomGroup)
def admin_group() -> None:
    """The worker's admin endpoint."""


@command(admin_group, "token")
def admin_token() -> None:
    """Make a new administrator token for the reload endpoint (shown once; replaces the old one)."""
    app = state().app()
    with app.transaction() as session:
        token = new_admin_token(session)
    echo(token)
    echo(
        "This token is shown once; send it as the 'sessionId' header of "
        "POST /ameyorestapi/media/messages/reloadMediaProfileConfiguration.",
        err=True,
    )


def register(cli: click.Group) -> None:
    cli.add_command(run_command)
    cli.add_command(admin_group)
