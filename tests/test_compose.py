"""docker-compose.yml can't run here (no engine): check that it parses and that every
service command is a real command of this project."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from ttc_cli.main import build_parser
from ttc_core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_distributed_stack() -> None:
    services = COMPOSE["services"]
    assert {"postgres", "redis", "api", "worker", "beat", "flower", "sim"} <= set(services)
    assert "--migrate" in services["api"]["command"]  # the api applies migrations first
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_ttc_command_parses() -> None:
    parser = build_parser()
    for name, service in COMPOSE["services"].items():
        command = service.get("command")
        if not command or command[0] != "ttc":
            continue
        args = command[1:]
        if args[0] in ("worker", "beat"):
            # Options after the subcommand pass through to Celery: check Celery accepts them.
            out = subprocess.run(
                [sys.executable, "-m", "ttc_cli.main", args[0], "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
            )
            assert out.returncode == 0, (name, out.stderr)
            for option in (a for a in args[1:] if a.startswith("--")):
                assert option in out.stdout, (name, option)
        else:
            ns = parser.parse_args(args)
            assert callable(ns.func), name


def test_celery_commands_point_at_this_app() -> None:
    for name, service in COMPOSE["services"].items():
        command = service.get("command")
        if not command or command[0] != "celery":
            continue
        app_path = command[command.index("-A") + 1]
        module = importlib.import_module(app_path)
        assert module.app.main == "ttc", name


def test_compose_environment_is_valid_settings() -> None:
    env = COMPOSE["x-ttc"]["environment"]
    settings = Settings(
        database_url=env["TTC_DATABASE_URL"],
        broker_url=env["TTC_BROKER_URL"],
        executor=env["TTC_EXECUTOR"],
        endpoints=json.loads(env["TTC_ENDPOINTS"]),
    )
    assert settings.endpoints["sim"].kind == "generate"
    assert settings.endpoints["sim-rm"].kind == "reward"
