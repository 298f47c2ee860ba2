"""Hide secrets in text before it is stored or logged: URL passwords, tokens, signatures, credentials.

Errs on the side of hiding too much: a record that says ``***`` where a harmless value was costs little;
a token in an incident report costs a rotation. ``redact`` is idempotent.
"""

from __future__ import annotations

import re

MASK = "***"
#: Words that make a parameter, header or field name secret (``api_key``, ``X-Auth-Token``, ``sig``...).
_SECRET_NAME = r"[\w.-]*?(?:token|secret|passw(?:or)?d|pwd|key|signature|sig|auth|credential|session)[\w.-]*"
#: Schemes whose URL paths are plain locations; any other scheme (slack://, tgram://...) is an
#: Apprise-style URL whose path segments are credentials.
_PLAIN_PATH_SCHEMES = frozenset({"http", "https", "ftp", "ws", "wss", "file", "postgresql", "postgres",
                                 "sqlite", "mysql", "redis", "amqp"})
#: Apprise schemes whose host part is a real machine (only their path segments may be tokens).
_REAL_HOST_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos",
                                "ntfy", "ntfys", "gotify", "gotifys", "mqtt", "mqtts", "apprise", "apprises"})
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{1,20})://([^\s\"'<>`]+)")
_QUERY_PARAM = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&#;\s]*")
#: A long mixed letters/digits path segment in an http URL is a token (Slack/Discord webhook URLs).
_TOKEN_SEGMENT = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_-]{24,}$")
_SCHEMES = r"(?:bearer|basic|token|digest|negotiate)"
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
                          rf"(?!(?:{_SCHEMES}\s+)?\*\*\*)(?:({_SCHEMES})\s+)?[^\s,;\"']+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{6,}")
_KEY_VALUE = re.compile(rf"(?i)([\"']?\b{_SECRET_NAME}[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*|{_SCHEMES}\s+\*\*\*)[^\s,;&\"'}}\]]+")


def _redact_authority(authority: str, scheme: str) -> str:
    userinfo, at, hostport = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    # In most Apprise URLs the "host" is a token (slack://TokenA/..., tgram://123:ABC/...), not a machine.
    is_token_host = scheme not in _PLAIN_PATH_SCHEMES and scheme not in _REAL_HOST_SCHEMES
    if is_token_host and hostport and "." not in hostport and not hostport.startswith("["):
        hostport = MASK
    return f"{userinfo}{at}{hostport}"


def _redact_url(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    lowered = scheme.lower()
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    split = re.search(r"[?#]", tail)
    path, after = (tail[:split.start()], tail[split.start():]) if split else (tail, "")
    if lowered in _PLAIN_PATH_SCHEMES:
        segments = [MASK if _TOKEN_SEGMENT.match(s) else s for s in path.split("/")]
    else:
        segments = [MASK if s else s for s in path.split("/")]
    url = f"{scheme}://{_redact_authority(authority, lowered)}{'/'.join(segments)}{after}"
    return _QUERY_PARAM.sub(lambda m: m.group(1) + MASK, url)


def redact(text: str) -> str:
    """Return ``text`` with every secret this module recognises replaced by ``***``."""
    if not text:
        return text
    text = _URL.sub(_redact_url, text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + (f"{m.group(2)} " if m.group(2) else "") + MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _KEY_VALUE.sub(lambda m: m.group(1) + MASK, text)
