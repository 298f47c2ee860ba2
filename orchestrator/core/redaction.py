"""Hide secrets in everything that leaves the process: one set of rules, applied at every boundary.

What counts as a secret:

- URL userinfo passwords (any scheme), secret-looking query parameters, Apprise URL tokens;
- values of headers, vars and fields whose NAMES look secret (:func:`is_secret_name`: Authorization,
  Cookie, ``*token*``, ``*key*``, ``*secret*``, ``*auth*``, ``*passw*``...), and everything under
  ``secret_vars`` (vars the operator marked secret);
- flag- and assignment-style passwords in text (``--password X``, ``--password=X``, ``-p X``, ``-pX``,
  ``PASSWORD=X``, ``"token": "X"``, ``Authorization: Bearer X``);
- the known secret VALUES of a component (:func:`secret_values`), masked wherever they occur in text,
  e.g. a token a restart command echoes; and values this process resolved from ``${env:…}`` or
  ``${file:…}`` references or learnt with :func:`remember` (masked in every later :func:`redact`).

``${env:NAME}`` / ``${file:/path}`` references are not secrets themselves and stay visible.
Errs on the side of hiding too much: ``***`` where a harmless value was costs little; a token in an
incident report costs a rotation. Every function here is idempotent.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
#: Shorter known values are masked where they are a whole field, but not searched for in free text:
#: masking every "ab" in a log would destroy it and hide nothing worth hiding.
MIN_SECRET_LEN = 4
#: Values remembered process-wide at most (one component holds a handful).
MAX_KNOWN = 10_000

_WORD = r"(?:token|secret|pass|pwd|key|signature|sig|auth|credential|session|cookie|private)"
_SECRET_NAME_RE = re.compile(_WORD, re.I)
_NAME = rf"[\w.-]*?{_WORD}[\w.-]*"
#: ``${env:NAME}`` and ``${file:/path}``: references resolved only in memory (core/secret_refs.py).
REFERENCE = re.compile(r"\$\{(env|file):([^}]*)\}")
#: Schemes whose URL paths are plain locations; any other scheme (slack://, tgram://...) is an
#: Apprise-style URL whose path segments are credentials.
_PLAIN_PATH_SCHEMES = frozenset({"http", "https", "ftp", "ws", "wss", "file", "postgresql", "postgres",
                                 "sqlite", "mysql", "redis", "amqp", "tcp"})
#: Apprise schemes whose host part is a real machine (only their path segments may be tokens).
_REAL_HOST_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos",
                                "ntfy", "ntfys", "gotify", "gotifys", "mqtt", "mqtts", "apprise", "apprises"})
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{1,20})://([^\s\"'<>`]+)")
_QUERY_PARAM = re.compile(rf"(?i)([?&;]{_NAME}=)(?!\*\*\*)[^&#;\s]*")
#: A long mixed letters/digits path segment in an http URL is a token (Slack/Discord webhook URLs).
_TOKEN_SEGMENT = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_-]{24,}$")
_SCHEMES = r"(?:bearer|basic|token|digest|negotiate)"
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
                          rf"(?!(?:{_SCHEMES}\s+)?\*\*\*)(?:({_SCHEMES})\s+)?[^\s,;\"']+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{6,}")
_KEY_VALUE = re.compile(rf"(?i)([\"']?\b{_NAME}[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*|{_SCHEMES}\s+\*\*\*)"
                        r"[^\s,;&\"'}\]]+")
#: ``--password X``, ``--api-key=X``, ``--secret-var k=v`` and the same inside a JSON argv list.
_LONG_FLAG = re.compile(r"(?i)(?<![\w-])(--?[\w-]*(?:passw(?:or)?d|passwd|pwd|token|secret|api[-_]?key)[\w-]*)"
                        r"(=|\s+|[\"']\s*,\s*[\"'])(?!\*\*\*)(\"[^\"]*\"|'[^']*'|[^\s\"',\]]+)")
#: ``-p X`` / ``-pX`` (mysql and friends).
_SHORT_P = re.compile(r"(?<![\w-])(-p)(\s+|[\"']\s*,\s*[\"']|)(?!\*\*\*)([^\s\"',\]-][^\s\"',\]]*)")

_known: frozenset[str] = frozenset()
_known_lock = threading.Lock()


#: Words of a name that mark it secret, matched whole (``author`` and ``keyboard`` are not secrets).
_SECRET_WORDS = frozenset({"token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd",
                           "pass", "passphrase", "key", "keys", "apikey", "signature", "sig", "auth",
                           "authorization", "credential", "credentials", "creds", "session", "sessionid",
                           "cookie", "cookies", "private", "privatekey", "bearer", "otp"})
#: Endings of a run-together word that still mark it secret (``accesstoken``, ``clientsecret``).
_SECRET_SUFFIXES = ("token", "tokens", "secret", "password", "passwd", "apikey", "authorization")
#: The words of a name: split at anything but letters and digits, and at camelCase humps.
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


@lru_cache(maxsize=4096)  # the same few dozen keys, for every view
def is_secret_name(name: str) -> bool:
    """True when a header, var or field called ``name`` holds a secret (``Authorization``,
    ``X-Api-Token``, ``admin_token``, ``db_password``, ``apiKey``, ``Cookie``, ``secret_vars``...).

    Words are matched whole, so a note's ``author`` or a ``monkey_count`` stays visible; a word that
    merely contains a secret word (``authority``) is not a secret name.
    """
    for word in _NAME_WORD.findall(name):
        word = word.lower()
        if word in _SECRET_WORDS or word.endswith(_SECRET_SUFFIXES):
            return True
    return False


def is_reference(text: str) -> bool:
    """True when ``text`` is nothing but ``${env:…}``/``${file:…}`` references (nothing secret in it)."""
    return bool(text) and not REFERENCE.sub("", text).strip()


def remember(values: Iterable[str]) -> None:
    """Mask ``values`` in every later :func:`redact` of this process (resolved references, the
    secrets of components a daemon works on). Bounded: past MAX_KNOWN values, new ones are dropped."""
    global _known
    fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN and not is_reference(v)}
    if not fresh or fresh <= _known:
        return
    with _known_lock:
        if len(_known) < MAX_KNOWN:
            _known = frozenset(_known | fresh)


def known_secrets() -> frozenset[str]:
    """The values :func:`remember` has learnt so far."""
    return _known


@lru_cache(maxsize=256)
def _values_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    usable = sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in usable)) if usable else None


def _mask_values(text: str, secrets: frozenset[str]) -> str:
    if text in secrets:
        return MASK
    pattern = _values_pattern(secrets)
    return pattern.sub(MASK, text) if pattern is not None else text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret these rules recognise, and every value of ``secrets`` (plus the
    remembered ones), replaced by ``***``."""
    if not text:
        return text
    values = frozenset(secrets) | _known if secrets else _known
    if values:
        text = _mask_values(text, values)
    # Each rule runs only when a cheap test says it could match: most texts (names, states, short
    # reasons) then cost a lower() and a few substring tests, not six regex scans.
    if "://" in text:
        text = _URL.sub(_redact_url_match, text)
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    if "-p" in text:
        text = _SHORT_P.sub(lambda m: m.group(1) + m.group(2) + _masked_token(m.group(3)), text)
    if not _SECRET_NAME_RE.search(lowered):
        return text
    if "authorization" in lowered:
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + (f"{m.group(2)} " if m.group(2) else "") + MASK, text)
    if "-" in text:
        text = _LONG_FLAG.sub(lambda m: m.group(1) + m.group(2) + _masked_token(m.group(3)), text)
    if "=" in text or ":" in text:
        text = _KEY_VALUE.sub(_masked_key_value, text)
    return text


