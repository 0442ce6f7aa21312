"""/docs and /redoc load nothing from elsewhere: every script, style and icon they name is
the service's own, served with its content type and cached for long."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.store.memory import InMemoryStore
from app.web.routes.docs import ASSETS, DOCS
from tests.conftest import make_settings

TOKEN = "docs-token-0123456789abcdef"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}


class Links(HTMLParser):
    """Every `src` and `href` in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href", "spec-url") and value is not None]


def links_of(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.urls


def docs_client(**overrides: object) -> TestClient:
    return TestClient(create_app(make_settings(**overrides), InMemoryStore()))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_names_only_its_own_assets_and_they_are_served(page: str) -> None:
    client = docs_client()
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert not re.search(r"https?:|//[\w.-]+\.\w", response.text), "an address of another site"
    urls = links_of(response.text)
    assert len(urls) >= 2  # the script, and the icon (and Swagger UI's styles)
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), url
        assert parts.path.startswith("/"), url
        assert not parts.path.startswith("//"), url
    assets = [url for url in urls if url.startswith("/docs/assets/")]
    assert len(assets) == len(urls) - (page == "/redoc")  # ReDoc's spec-url is /openapi.json
    for url in assets:
        served = client.get(url)
        assert served.status_code == 200, url
        name = urlsplit(url).path.removeprefix("/docs/assets/")
        assert served.headers["content-type"] == MEDIA_TYPES[name[name.rindex(".") :]], url
        assert served.headers["cache-control"] == "max-age=31536000, immutable"
        assert served.content == (DOCS / ASSETS[name][0]).read_bytes()


def test_swagger_ui_reads_the_document_and_asks_no_validator() -> None:
    html = docs_client().get("/docs").text
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html
    assert set(urlsplit(url).path for url in links_of(html)) == {
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/favicon-32x32.png",
    }


def test_an_asset_url_changes_with_its_content() -> None:
    urls = [url for url in links_of(docs_client().get("/docs").text) if url.startswith("/docs/assets/")]
    assert all(re.fullmatch(r"/docs/assets/[\w.-]+\?v=[0-9a-f]{16}", url) for url in urls), urls


def test_behind_a_proxy_prefix_the_pages_name_their_assets_under_it() -> None:
    client = TestClient(create_app(make_settings(), InMemoryStore()), root_path="/execution-service")
    for page in ("/docs", "/redoc"):
        urls = links_of(client.get(page).text)
        assert urls, page
        assert all(url.startswith("/execution-service/") for url in urls), urls


def test_with_a_token_the_assets_are_guarded_like_the_pages() -> None:
    client = docs_client(execution_api_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    html = client.get("/docs", headers=auth).text
    for url in ["/docs", "/redoc", *[url for url in links_of(html) if url.startswith("/docs/assets/")]]:
        assert client.get(url).status_code == 401, url
        assert client.get(url, headers=auth).status_code == 200, url


def test_an_unknown_asset_is_a_plain_404() -> None:
    client = docs_client()
    for url in ("/docs/assets/swagger-ui.js", "/docs/assets/../../app/main.py", "/docs/assets/LICENSE"):
        assert client.get(url).status_code == 404, url


def test_the_vendored_files_keep_their_licences() -> None:
    for folder in ("swagger-ui", "redoc"):
        assert (DOCS / folder / "LICENSE").is_file()
    for file, _ in ASSETS.values():
        if file.endswith(".js"):
            assert (DOCS / f"{file}.LICENSE.txt").is_file(), file
    assert "swagger-ui-dist@" in (DOCS / "README.md").read_text()
