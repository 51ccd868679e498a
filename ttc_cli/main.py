"""ttc: test-time compute scaling. Subcommands: serve, worker, beat, flower, sim, migrate,
run, eval, replay, strategies, demo, tree, stack, keys."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any


def _cmd_serve(ns: argparse.Namespace) -> int:
    import uvicorn

    from ttc_api.app import create_app
    from ttc_core.settings_errors import load_settings

    overrides: dict[str, Any] = {}
    if ns.executor:
        overrides["executor"] = ns.executor
    if ns.no_auth:
        overrides.update(auth_enabled=False, allow_insecure_no_auth=True)
    settings = load_settings(**overrides)
    if not settings.auth_enabled and not settings.allow_insecure_no_auth:
        print(
            "ttc serve: refusing to start with auth off (TTC_AUTH_ENABLED=false); set "
            "TTC_ALLOW_INSECURE_NO_AUTH=true or pass --no-auth to mean it",
            file=sys.stderr,
        )
        return 2
    if ns.migrate:
        from ttc_cli.migrate import upgrade

        upgrade(settings.database_url)
    from ttc_core.observability.tracing import configure_tracing

    configure_tracing("ttc-api")
    app = create_app(settings)
    # log_config=None: uvicorn's loggers go to our root handler (JSON lines or text).
    uvicorn.run(app, host=ns.host, port=ns.port, log_level=ns.log_level, log_config=None)
    return 0


def _celery_main(argv: list[str]) -> int:
    from ttc_core.settings_errors import load_settings

    load_settings()  # one line per problem instead of a traceback inside Celery's import
    from ttc_worker.app import app

    # --quiet: no banner printed to stdout (every line of a service is a log line).
    return int(app.start(["--quiet", *argv]) or 0)


def _cmd_worker(ns: argparse.Namespace, extra: list[str]) -> int:
    from ttc_core.settings import get_settings
    from ttc_worker.queues import DRIVER_QUEUE, EXPAND_QUEUE, MAINTENANCE_QUEUE, WEBHOOK_QUEUE

    queues = f"{DRIVER_QUEUE},{EXPAND_QUEUE},{MAINTENANCE_QUEUE},{WEBHOOK_QUEUE}"
    # Gossip, mingle and the worker heartbeat ride on broker fanout; on a broker restart
    # they crash the worker ("Unrecoverable error" in the consumer) instead of letting it
    # reconnect. ttc needs none of them (Postgres holds the state). Flower does need the
    # heartbeat (a worker's online status) with remote control: see ttc_worker/app.py.
    quiet = ["--without-gossip", "--without-mingle"]
    if not get_settings().celery_remote_control:
        quiet.append("--without-heartbeat")
    argv = ["worker", "-Q", queues, "--loglevel", "INFO", *quiet, *extra]
    return _celery_main(argv)


def _cmd_flower(ns: argparse.Namespace, extra: list[str]) -> int:
    return _celery_main(["flower", *extra])


def _cmd_beat(ns: argparse.Namespace, extra: list[str]) -> int:
    return _celery_main(["beat", "--loglevel", "INFO", *extra])


def _cmd_sim(ns: argparse.Namespace) -> int:
    from ttc_sim.runner import config_from_args, serve

    serve(config_from_args(ns), ns.host, ns.port)
    return 0


def _cmd_migrate(ns: argparse.Namespace) -> int:
    from ttc_cli.migrate import upgrade
    from ttc_core.settings import Settings

    url = ns.database_url or Settings().database_url
    upgrade(url)
    print(f"migrated {url.split('@')[-1]}")
    return 0


def _cmd_run(ns: argparse.Namespace) -> int:
    from ttc_cli.runjob import run_job

    return run_job(ns)


def _cmd_eval(ns: argparse.Namespace) -> int:
    from ttc_cli.evalcmd import run_eval

    return run_eval(ns)


def _cmd_replay(ns: argparse.Namespace) -> int:
    from ttc_cli.replay import replay_job

    return replay_job(ns)


def _cmd_strategies(ns: argparse.Namespace) -> int:
    from ttc_cli.strategy_params import strategies_table

    print(strategies_table())
    return 0


def _cmd_demo(ns: argparse.Namespace) -> int:
    from ttc_cli.demo import run_demo

    return run_demo(ns)


def _cmd_tree(ns: argparse.Namespace) -> int:
    from sqlalchemy import select

    from ttc_cli.inspect import tree_rows
    from ttc_cli.render import compact_tree
    from ttc_core.settings import Settings
    from ttc_core.store.db import Database
    from ttc_core.store.models import Job

    db = Database(ns.database_url or Settings().database_url)
    with db.session() as session:
        if ns.job_id is None:  # the latest job
            job = session.scalars(select(Job).order_by(Job.created_at.desc()).limit(1)).first()
            if job is None:
                print("ttc: no jobs in this database yet; run `ttc demo` first", file=sys.stderr)
                return 1
        else:  # an id, or a unique prefix of one (as printed by `ttc demo`)
            matches = list(
                session.scalars(
                    select(Job).where(Job.id.startswith(ns.job_id, autoescape=True)).limit(2)
                )
            )
            if len(matches) != 1:
                why = "no job" if not matches else "more than one job starts with"
                print(f"ttc: {why} {ns.job_id}", file=sys.stderr)
                return 1
            job = matches[0]
        print(f"job {job.id}  {job.strategy}  {job.status}")
        print(json.dumps({"status": job.status, "result": job.result}, indent=2, default=str))
        print(compact_tree(tree_rows(session, job), max_rows=ns.max_rows))
    return 0


def _cmd_stack(ns: argparse.Namespace) -> int:
    from ttc_cli.stack import stack_command

    return stack_command(ns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ttc", description=__doc__.split(".")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--executor", choices=["local", "celery"], default=None)
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--no-auth", action="store_true", help="no API keys: every caller is an admin (unsafe)"
    )
    serve.set_defaults(func=_cmd_serve)

    worker = sub.add_parser("worker", help="run a Celery worker (extra options pass through)")
    worker.set_defaults(func=_cmd_worker, passthrough=True)
    beat = sub.add_parser("beat", help="run Celery beat (extra options pass through)")
    beat.set_defaults(func=_cmd_beat, passthrough=True)
    flower = sub.add_parser("flower", help="run Flower, the Celery monitor (options pass through)")
    flower.set_defaults(func=_cmd_flower, passthrough=True)

    sim = sub.add_parser("sim", help="run the simulated OpenAI-compatible endpoint")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8100)
    from ttc_sim.runner import add_sim_arguments

    add_sim_arguments(sim)
    sim.set_defaults(func=_cmd_sim)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--database-url", default=None)
    migrate.set_defaults(func=_cmd_migrate)

    from ttc_cli.runjob import add_run_arguments, run_epilog

    run = sub.add_parser(
        "run",
        help="submit a job to a server and follow it",
        epilog=run_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(run)
    run.set_defaults(func=_cmd_run)

    from ttc_cli.evalcmd import add_eval_arguments

    evaluate = sub.add_parser(
        "eval", help="evaluate strategies over a dataset and a grid of compute, with plots"
    )
    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=_cmd_eval)

    from ttc_cli.replay import add_replay_arguments

    replay = sub.add_parser(
        "replay", help="replay a finished job (or a subtree) and show where it diverges"
    )
    add_replay_arguments(replay)
    replay.set_defaults(func=_cmd_replay)

    strategies = sub.add_parser("strategies", help="list the strategies with their params")
    strategies.set_defaults(func=_cmd_strategies)

    demo = sub.add_parser("demo", help="embedded demo: SQLite + local executor + simulator")
    demo.add_argument("--database-url", default="sqlite:///ttc-demo.db")
    demo.add_argument("--n", type=int, default=16)
    demo.add_argument("--problems", type=int, default=2, help="GSM8K problems per strategy")
    demo.add_argument("--serve", action="store_true", help="then serve the API to browse trees")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(func=_cmd_demo)

    stack = sub.add_parser(
        "stack", help="run sim + Celery worker + API natively over Postgres and Redis"
    )
    stack.add_argument("--database-url", required=True, help="postgresql://...")
    stack.add_argument("--broker-url", default="redis://127.0.0.1:6379/0")
    stack.add_argument("--log-dir", default=None)
    stack.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    stack.add_argument("--port", type=int, default=8000, help="the API's port (0: any free)")
    stack.add_argument("--beat", action="store_true", help="run Celery beat (the reaper) too")
    stack.add_argument(
        "--flower",
        action="store_true",
        help="run Flower too, with the worker events and remote control it needs",
    )
    stack.add_argument("--flower-port", type=int, default=5555)
    stack.add_argument(
        "--auth", action="store_true", help="require API keys (prints a new admin key)"
    )
    stack.set_defaults(func=_cmd_stack)

    from ttc_cli.keys import add_keys_parser

    add_keys_parser(sub)

    tree = sub.add_parser("tree", help="print a job's tree from the database")
    tree.add_argument(
        "job_id", nargs="?", default=None, help="a job id or its prefix (default: the latest job)"
    )
    tree.add_argument("--database-url", default=None)
    tree.add_argument("--max-rows", type=int, default=200)
    tree.set_defaults(func=_cmd_tree)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "worker":
        # Before anything imports prometheus_client: pool processes write their metrics
        # to files that the node's metrics server adds up (ttc_worker.telemetry).
        from ttc_core.observability.multiproc import prepare_multiproc_dir

        prepare_multiproc_dir()
    from ttc_core.observability.logs import configure_logging

    parser = build_parser()
    if args and args[0] in PASSTHROUGH:
        configure_logging()
        ns = parser.parse_args(args[:1])
        return _guarded(lambda: int(ns.func(ns, args[1:])))
    ns = parser.parse_args(args)
    # Services log at INFO; a client command (run, tree, keys...) only says what went wrong.
    quiet = ns.command not in SERVICES and not ns.verbose
    configure_logging(level=logging.WARNING if quiet else None)
    return _guarded(lambda: int(ns.func(ns)))


def _guarded(command: Callable[[], int]) -> int:
    """Run a command; a settings problem is one line per problem and exit status 2, a
    database that cannot be reached one line naming what to check."""
    from sqlalchemy.exc import OperationalError

    from ttc_core.settings_errors import SettingsError

    try:
        return command()
    except SettingsError as exc:
        for line in exc.lines:
            print(f"ttc: {line}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        reason = " ".join(str(exc.orig).split())[:200]
        print(
            f"ttc: cannot open the database ({reason}); is it running? Check --database-url "
            "(or TTC_DATABASE_URL).",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:
        # The reader went away (`ttc tree | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


#: Subcommands whose options pass through to Celery.
PASSTHROUGH = ("worker", "beat", "flower")
#: Long-running services (log at TTC_LOG_LEVEL, INFO by default).
SERVICES = ("serve", "sim", "stack")


if __name__ == "__main__":
    raise SystemExit(main())
