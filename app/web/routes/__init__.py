"""The routes, one module per resource. Each module's `add_routes(routes, service)`
declares its operations on the app's own APIRouter, around the service they call (a
closure, not a per-request dependency: a dependency solve would cost the hot path its
headers, query and cookies parsed again). Not `include_router`: FastAPI keeps an
included router nested and matches through it on every request, which cost the intent
path about 3% (measured in-process, the whole ASGI path)."""
