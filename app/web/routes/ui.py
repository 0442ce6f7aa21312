"""The ops page, /ui (and / redirecting to it): one HTML page, its script, style and
icon, all served from app/web/static/ui (see its README). The page and its assets need
no token, so a browser can load them and then ask for it; every call the page makes for
data does. A Content-Security-Policy lets the page load scripts, styles and data from
this service only, and no inline script."""

from functools import cache
from string import Template

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.web.static_files import JAVASCRIPT, STATIC, digest, file_endpoint, root_path

PAGE = STATIC / "ui"
PAGE_PATH = "/ui"
ASSETS_PATH = "/ui/assets"
# What is served under ASSETS_PATH: name -> media type (the file of that name under STATIC).
ASSETS = {
    "ui.js": JAVASCRIPT,
    "ui.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# Paths a browser must reach before it has the token.
PAGE_PATHS = frozenset({"/", PAGE_PATH, *(f"{ASSETS_PATH}/{name}" for name in ASSETS)})
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small and names the current assets' digests: always asked for again.
    "Cache-Control": "no-cache",
}


@cache
def asset_url(name: str) -> str:
    """The asset's URL relative to the page, versioned by its digest (read once)."""
    return f"{ASSETS_PATH.removeprefix('/')}/{name}?v={digest(PAGE / name)}"


@cache
def page_html(token_required: bool, heartbeat_seconds: float) -> str:
    """The page: its template with the assets' URLs, whether to ask for a token, and how
    often a quiet event stream sends a heartbeat (so it can tell a stalled one). Nothing
    from a request is put into it."""
    template = Template((PAGE / "index.html").read_text(encoding="utf-8"))
    return template.substitute(
        token_required="true" if token_required else "false",
        heartbeat_seconds=repr(float(heartbeat_seconds)),
        script_url=asset_url("ui.js"),
        style_url=asset_url("ui.css"),
        icon_url=asset_url("icon.svg"),
    )


def add_routes(routes: APIRouter, *, token_required: bool, heartbeat_seconds: float) -> None:

    @routes.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        # A path, not an absolute URL: nothing taken from the client's Host header.
        return RedirectResponse(root_path(request) + PAGE_PATH, status_code=307)

    @routes.get(PAGE_PATH, include_in_schema=False)
    async def ops_page() -> HTMLResponse:
        return HTMLResponse(page_html(token_required, heartbeat_seconds), headers=PAGE_HEADERS)

    for name, media_type in ASSETS.items():
        routes.add_api_route(f"{ASSETS_PATH}/{name}", file_endpoint(PAGE / name, media_type), include_in_schema=False)
