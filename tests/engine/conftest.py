"""The engine against real parts: SQLite and Postgres with migrations applied, and the
simulated endpoint over HTTP. No Celery here: the local executor runs the step loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import fresh_postgres
from ttc_cli.migrate import upgrade
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(base_latency_s=0.002, per_token_latency_s=0.0, slots=256)) as s:
        yield s


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ttc.db'}"
        upgrade(url)
        yield url
    else:
        with fresh_postgres() as url:
            yield url


def make_settings(
    database_url: str, sim: SimServer, model: str = "sim-gsm8k", **kw: object
) -> Settings:
    return Settings(
        database_url=database_url,
        endpoints={
            "sim": EndpointConfig(base_url=sim.base_url, model=model, max_concurrency=128),
            "sim-rm": EndpointConfig(base_url=sim.url, model="sim-rm", kind="reward"),
        },
        **kw,  # type: ignore[arg-type]
    )


ContextFactory = Callable[[Settings], EngineContext]


@pytest.fixture
def make_context() -> Iterator[ContextFactory]:
    made: list[EngineContext] = []

    def factory(settings: Settings) -> EngineContext:
        ctx = EngineContext(
            settings=settings, db=Database(settings.database_url), http=make_http_client()
        )
        made.append(ctx)
        return ctx

    yield factory


async def closing(ctx: EngineContext) -> AsyncIterator[EngineContext]:  # pragma: no cover
    try:
        yield ctx
    finally:
        await ctx.aclose()
