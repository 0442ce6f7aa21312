"""New order and fill numbers: random UUID4s (the core formats and parses them)."""

import os

# Version 4 and the RFC 4122 variant, as uuid.uuid4() sets them.
_VERSION_VARIANT_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_VARIANT_BITS = (0x4000 << 64) | (0x8000 << 48)


def new_number() -> int:
    """A random UUID4 as its 128-bit number."""
    return (int.from_bytes(os.urandom(16)) & _VERSION_VARIANT_MASK) | _VERSION_VARIANT_BITS
