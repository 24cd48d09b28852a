"""Minimal DER encoding and decoding for the few ASN.1 shapes Apple's certificate extensions use.

``cryptography`` builds and parses whole certificates but has no general-purpose
ASN.1 API, and the extension values Apple defines (a SEQUENCE of UTF8Strings and
nested SEQUENCEs, or a NULL) are too small to justify another dependency.
"""

from __future__ import annotations

from collections.abc import Iterator

SEQUENCE = 0x30
UTF8_STRING = 0x0C
NULL = 0x05

# Tags whose content is text in Apple's topic lists (UTF8String, PrintableString, IA5String).
_STRING_TAGS = frozenset({0x0C, 0x13, 0x16})


class DERError(ValueError):
    """Bytes that are not the DER this module understands."""


def encode(tag: int, content: bytes) -> bytes:
    """Encode one tag-length-value element with a definite length."""
    size = len(content)
    if size < 0x80:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def utf8(text: str) -> bytes:
    """Encode a UTF8String."""
    return encode(UTF8_STRING, text.encode())


def sequence(*items: bytes) -> bytes:
    """Encode a SEQUENCE of already-encoded elements."""
    return encode(SEQUENCE, b"".join(items))


def null() -> bytes:
    """Encode a NULL, the value Apple gives its environment marker extensions."""
    return encode(NULL, b"")


def elements(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (tag, content) for each consecutive element in ``data``."""
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise DERError("truncated element header")
        tag = data[pos]
        first = data[pos + 1]
        pos += 2
        if first < 0x80:
            size = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or pos + count > len(data):
                raise DERError("unsupported length encoding")
            size = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + size > len(data):
            raise DERError("element runs past the end of its container")
        yield tag, data[pos : pos + size]
        pos += size


def sequence_strings(data: bytes) -> list[str]:
    """Return the text strings that are direct children of the SEQUENCE ``data`` holds."""
    outer = list(elements(data))
    if len(outer) != 1 or outer[0][0] != SEQUENCE:
        raise DERError("expected exactly one SEQUENCE")
    return [
        content.decode("utf-8", errors="replace")
        for tag, content in elements(outer[0][1])
        if tag in _STRING_TAGS
    ]
