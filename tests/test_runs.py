"""``POST /v1/run`` and the runs it stores, on SQLite and PostgreSQL: pins, labels, a sticky
10 % rollout (across an app restart), random assignment, traces, failures, errors, filters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.fixtures import app_client, seed_workflow

V1 = """
name: greet
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
  voice:
    uses: audio.tts
    with: {model: sim/voice-neutral, script: "${write.text}"}
outputs:
  text: "${write.text}"
  audio: "${voice.audio}"
"""
V2 = V1.replace("writer-small", "writer-large")
V3 = V1.replace("voice-neutral", "voice-warm")
FETCH = """
name: fetch
nodes:
  api:
    uses: http.json
    with: {url: "https://not-allowed.example/items"}
outputs:
  body: "${api.body}"
"""
INPUT = {"prompt": "a red sneaker"}


@pytest.fixture
def client(api: TestClient) -> TestClient:
    versions = {"v1": V1, "v2": V2, "v3": V3}
    seed_workflow(api, "greet", versions, {"prod": "v1", "staging": "v3"})
    return api


class ThroughTestClient(httpx.BaseTransport):
    """An httpx transport that hands each request to a ``TestClient`` (an httpx2 client, so it
    cannot be an httpx client's transport or stand in for the client itself)."""

    def __init__(self, client: TestClient) -> None:
        self._client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self._client.request(
            request.method,
            str(request.url),
            headers=request.headers.multi_items(),
            content=request.read(),
        )
        # The body is already decoded: its length and encoding are httpx's to set again.
        headers = [
            (name, value)
            for name, value in answer.headers.multi_items()
            if name not in ("content-encoding", "content-length")
        ]
        return httpx.Response(answer.status_code, headers=headers, content=answer.content)


def run(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/run", json={"workflow": "greet", "input": INPUT, **body})
    assert response.status_code == 200, response.json()
    result: dict[str, Any] = response.json()
    return result


def test_pins_and_labels_choose_the_version(client: TestClient) -> None:
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v2", "percent": 100})
    pinned = run(client, version="v1", user_id="u1")
    assert (pinned["version"], pinned["reason"], pinned["label"]) == ("v1", "pin", None)
    assert pinned["status"] == "succeeded"
    assert set(pinned["outputs"]) == {"text", "audio"}
    assert pinned["cost_usd"] > 0 and pinned["latency_s"] is not None
    assert len(pinned["run_id"]) == 32
    # A label routes the request with its rollout (prod is the default label).
    labelled = run(client, label="prod", user_id="u1")
    assert labelled["version"] == "v2" and labelled["reason"].startswith("rollout bucket ")
    assert run(client, label="staging")["version"] == "v3"
    routed = run(client, user_id="u1")
    assert routed["version"] == "v2"
    assert routed["reason"].startswith("rollout bucket ")


def test_no_rollout_routes_to_prod_with_reason_label(client: TestClient) -> None:
    routed = run(client, user_id="someone")
    assert (routed["version"], routed["reason"], routed["label"]) == ("v1", "label", "prod")


def test_a_ten_percent_rollout_is_sticky_across_calls_and_restarts(
    client: TestClient, database_url: str, admin_key: str
) -> None:
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v2", "percent": 10})
    users = [f"user-{i}" for i in range(200)]
    first = {u: run(client, user_id=u) for u in users}
    on_candidate = [u for u, r in first.items() if r["version"] == "v2"]
    assert 5 <= len(on_candidate) <= 40, len(on_candidate)  # ~20 expected; > 4 sd either side
    assert {r["version"] for r in first.values()} == {"v1", "v2"}
    assert all(r["reason"].startswith("rollout bucket ") for r in first.values())
    sample = on_candidate[:5] + [u for u in users if u not in on_candidate][:5]
    for u in sample:
        again = run(client, user_id=u)
        assert (again["version"], again["reason"]) == (first[u]["version"], first[u]["reason"])
    with app_client(database_url, admin_key) as restarted:
        for u in sample:
            assert run(restarted, user_id=u)["version"] == first[u]["version"]
    # The bucket is in the trace's attrs, next to the reason.
    trace = client.get(f"/v1/runs/{first[on_candidate[0]]['run_id']}").json()["trace"]
    bucket = int(first[on_candidate[0]]["reason"].rsplit(" ", 1)[1])
    assert trace["attrs"]["bucket"] == bucket < 1000
    assert trace["attrs"]["assignment"] == "candidate"


def test_without_a_user_id_assignment_is_random_and_traced(client: TestClient) -> None:
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v2", "percent": 50})
    results = [run(client) for _ in range(20)]
    assert {r["reason"] for r in results} == {"random"}
    assert {r["version"] for r in results} == {"v1", "v2"}
    trace = client.get(f"/v1/runs/{results[0]['run_id']}").json()["trace"]
    assert trace["attrs"]["reason"] == "random"
    assert 0 <= trace["attrs"]["bucket"] < 10_000


def test_the_stored_trace_has_a_step_per_node(client: TestClient) -> None:
    result = run(client, version="v1", user_id="u")
    detail = client.get(f"/v1/runs/{result['run_id']}")
    assert detail.status_code == 200
    body = detail.json()
    assert {k: body[k] for k in result} == result
    trace = body["trace"]
    assert trace["run_id"] == result["run_id"]
    assert (trace["workflow"], trace["version"]) == ("greet", "v1")
    assert [s["node"] for s in trace["steps"]] == ["write", "voice"]
    assert all(s["status"] == "succeeded" for s in trace["steps"])
    assert trace["attrs"]["reason"] == "pin"


def test_a_failed_node_is_a_stored_failed_run(client: TestClient) -> None:
    assert client.post("/v1/workflows", json={"source": FETCH}).status_code == 201
    response = client.post("/v1/run", json={"workflow": "fetch", "version": "v1"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "failed"
    assert "allow" in body["error"]
    assert body["outputs"] is None
    stored = client.get(f"/v1/runs/{body['run_id']}").json()
    assert stored["status"] == "failed"
    assert stored["trace"]["steps"][0]["status"] == "failed"
    failed = client.get("/v1/runs", params={"status": "failed"}).json()
    assert [r["run_id"] for r in failed] == [body["run_id"]]


def test_bad_requests_are_precise_4xx_and_store_nothing(client: TestClient) -> None:
    def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = client.post("/v1/run", json=body)
        return response.status_code, response.json().get("error", {})

    assert post({"workflow": "nope", "input": INPUT})[0] == 404
    assert post({"workflow": "greet", "version": "v9", "input": INPUT})[0] == 404
    status, error = post({"workflow": "greet", "label": "beta", "input": INPUT})
    assert (status, error["code"]) == (404, "not_found")
    assert "prod" in error["message"]
    status, error = post({"workflow": "greet", "input": {"prompt": 5, "extra": 1}})
    assert (status, error["code"]) == (422, "invalid_input")
    assert {p["location"] for p in error["problems"]} >= {"inputs.prompt", "inputs.extra"}
    status, error = post({"workflow": "greet", "input": {}})
    assert (status, error["code"]) == (422, "invalid_input")
    status, error = post({"workflow": "greet", "input": INPUT, "surprise": True})
    assert (status, error["code"]) == (422, "invalid_request")
    assert client.get("/v1/runs/ffff").status_code == 404
    # Archived versions serve no traffic.
    assert client.post("/v1/workflows/greet/versions/v2/archive").status_code == 200
    status, error = post({"workflow": "greet", "version": "v2", "input": INPUT})
    assert (status, error["code"]) == (409, "conflict")
    # A workflow without a prod label cannot be routed by default.
    assert client.post("/v1/workflows", json={"source": FETCH}).status_code == 201
    assert post({"workflow": "fetch"})[0] == 404
    assert client.get("/v1/runs").json() == []


def test_runs_list_filters(client: TestClient) -> None:
    a = run(client, version="v1", user_id="a")
    b = run(client, version="v3", user_id="b")
    c = run(client, version="v3", user_id="c")

    def ids(**params: Any) -> list[str]:
        response = client.get("/v1/runs", params=params)
        assert response.status_code == 200, response.json()
        return [r["run_id"] for r in response.json()]

    assert ids() == [c["run_id"], b["run_id"], a["run_id"]]
    assert ids(workflow="greet", version="v3") == [c["run_id"], b["run_id"]]
    assert ids(workflow="other") == []
    assert ids(status="succeeded", limit=1) == [c["run_id"]]
    assert ids(since=b["created_at"]) == [c["run_id"], b["run_id"]]
    assert ids(until=b["created_at"]) == [a["run_id"]]
    assert ids(since="2000-01-01T00:00:00", until="2000-01-02T00:00:00") == []
    assert client.get("/v1/runs", params={"status": "weird"}).status_code == 422
    assert client.get("/v1/runs", params={"limit": 0}).status_code == 422
    # by the label that routed them and by user, within a workflow
    d = run(client, label="staging", user_id="b")
    assert ids(workflow="greet", label="staging") == [d["run_id"]]
    assert ids(workflow="greet", label="prod") == []  # a, b and c were pinned
    assert ids(workflow="greet", user_id="b") == [d["run_id"], b["run_id"]]
    for alone in ({"label": "staging"}, {"user_id": "b"}):
        refused = client.get("/v1/runs", params=alone)
        assert refused.status_code == 422 and "with `workflow`" in refused.text, refused.text
    assert (
        client.get("/v1/runs", params={"workflow": "greet", "user_id": "x\x00"}).status_code == 422
    )


def test_cli_run_trace_and_rollout(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import control_plane.cli.remote as cli_remote
    from control_plane.cli import main
    from control_plane.client import SyncClient

    # The CLI's own client (one per command, which closes it), over the in-process app instead
    # of a socket; the fixture's client sends the admin key.
    def in_process(args: object) -> SyncClient:
        return SyncClient("http://testserver", transport=ThroughTestClient(client))

    monkeypatch.setattr(cli_remote, "_client", in_process)

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cli("rollout", "set", "greet", "v2", "100")
    assert (code, out.strip()) == (0, "greet prod: baseline v1, v2 100%")
    code, out, _ = cli("rollout", "status", "greet")
    assert "v2 100%" in out
    code, out, _ = cli("run", "greet", "--input", "prompt=a red sneaker", "--user", "u1")
    assert code == 0
    assert "greet v2  succeeded  (rollout bucket " in out
    run_id = out.split()[1]
    code, out, _ = cli("trace", run_id)
    assert code == 0
    assert "write" in out and "voice" in out and "routed: rollout bucket" in out
    code, _, err = cli("run", "greet", "--version", "v9", "--input", "prompt=x")
    assert code == 1 and "not_found" in err
    code, _, err = cli("run", "greet", "--input-json", "prompt={")
    assert code == 2 and "not JSON" in err
