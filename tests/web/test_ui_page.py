"""The ops page over HTTP: what it is served with, what it names, and that it needs no
token while every piece of data it reads does. What it does in a browser is
tests/browser/test_ops_page.py."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from app.main import create_app
from app.store.memory import InMemoryStore
from app.web.routes.ui import ASSETS, PAGE
from tests.conftest import make_settings

TOKEN = "ui-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Page(HTMLParser):
    """The page's tags: every `src`/`href`, its inline scripts and styles, its meta."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.meta: dict[str, str] = {}
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self._tag = tag
        self.urls += [value for name, value in attrs if name in ("src", "href") and value is not None]
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "meta" and values.get("name"):
            self.meta[str(values["name"])] = str(values["content"])
        if "style" in values:
            self.inline.append(f"style attribute on <{tag}>")

    def handle_data(self, data: str) -> None:
        if self._tag in ("script", "style") and data.strip():
            self.inline.append(f"<{self._tag}> {data.strip()[:40]}")

    def handle_endtag(self, tag: str) -> None:
        self._tag = ""


def parsed(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def client(**overrides: object) -> TestClient:
    return TestClient(create_app(make_settings(**overrides), InMemoryStore()))


def test_the_page_is_served_with_a_policy_that_forbids_inline_scripts_and_other_origins() -> None:
    response = client().get("/ui")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src", "img-src"):
        assert policy[directive] == "'self'", directive
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    page = parsed(response.text)
    assert page.inline == []
    assert page.handlers == []
    assert not re.search(r"https?:|//[\w.-]+\.\w", response.text), "an address of another site"


def test_the_page_names_only_its_own_assets_relative_to_itself_and_they_are_served() -> None:
    app = client()
    page = parsed(app.get("/ui").text)
    assert sorted(urlsplit(url).path for url in page.urls) == sorted(f"ui/assets/{name}" for name in ASSETS)
    for url in page.urls:
        assert re.fullmatch(r"ui/assets/[\w.-]+\?v=[0-9a-f]{16}", url), url
        served = app.get(f"/{url}")
        name = urlsplit(url).path.removeprefix("ui/assets/")
        assert served.status_code == 200, url
        assert served.headers["content-type"] == ASSETS[name]
        assert served.headers["cache-control"] == "max-age=31536000, immutable"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.content == (PAGE / name).read_bytes()


def test_the_root_redirects_to_the_page_also_under_a_proxy_prefix() -> None:
    response = client().get("/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (307, "/ui")
    behind = TestClient(create_app(make_settings(), InMemoryStore()), root_path="/execution-service")
    response = behind.get("/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (307, "/execution-service/ui")
    # The page's own URLs are relative: under the prefix they resolve under it too.
    assert all(not url.startswith("/") for url in parsed(behind.get("/ui").text).urls)


def test_the_page_says_whether_it_must_ask_for_a_token_and_holds_nothing_else_from_the_settings() -> None:
    without = client().get("/ui").text
    assert parsed(without).meta["token-required"] == "false"
    guarded = client(execution_api_token=TOKEN).get("/ui")
    assert guarded.status_code == 200
    assert parsed(guarded.text).meta["token-required"] == "true"
    assert TOKEN not in guarded.text
    assert without.replace('"false"', '"true"') == guarded.text


def test_with_a_token_the_page_and_its_assets_are_open_and_every_data_route_it_reads_is_not() -> None:
    app = client(execution_api_token=TOKEN)
    page = parsed(app.get("/ui").text)
    for url in ["/", "/ui", *(f"/{url}" for url in page.urls)]:
        assert app.get(url, follow_redirects=False).status_code in (200, 307), url
    script = (PAGE / "ui.js").read_text()
    data = sorted(set(re.findall(r"`?\"?(execution/[\w/-]+)", script)))
    assert "execution/events/stream" in data
    assert "execution/positions" in data
    for path in data:
        assert app.get(f"/{path}").status_code == 401, path
        if path != "execution/events/stream":  # with the token it would stream on
            assert app.get(f"/{path}", headers=AUTH).status_code != 401, path
    assert app.get("/docs").status_code == 401  # the other pages stay behind the token


def test_no_value_reaches_the_page_as_markup() -> None:
    script = (PAGE / "ui.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
