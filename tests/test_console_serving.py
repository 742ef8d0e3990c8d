"""The console and the API docs as the server serves them: ``/`` redirects to ``/console``,
every client route gets ``index.html`` (never cached), hashed assets are cached for good, a
missing asset is a 404, and ``/docs`` / ``/redoc`` load Swagger UI and ReDoc from this server,
not a CDN."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from control_plane.web import CONSOLE_DIST
from control_plane.web.console import IMMUTABLE
from tests.fixtures import app_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("console") / "rollgraph.db"
    with app_client(f"sqlite:///{db}", "rgk" + secrets.token_urlsafe(32)) as c:
        yield c


def test_root_redirects_to_the_console(client: TestClient) -> None:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["location"] == "/console"


@pytest.mark.parametrize(
    "path", ["/console", "/console/", "/console/workflows", "/console/workflows/x/diff"]
)
def test_every_client_route_gets_the_index_never_cached(client: TestClient, path: str) -> None:
    answer = client.get(path, headers={})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-cache"
    assert '<div id="root">' in answer.text
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_hashed_assets_are_immutable_and_a_missing_one_is_404(client: TestClient) -> None:
    index = client.get("/console").text
    assets = re.findall(r'(?:src|href)="(/console/assets/[^"]+)"', index)
    assert any(a.endswith(".js") for a in assets), index
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["cache-control"] == IMMUTABLE
    missing = client.get("/console/assets/index-00000000.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")


def test_files_outside_the_build_are_not_served(client: TestClient) -> None:
    for path in ("/console/../app.py", "/console/%2e%2e/app.py", "/console/..%2fapp.py"):
        answer = client.get(path)
        assert "create_app" not in answer.text, path


@pytest.mark.parametrize(
    ("path", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc")]
)
def test_api_docs_load_only_local_assets(client: TestClient, path: str, script: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    urls += re.findall(r"url: '([^']+)'", page.text)
    assert urls, page.text
    # Offline: no absolute URL anywhere in the page, and every asset it names is served here.
    assert not re.search(r"https?://", page.text), page.text
    assert any(script in u for u in urls)
    # Images too stay on this origin (ReDoc's bundle would fetch its logo from a CDN).
    if path == "/redoc":
        assert "img-src 'self' data:" in page.headers["content-security-policy"]
    for url in urls:
        if url.startswith("/console/"):
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 100, url


def test_the_built_console_ships_in_the_package() -> None:
    assert CONSOLE_DIST.parent.name == "control_plane"
    assert (CONSOLE_DIST / "index.html").is_file()
    # Hatchling packages every file under control_plane/; nothing may ignore the build.
    ignored = (Path(__file__).resolve().parent.parent / ".gitignore").read_text()
    assert "console_dist" not in ignored
