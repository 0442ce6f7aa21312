"""Files the service serves itself (the docs pages' and the ops page's scripts, styles
and icons), so its pages work offline and load nothing from another origin."""

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
JAVASCRIPT = "text/javascript; charset=utf-8"
# An asset's URL carries its content's digest (digest), so a browser may keep it a year
# without asking again: an updated file comes under a new URL. Not `public`: with a
# token the request has Authorization, and a shared cache is not to keep it.
CACHE_CONTROL = "max-age=31536000, immutable"


def digest(path: Path) -> str:
    """A short digest of a file's content, for its versioned URL."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def root_path(request: Request) -> str:
    """The prefix a proxy mounts the service under (as FastAPI's own docs pages use it)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def file_endpoint(path: Path, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
    """A route's endpoint serving one file, to be kept by the browser (see CACHE_CONTROL)."""

    async def serve() -> FileResponse:
        headers = {"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
        return FileResponse(path, media_type=media_type, headers=headers)

    return serve
