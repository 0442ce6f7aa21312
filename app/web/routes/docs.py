"""The docs pages, /docs (Swagger UI) and /redoc, with their scripts, styles and icon
served by the service itself from app/web/static/docs (see its README), not a CDN: the
pages work offline. Behind the token when one is set, like every page but the probes."""

import hashlib
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

STATIC = Path(__file__).resolve().parent.parent / "static" / "docs"
ASSETS_PATH = "/docs/assets"
JAVASCRIPT = "text/javascript; charset=utf-8"
# What is served under ASSETS_PATH: name -> (file under STATIC, media type).
ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", JAVASCRIPT),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "redoc.standalone.js": ("redoc/redoc.standalone.js", JAVASCRIPT),
}
# An asset's URL carries its content's digest (asset_url), so a browser may keep it a
# year without asking again: an updated file comes under a new URL. Not `public`: with a
# token the request has Authorization, and a shared cache is not to keep it.
CACHE_CONTROL = "max-age=31536000, immutable"


@cache
def asset_url(name: str) -> str:
    """The asset's path, versioned by its digest (read once, at the first page served)."""
    digest = hashlib.sha256((STATIC / ASSETS[name][0]).read_bytes()).hexdigest()[:16]
    return f"{ASSETS_PATH}/{name}?v={digest}"


def add_routes(routes: APIRouter, openapi_url: str, title: str) -> None:

    @routes.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=root + asset_url("swagger-ui-bundle.js"),
            swagger_css_url=root + asset_url("swagger-ui.css"),
            swagger_favicon_url=root + asset_url("favicon-32x32.png"),
            # No badge asking validator.swagger.io about the document: nothing leaves the page.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @routes.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=root + asset_url("redoc.standalone.js"),
            redoc_favicon_url=root + asset_url("favicon-32x32.png"),
            with_google_fonts=False,
        )

    for name, (file, media_type) in ASSETS.items():
        routes.add_api_route(f"{ASSETS_PATH}/{name}", _asset(STATIC / file, media_type), include_in_schema=False)


def _root_path(request: Request) -> str:
    """The prefix a proxy mounts the service under (as FastAPI's own docs pages use it)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _asset(path: Path, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
    async def serve() -> FileResponse:
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": CACHE_CONTROL})

    return serve
