"""Where the server may send a browser after a login or a form post: only a path on this server.

Guarding against an open redirect (``next=//evil.example``, ``next=/\\t/evil.example``, ``next=https:…``):
browsers drop tabs and newlines inside a URL and read a backslash as a slash, so control characters are
stripped first and then anything that is not a plain same-origin path falls back to ``/``.
"""

from __future__ import annotations

import re

#: C0 controls, DEL and C1 controls: browsers strip or reinterpret them inside a URL
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def local_path(target: str | None) -> str:
    """``target`` when it is a path on this server (``/…``, not ``//…``, no scheme, no backslash); else ``/``."""
    if not target:
        return "/"
    path = _CONTROL.sub("", target).strip()
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path
