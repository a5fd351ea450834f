"""Customer ids, names and labels: one normalisation for every way in (imports, specs, the app).

An unsubscribe must match its customer whatever the file that carried it, and a name or label from a
spec or a results file ends up in file names (send lists, downloads) and in every page: so they are
checked once, at the boundary, against everything that later uses them.

Rules (docs/security.md lists them with their tests):

* customer ids: Unicode NFC, surrounding white space (ASCII and full-width) stripped, case kept
  (``D0000021`` and ``d0000021`` are different customers, as in the systems that issue them);
  no control characters (NUL, tab, line breaks…); at most 64 characters.
* names and labels: NFC, stripped, no control characters, no path separators (``/`` ``\\``), not
  ``.`` or ``..``, and at most :data:`MAX_NAME_BYTES` bytes of UTF-8, so that
  ``<experiment>__<variant>.csv`` always fits a file system's 255-byte limit.
"""

from __future__ import annotations

import re
import unicodedata

MAX_ID_LENGTH = 64  # models.Customer.customer_id is String(64)
MAX_NAME_BYTES = 120  # two names, "__" and ".csv" stay under 255 bytes
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SEPARATORS = re.compile(r"[/\\]")
_SPACE = " \t\r\n\u3000\u00a0\ufeff"


class InvalidIdentifier(ValueError):
    """A customer id, name or label that cannot be stored; the message says why, not where."""


def normalise_customer_id(value: str) -> str:
    """The stored form of a customer id; raises :class:`InvalidIdentifier` for one that has none."""
    text = unicodedata.normalize("NFC", value).strip(_SPACE)
    if not text:
        raise InvalidIdentifier("empty customer id")
    bad = _CONTROL.search(text)
    if bad:
        raise InvalidIdentifier(f"customer id contains a control character (U+{ord(bad.group()):04X})")
    if len(text) > MAX_ID_LENGTH:
        raise InvalidIdentifier(f"customer id longer than {MAX_ID_LENGTH} characters")
    return text


def check_name(value: str, what: str = "name") -> str:
    """``value`` as stored (NFC, stripped) if it can name an experiment, variant, segment or file."""
    text = unicodedata.normalize("NFC", value).strip(_SPACE)
    if not text:
        raise InvalidIdentifier(f"empty {what}")
    bad = _CONTROL.search(text)
    if bad:
        raise InvalidIdentifier(f"{what} contains a control character (U+{ord(bad.group()):04X})")
    if _SEPARATORS.search(text):
        raise InvalidIdentifier(f"{what} {text!r} contains a path separator ('/' or '\\')")
    if text in {".", ".."}:
        raise InvalidIdentifier(f"{what} {text!r} is not a name")
    size = len(text.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise InvalidIdentifier(f"{what} is {size} bytes of UTF-8, more than {MAX_NAME_BYTES} "
                                "(a Chinese character takes 3)")
    return text
