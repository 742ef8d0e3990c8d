"""The API pieces the console needs, over HTTP on SQLite and PostgreSQL: ``GET /v1/keys/me``
tells any key its name and role; ``GET .../versions/{version}/graph`` gives the nodes (kind,
model, typed ports) and typed edges of a stored version."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.fixtures import bearer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "product-video"


def apply(api: TestClient, name: str) -> None:
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    assert api.post("/v1/workflows", json={"source": source}).status_code == 201


def test_keys_me_names_the_key_and_its_role(api: TestClient) -> None:
    me = api.get("/v1/keys/me")
    assert me.status_code == 200
    assert me.json() == {"name": "bootstrap-admin", "role": "admin"}
    for role in ("viewer", "runner"):
        created = api.post("/v1/keys", json={"name": f"console-{role}", "role": role}).json()
        answer = api.get("/v1/keys/me", headers=bearer(created["key"]))
        assert answer.status_code == 200
        assert answer.json() == {"name": f"console-{role}", "role": role}
    # No key or an unknown one: 401, the same as every other route.
    assert api.get("/v1/keys/me", headers={"Authorization": ""}).status_code == 401
    unknown = api.get("/v1/keys/me", headers=bearer("rg_abcdefgh_" + "x" * 40))
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"].startswith("Bearer")


def test_graph_of_a_version_has_kinds_models_and_typed_edges(api: TestClient) -> None:
    apply(api, "v3.3.yaml")
    graph = api.get("/v1/workflows/product-video/versions/v3.3/graph")
    assert graph.status_code == 200
    body = graph.json()
    assert body["workflow"] == "product-video" and body["version"] == "v3.3"
    version = api.get("/v1/workflows/product-video/versions/v3.3").json()
    assert body["digest"] == version["digest"]
    nodes = {n["id"]: n for n in body["nodes"]}
    assert list(nodes) == ["enhance", "safety", "video", "voice", "music", "cut"]
    assert nodes["enhance"]["kind"] == "prompt.enhance"
    assert nodes["enhance"]["model"] == "sim/writer-large"
    assert nodes["cut"]["model"] is None
    assert nodes["safety"]["outputs"] == {"flagged": "boolean", "categories": "list[text]"}
    assert nodes["cut"]["inputs"] == {"video": "video", "audio": "audio", "music": "audio"}
    assert nodes["video"]["conditional"] is True
    assert nodes["music"]["on_failure"] == "skip"
    edges = {(e["source"], e["output"], e["target"], e["input"]): e["type"] for e in body["edges"]}
    assert edges[("enhance", "text", "safety", "text")] == "text"
    assert edges[("video", "video", "cut", "video")] == "video"
    assert edges[("music", "audio", "cut", "music")] == "audio"
    # A `when` reads its reference too: an edge with no input parameter.
    assert edges[("safety", "flagged", "video", None)] == "boolean"
    # References to workflow inputs are not node-to-node edges.
    assert all(source in nodes for source, *_ in edges)


def test_graph_of_a_map_node_carries_a_list_of_the_inner_output(api: TestClient) -> None:
    source = """
name: mapped
inputs:
  prompts: list[text]
nodes:
  each:
    uses: map
    with:
      items: "${inputs.prompts}"
      node: {uses: prompt.enhance, with: {model: sim/writer-small, prompt: "${item}"}}
  joined:
    uses: template
    with: {text: "texts", values: "${each.results}"}
outputs: {texts: "${each.results}", joined: "${joined.text}"}
"""
    applied = api.post("/v1/workflows", json={"source": source, "version": "v1"})
    assert applied.status_code == 201, applied.text
    body = api.get("/v1/workflows/mapped/versions/v1/graph").json()
    nodes = {n["id"]: n for n in body["nodes"]}
    assert nodes["each"]["outputs"] == {"results": "list[text]"}
    assert body["edges"][0]["type"] == "list[text]"


def test_graph_of_an_unknown_version_or_workflow_is_404(api: TestClient) -> None:
    apply(api, "v3.2.yaml")
    missing = api.get("/v1/workflows/product-video/versions/v9/graph")
    assert missing.status_code == 404
    assert "v9" in missing.json()["error"]["message"]
    assert api.get("/v1/workflows/nope/versions/v1/graph").status_code == 404


def test_a_viewer_reads_the_graph(api: TestClient) -> None:
    apply(api, "v3.2.yaml")
    viewer = api.post("/v1/keys", json={"name": "eyes", "role": "viewer"}).json()["key"]
    answer = api.get("/v1/workflows/product-video/versions/v3.2/graph", headers=bearer(viewer))
    assert answer.status_code == 200
