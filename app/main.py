"""The spec's entry point: `uvicorn app.main:app`. Everything is built by the web
layer's factory from settings read once, here, from the environment."""

from app.service.settings import load_settings
from app.web.app import create_app

__all__ = ["app", "create_app"]

app = create_app(load_settings(), freeze_gc=True)