def _masked_key_value(match: re.Match[str]) -> str:
    """``name: value`` in free text with the value masked when ``name`` is a secret name."""
    key = match.group(1).strip("\"' \t:=")
    return match.group(1) + MASK if is_secret_name(key) else match.group(0)


def _masked_token(token: str) -> str:
    if is_reference(token.strip("\"'")):
        return token
    return f"{token[0]}{MASK}{token[0]}" if token[:1] in ("'", '"') else MASK


def redact_url(url: str) -> str:
    """A URL (or text holding URLs) with its password, token path segments and secret query values
    hidden; references stay visible."""
    return _URL.sub(_redact_url_match, url) if url else url


def redact_headers(headers: Mapping[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    """Headers with the values of secret-looking names masked, the rest redacted as text."""
    return {k: _mask_field(v) if is_secret_name(k) else redact(v, secrets) for k, v in headers.items()}


def redact_view(data: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of structured data (a mapping of dicts, lists, strings) fit to print, store or send: values
    under secret-looking keys masked whole, every string redacted with ``secrets``."""
    values = frozenset(secrets)
    return _walk_mapping(data, values)


def _walk_mapping(data: Mapping[Any, Any], secrets: frozenset[str]) -> dict[Any, Any]:
    return {k: _masked_whole(v) if isinstance(k, str) and is_secret_name(k) else _walk(v, secrets)
            for k, v in data.items()}


def _walk(data: Any, secrets: frozenset[str]) -> Any:
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, Mapping):
        return _walk_mapping(data, secrets)
    if isinstance(data, (list, tuple)):
        return [_walk(v, secrets) for v in data]
    return data


def _masked_whole(value: Any) -> Any:
    if isinstance(value, str):
        return _mask_field(value)
    if isinstance(value, Mapping):
        return {k: _masked_whole(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked_whole(v) for v in value]
    return value  # a number or flag under a secret-looking name (``max_tokens: 5``) says nothing secret


def _mask_field(value: str) -> str:
    """A secret field's value masked, keeping a leading auth scheme and any references visible."""
    if not value or value == MASK:
        return value
    if REFERENCE.search(value):
        parts = REFERENCE.split(value)
        # split() yields literal, kind, name, literal, ...: rebuild with the literals masked
        out = []
        for i in range(0, len(parts), 3):
            literal = parts[i]
            out.append(literal if literal.strip().lower() in ("", "bearer", "basic", "token") else MASK)
            if i + 2 < len(parts):
                out.append(f"${{{parts[i + 1]}:{parts[i + 2]}}}")
        return "".join(out)
    scheme = re.match(rf"(?i)({_SCHEMES})\s+", value)
    return f"{scheme.group(1)} {MASK}" if scheme else MASK


def _redact_authority(authority: str, scheme: str) -> str:
    userinfo, at, hostport = authority.rpartition("@")
    if at and ":" in userinfo:
        user, password = userinfo.split(":", 1)
        userinfo = f"{user}:{password if is_reference(password) else MASK}"
    # In most Apprise URLs the "host" is a token (slack://TokenA/..., tgram://123:ABC/...), not a machine.
    is_token_host = scheme not in _PLAIN_PATH_SCHEMES and scheme not in _REAL_HOST_SCHEMES
    if is_token_host and hostport and "." not in hostport and not hostport.startswith("["):
        hostport = MASK
    return f"{userinfo}{at}{hostport}"


def _redact_url_match(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    lowered = scheme.lower().split("+", 1)[0]  # postgresql+psycopg is a postgresql URL
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    split = re.search(r"[?#]", tail)
    path, after = (tail[:split.start()], tail[split.start():]) if split else (tail, "")
    if lowered in _PLAIN_PATH_SCHEMES:
        segments = [MASK if _TOKEN_SEGMENT.match(s) else s for s in path.split("/")]
    else:
        segments = [MASK if s else s for s in path.split("/")]
    url = f"{scheme}://{_redact_authority(authority, lowered)}{'/'.join(segments)}{after}"
    return _QUERY_PARAM.sub(lambda m: m.group(1) + MASK if is_secret_name(m.group(1)[1:-1]) else m.group(0), url)


# --- the secrets of one component ------------------------------------------------------------------


def _get(source: Any, key: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def url_secrets(url: str | None) -> set[str]:
    """The password (as written and percent-decoded) and secret query values of one URL."""
    if not url or "://" not in url:
        return set()
    out: set[str] = set()
    try:
        parts = urlsplit(url)
        password = parts.password
        query = parts.query
    except ValueError:
        return set()
    if password:
        raw = parts.netloc.rpartition("@")[0].split(":", 1)[-1]
        out |= {raw, unquote(raw)}
    for name, value in parse_qsl(query):
        if value and is_secret_name(name):
            out.add(value)
    return out


def _header_secrets(headers: Mapping[str, Any] | None) -> set[str]:
    out: set[str] = set()
    for name, value in (headers or {}).items():
        if isinstance(value, str) and value and is_secret_name(str(name)):
            out.add(value)
            scheme = re.match(rf"(?i){_SCHEMES}\s+(.+)", value)
            if scheme:
                out.add(scheme.group(1))
    return out


def secret_values(source: Any) -> frozenset[str]:
    """The secret values of a component, from its row, its definition or view dict, its spec or its
    strategy view: URL passwords (url, check url, backup_url), secret-looking headers, vars with
    secret-looking names, and every value of ``secret_vars``. References are left out (they are not
    secret; the values they resolve to are remembered when resolved)."""
    out: set[str] = set()
    check = _get(source, "check_spec") or _get(source, "check")
    for url in (_get(source, "url"), _get(source, "backup_url"), _get(check, "url") if check else None):
        out |= url_secrets(url)
    if check is not None:
        out |= _header_secrets(_get(check, "headers"))
    for name, value in (_get(source, "vars") or {}).items():
        if isinstance(value, str) and is_secret_name(str(name)):
            out.add(value)
    out |= {v for v in (_get(source, "secret_vars") or {}).values() if isinstance(v, str)}
    return frozenset(v for v in out if v and v != MASK and not is_reference(v))
