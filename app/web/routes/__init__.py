"""One APIRouter per resource. Each is built around the service it calls (a closure, not
a per-request dependency: a dependency solve would cost the hot path its headers,
query and cookies parsed again)."""
