"""The docs pages, /docs (Swagger UI) and /redoc, with their scripts, styles and icon
served by the service itself from app/web/static/docs (see its README), not a CDN: the
pages work offline. Behind the token when one is set, like every page but the probes."""

from functools import cache

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from app.web.static_files import JAVASCRIPT, STATIC, digest, file_endpoint, root_path

DOCS = STATIC / "docs"
ASSETS_PATH = "/docs/assets"
# What is served under ASSETS_PATH: name -> (file under DOCS, media type).
ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", JAVASCRIPT),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "redoc.standalone.js": ("redoc/redoc.standalone.js", JAVASCRIPT),
}


@cache
def asset_url(name: str) -> str:
    """The asset's path, versioned by its digest (read once, at the first page served)."""
    return f"{ASSETS_PATH}/{name}?v={digest(DOCS / ASSETS[name][0])}"


def add_routes(routes: APIRouter, openapi_url: str, title: str) -> None:

    @routes.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = root_path(request)
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
        root = root_path(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=root + asset_url("redoc.standalone.js"),
            redoc_favicon_url=root + asset_url("favicon-32x32.png"),
            with_google_fonts=False,
        )

    for name, (file, media_type) in ASSETS.items():
        routes.add_api_route(f"{ASSETS_PATH}/{name}", file_endpoint(DOCS / file, media_type), include_in_schema=False)
