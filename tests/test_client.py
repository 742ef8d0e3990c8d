"""The typed Python clients against a real `rollgraph serve` (SQLite), issue 18: `SyncClient`
and `AsyncClient` answer the API's response models, a run whose answer was lost is retried
under the client's own Idempotency-Key and runs once, and schema errors carry their fields."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest

from control_plane.client import ApiError, AsyncClient, NoAnswer, SyncClient, models
from control_plane.client.core import progress_key
from tests.fixtures import GREET

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    db = tmp_path_factory.mktemp("client") / "rollgraph.db"
    env = {
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{db}",
        "ROLLGRAPH_ENV": "dev",
        "ROLLGRAPH_ADMIN_KEY": ADMIN_KEY,
    }
    with serve(env) as url, SyncClient(url, ADMIN_KEY) as rg:
        rg.apply(GREET, version="v1")
        rg.promote("greet", "v1")
        yield url


class LosesFirstAnswer(httpx.BaseTransport):
    """Sends every request to the server, but loses the answer to the first (a connection that
    dropped after the server ran it)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = self.inner.handle_request(request)
        if len(self.sent) == 1:
            response.read()
            response.close()
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.slow
def test_sync_client_answers_models_and_a_lost_answer_runs_once(server: str) -> None:
    user = f"u-{secrets.token_hex(4)}"
    transport = LosesFirstAnswer()
    with SyncClient(server, ADMIN_KEY, transport=transport) as rg:
        run = rg.run("greet", {"prompt": "once"}, user_id=user)
        assert isinstance(run, models.RunPublic) and run.status == "succeeded"
        keys = [r.headers.get("idempotency-key") for r in transport.sent]
        assert len(keys) == 2 and keys[0] == keys[1] and str(keys[0]).startswith("rgc-")
        mine = [r for r in rg.runs(workflow="greet", limit=1000) if r.user_id == user]
        assert [r.run_id for r in mine] == [run.run_id]  # ran (and billed) once
        detail = rg.get_run(run.run_id)
        assert isinstance(detail, models.RunDetail) and detail.trace["steps"][0]["node"] == "write"
        versions = rg.versions("greet")
        assert [type(v) for v in versions] == [models.VersionPublic]
        with pytest.raises(ApiError) as caught:
            rg.runs(since="yesterday")
        assert caught.value.status == 422
        (field,) = caught.value.fields
        assert field.path == "query since" and "valid datetime" in field.expected
    # A change that is not safe to send twice (a rollback moves the label again) is not
    # retried after its answer was lost: NoAnswer says it may have been done.
    with SyncClient(server, ADMIN_KEY, transport=LosesFirstAnswer()) as rg:
        with pytest.raises(NoAnswer) as lost:
            rg.rollback("greet")
        assert not lost.value.timed_out and lost.value.idempotency_key is None


@pytest.mark.slow
def test_async_client_runs_and_follows(server: str) -> None:
    async def scenario() -> list[models.RunDetail]:
        async with AsyncClient(server, ADMIN_KEY) as rg:
            applied = await rg.apply(GREET, version="v1")
            assert isinstance(applied, models.ApplyResult) and not applied.created
            run = await rg.run("greet", {"prompt": "hi"}, mode="async")
            assert run.status in ("queued", "running")
            seen = [r async for r in rg.follow(run.run_id, interval_s=0.05)]
            outcome = await rg.outcome(run.run_id, {"clicked": True})
            assert outcome.metrics == {"clicked": "recorded"}
            with pytest.raises(ApiError) as caught:
                await rg.get_run("no-such-run")
            assert (caught.value.status, caught.value.code) == (404, "not_found")
            return seen

    seen = asyncio.run(scenario())
    assert seen[-1].status == "succeeded" and seen[-1].trace["steps"]
    assert len({progress_key(r) for r in seen}) == len(seen)  # each one a change
