"""``fallback_models`` through the API, on SQLite and PostgreSQL: a bad entry is a 422 naming the
node, the entry and its line; a run of a node with fallbacks stores which model served it and
every attempt in its trace."""

from __future__ import annotations

from fastapi.testclient import TestClient

SOURCE = """
name: clipped
nodes:
  clip:
    uses: video.generate
    with: {model: sim/video-fast, prompt: a fox, seconds: 2}
    fallback_models:
      - sim/video-hq
outputs:
  video: "${clip.video}"
"""


def test_a_bad_fallback_model_is_a_422_naming_the_node_and_the_entry(api: TestClient) -> None:
    broken = SOURCE.replace("- sim/video-hq", "- sim/video-hd")
    response = api.post("/v1/workflows", json={"source": broken, "version": "v1"})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["error"]["problems"]
    assert problem["code"] == "bad_model"
    assert problem["location"] == "nodes.clip.fallback_models[0]"
    assert problem["line"] == 8
    assert problem["message"].startswith("node 'clip': fallback model 'sim/video-hd': ")
    assert "(did you mean video-hq?)" in problem["message"]


def test_a_run_records_which_model_served_and_every_attempt(api: TestClient) -> None:
    assert api.post("/v1/workflows", json={"source": SOURCE, "version": "v1"}).status_code == 201
    response = api.post("/v1/run", json={"workflow": "clipped", "version": "v1"})
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    steps = api.get(f"/v1/runs/{run_id}").json()["trace"]["steps"]
    (clip,) = [s for s in steps if s["node"] == "clip"]
    assert clip["status"] == "succeeded"
    served = clip["meta"]["served_by"]
    attempts = clip["meta"]["model_attempts"]
    assert attempts[-1] == {
        "model": served,
        "attempt": attempts[-1]["attempt"],
        "status": "succeeded",
        "cost_usd": clip["cost_usd"],
    }
    assert clip["attempts"] == len(attempts)
