"""Data formats by name, MIME type, file extension and first bytes.

Order of precedence when resolving a file's format: an explicit ``format`` name, then a
``content_type``, then the file extension, then the first bytes (sniffing).

=====================  ======================================  ==============================
format                 content types                           extensions
=====================  ======================================  ==============================
``recordio-protobuf``  application/x-recordio-protobuf          .recordio .rec .pbr .protobuf
``libsvm``             text/libsvm, text/x-libsvm               .libsvm .svm .svmlight
``csv``                text/csv                                 .csv
``npz``                application/x-npz                        .npz
=====================  ======================================  ==============================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fmkit.errors import FormatError


@dataclass(frozen=True)
class Codec:
    """A format's names; the reading and writing code lives in ``fmkit.io.<module>``."""

    name: str
    module: str
    extensions: tuple[str, ...]
    content_types: tuple[str, ...]


CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("recordio-protobuf", "protobuf", (".recordio", ".rec", ".pbr", ".protobuf"),
              ("application/x-recordio-protobuf",)),
        Codec("libsvm", "libsvm", (".libsvm", ".svm", ".svmlight"),
              ("text/libsvm", "text/x-libsvm", "application/x-libsvm")),
        Codec("csv", "csv", (".csv",), ("text/csv",)),
        Codec("npz", "npz", (".npz",), ("application/x-npz",)),
    )
}
#: alternative spellings accepted for ``format``
ALIASES = {"recordio": "recordio-protobuf", "protobuf": "recordio-protobuf",
           "recordio_protobuf": "recordio-protobuf", "svmlight": "libsvm", "svm": "libsvm"}

_RECORDIO_MAGIC = bytes.fromhex("0a23d7ce")
_ZIP_MAGIC = b"PK\x03\x04"


def codec(name: str) -> Codec:
    """Return the codec called ``name`` (or an alias such as ``recordio``)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in CODECS:
        raise FormatError(f"unknown data format {name!r}; choose one of "
                          f"{', '.join(CODECS)}.")
    return CODECS[key]


def from_content_type(content_type: str) -> str:
    """Return the format for a MIME type; parameters after ';' and case are ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    for c in CODECS.values():
        if media in c.content_types:
            return c.name
    known = ", ".join(ct for c in CODECS.values() for ct in c.content_types)
    raise FormatError(f"unsupported content type {content_type!r}; supported: {known}.")


def from_extension(path: str) -> str | None:
    """Return the format its extension names (``.gz`` etc. are not handled), else None."""
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    for c in CODECS.values():
        if ext in c.extensions:
            return c.name
    return None


def sniff(head: bytes) -> str | None:
    """Guess a format from a file's first bytes (up to a few KB); None when unsure.

    recordIO starts with its magic, npz with a zip header; among text, the first data line
    with ``index:value`` tokens means libsvm, one with commas CSV (label-only lines are
    skipped; only such lines means a one-column CSV).
    """
    if head.startswith(_RECORDIO_MAGIC):
        return "recordio-protobuf"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a cut multi-byte character at the end is fine; binary elsewhere is not text
        if exc.start < len(head) - 4:
            return None
        text = head[: exc.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    single_numbers = False
    for line in text.splitlines():
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        if ":" in body and "," not in body:
            return "libsvm"
        if "," in body:
            return "csv"
        if len(body.split()) != 1:
            return None
        single_numbers = True  # a label-only row: libsvm or one-column CSV, look further
    return "csv" if single_numbers else None


def resolve(path: str, head: bytes | None, *, format: str | None = None,
            content_type: str | None = None) -> str:
    """Return the format of one file from the explicit name, MIME type, extension or bytes.

    Raises
    ------
    FormatError
        An unknown name or MIME type, or a file whose format cannot be told.
    """
    if format:
        return codec(format).name
    if content_type:
        return from_content_type(content_type)
    by_ext = from_extension(path)
    if by_ext:
        return by_ext
    if head is not None:
        if not head:
            raise FormatError(f"{path}: the file is empty.")
        guess = sniff(head)
        if guess:
            return guess
    raise FormatError(f"{path}: cannot tell the data format from the name or the first bytes "
                      f"{(head or b'')[:16]!r}; pass format= (--to/--from) or content_type= "
                      "(--content-type).")
