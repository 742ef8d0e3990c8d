"""``POST /v1/workflows/validate`` on SQLite and PostgreSQL: the define-time check without a
write. Problems come back with 200 at their lines with their "did you mean"; a valid draft has
the digest, label and graph applying it would give, its twin and its diff against a stored
version; nothing is stored or audited; hostile text is answered, never a 500."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.fixtures import GREET, GREET_LARGE, apply, bearer, new_key

URL = "/v1/workflows/validate"
TYPO = GREET.replace("prompt.enhance", "prompt.enhanse")


def validate(api: TestClient, source: str, **extra: Any) -> dict[str, Any]:
    response = api.post(URL, json={"source": source, **extra})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def stored(api: TestClient) -> list[Any]:
    return [
        api.get("/v1/workflows").json(),
        api.get("/v1/audit", params={"limit": 1000}).json(),
    ]


def test_problems_come_back_at_their_lines_with_did_you_mean_and_nothing_is_stored(
    api: TestClient,
) -> None:
    before = stored(api)
    answer = validate(api, TYPO)
    assert answer["valid"] is False
    assert answer["graph"] is None and answer["digest"] is None
    (problem,) = [p for p in answer["problems"] if p["severity"] == "error"]
    assert problem["code"] == "unknown_kind"
    assert problem["line"] == TYPO.splitlines().index("    uses: prompt.enhanse") + 1
    assert "did you mean prompt.enhance?" in problem["message"]
    assert stored(api) == before


def test_a_valid_draft_has_what_applying_it_would_give_and_stores_nothing(
    api: TestClient,
) -> None:
    before = stored(api)
    draft = validate(api, GREET)
    assert draft["valid"] is True and draft["problems"] == []
    assert draft["workflow"] == "greet" and draft["version"] == "v1"
    assert draft["identical_to"] is None and draft["diff"] is None
    assert [n["id"] for n in draft["graph"]["nodes"]] == ["write"]
    assert draft["graph"]["nodes"][0]["model"] == "sim/writer-small"
    assert stored(api) == before
    applied = apply(api, GREET)
    assert (applied["version"], applied["digest"]) == (draft["version"], draft["digest"])
    # the same text again: its twin; another text: the next label, and its diff
    assert validate(api, GREET)["identical_to"] == "v1"
    larger = validate(api, GREET_LARGE, against="v1")
    assert larger["version"] == "v2" and larger["identical_to"] is None
    diff = larger["diff"]
    assert list(diff["nodes_changed"]) == ["write"]
    assert any(f["path"] == "with.model" for f in diff["nodes_changed"]["write"])
    assert "writer-large" in diff["text"] and "(draft)" in diff["text"]
    assert validate(api, GREET_LARGE, version="v9")["version"] == "v9"
    assert validate(api, GREET, version="v1")["identical_to"] == "v1"
    # a label that exists with other content: what applying would refuse, said at its line
    taken = validate(api, GREET_LARGE + "version: v1\n")
    assert taken["valid"] is False
    (problem,) = taken["problems"]
    assert problem["code"] == "version_exists"
    assert problem["line"] == len(GREET_LARGE.splitlines()) + 1
    refused = api.post("/v1/workflows", json={"source": GREET_LARGE + "version: v1\n"})
    assert refused.status_code == 409


def test_a_viewer_may_validate_and_bad_requests_are_4xx(api: TestClient) -> None:
    viewer = new_key(api, "looker", "viewer")
    ok = api.post(URL, json={"source": GREET}, headers=bearer(viewer))
    assert ok.status_code == 200, ok.text
    nobody = api.post(URL, json={"source": GREET}, headers={"Authorization": ""})
    assert nobody.status_code == 401
    apply(api, GREET)
    missing = api.post(URL, json={"source": GREET, "against": "v7"})
    assert missing.status_code == 404 and "v7" in missing.text
    unknown = api.post(URL, json={"source": GREET_LARGE.replace("greet", "other"), "against": "v1"})
    assert unknown.status_code == 404
    for body in (
        {"source": ""},
        {"source": GREET, "version": "v\x00"},
        {"source": GREET, "extra": 1},
        {"source": GREET, "against": "x" * 65},
    ):
        assert api.post(URL, json=body).status_code == 422, body


def test_hostile_text_is_answered_never_a_500(api: TestClient) -> None:
    deep = validate(api, GREET + "description: " + "[" * 500 + "]" * 500 + "\n")
    assert deep["valid"] is False
    assert ("(root)", "too_deep") in [(p["location"], p["code"]) for p in deep["problems"]]
    nul = api.post(URL, json={"source": GREET.replace("hi", "h\x00i") + "# \x00\n"})
    surrogate = api.post(
        URL,
        content=b'{"source": "name: greet\\ndescription: \\"\\ud800\\"\\n"}',
        headers={"Content-Type": "application/json"},
    )
    not_yaml = api.post(URL, json={"source": "nodes: [unclosed\n  - : :"})
    huge = api.post(URL, json={"source": "# " + "x" * 10_000_000})
    for response in (nul, surrogate, not_yaml):
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            assert response.json()["valid"] is False
    assert huge.status_code == 413
