"""Connecting to Redis: bounded timeouts, short bounded retries, one-line errors with hints,
and the password never shown, in any of the forms redis-py reads one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from tiercli.errors import TiercliError

SCHEMES = ("redis", "rediss", "unix")  # what redis-py's parse_url accepts (lower case only)
_SCHEME_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,19}")  # safe to name in a message
URL_FORMS = ("redis://[[user]:password@]host:port/db, rediss://... for TLS, "
             "unix://[[user]:password@]/path/to/socket[?db=N], or embedded")
# Query fields whose values are shown; every other value is masked, since redis-py passes any
# field on to the connection (password=, ssl_password=, and a misspelt pasword= alike).
_SHOWN_FIELDS = frozenset((
    "db", "username", "client_name", "protocol", "socket_timeout", "socket_connect_timeout",
    "socket_read_size", "socket_keepalive", "retry_on_timeout", "retry_on_error", "max_connections",
    "health_check_interval", "timeout", "legacy_responses", "ssl_check_hostname", "ssl_cert_reqs",
    "ssl_min_version", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile",
    "ssl_include_verify_flags", "ssl_exclude_verify_flags"))


@dataclass(frozen=True)
class _Parts:
    """A URL cut where urllib (and so redis-py) cuts it: userinfo ends at the last '@' of the
    netloc, which ends at the first '/', '?' or '#'."""

    scheme: str
    userinfo: str | None
    host: str  # host[:port]
    path: str
    query: str | None
    fragment: str | None

    @classmethod
    def of(cls, url: str) -> "_Parts | None":
        scheme, sep, rest = url.partition("://")
        if not sep:
            return None
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        netloc, tail = rest[:end], rest[end:]
        userinfo, at, host = netloc.rpartition("@")
        tail, hash_, fragment = tail.partition("#")
        path, qmark, query = tail.partition("?")
        return cls(scheme, userinfo if at else None, host, path, query if qmark else None,
                   fragment if hash_ else None)

    def fields(self) -> list[tuple[str, str, str | None]]:
        """(raw field, decoded name, raw value or None) of each query field."""
        out = []
        for field in (self.query or "").split("&"):
            if field:
                name, eq, value = field.partition("=")
                out.append((field, unquote_plus(name), value if eq else None))
        return out


def url_problem(url: str) -> str | None:
    """Why redis-py cannot use `url`, or would read it otherwise than it looks (a '/', '?' or
    '#' in a password cuts the URL short); None if it is fine. Never quotes the URL: it may
    hold a password."""
    parts = _Parts.of(url)
    if parts is None or parts.scheme not in SCHEMES:
        scheme = parts.scheme if parts else ""
        if _SCHEME_WORD.fullmatch(scheme):
            return f"unknown scheme {scheme!r}: use {URL_FORMS}"
        return f"not a Redis URL: use {URL_FORMS}"
    encode = "; write a '/', '?' or '#' in a password URL-encoded (%2F, %3F, %23)"
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        return "the URL holds a control character (a line break or tab?)"
    if parts.fragment is not None:
        return "a Redis URL has no '#' part" + encode
    if any(value is None for _, _, value in parts.fields()):
        return "every field after '?' must be name=value" + encode
    if parts.scheme == "unix":
        if parts.host:
            return "a unix:// URL names no host: unix:///path/to/socket or unix://:PASSWORD@/path/to/socket" + encode
        if not parts.path:
            return "a unix:// URL needs the socket's path: unix:///path/to/socket"
    elif not re.fullmatch(r"(/\d*)?", parts.path):
        return "after host:port comes only the db number, as in redis://host:6379/0" + encode
    from redis.connection import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        message = str(exc)  # "Invalid value for 'db' in connection URL." names a field, not a value
        if message.startswith("Invalid value for '"):
            return message.rstrip(".")
        return "the host and port cannot be read (host:port, with a port from 0 to 65535)" + encode
    return None


def mask_url(url: str) -> str:
    """The URL as it may be shown: a password, a lone user name (often a password meant) and
    every query value that might be secret become ***, in whatever form they were written."""
    parts = _Parts.of(url)
    if parts is None:
        return url if url == "embedded" else "***"
    if url_problem(url) is not None:  # cut where redis-py would not: show nothing of it
        return f"{parts.scheme}://***" if _SCHEME_WORD.fullmatch(parts.scheme) else "***"
    shown = f"{parts.scheme}://"
    if parts.userinfo is not None:
        user, colon, _ = parts.userinfo.partition(":")
        shown += f"{user}:***@" if colon else "***@"
    shown += parts.host + parts.path
    if parts.query is not None:
        shown += "?" + "&".join(field if name in _SHOWN_FIELDS else f"{field.partition('=')[0]}=***"
                                for field, name, _ in parts.fields())
    return shown


def _secrets(url: str) -> list[str]:
    """Every secret of the URL, as written and as decoded, longest first."""
    parts = _Parts.of(url)
    if parts is None:
        return [] if url == "embedded" else [url]
    if url_problem(url) is not None:
        return [url.partition("://")[2]]
    raw = []
    if parts.userinfo is not None:
        user, colon, password = parts.userinfo.partition(":")
        raw.append(password if colon else user)
    raw += [value for _, name, value in parts.fields() if name not in _SHOWN_FIELDS and value]
    found = {form for text in raw for form in (text, unquote(text), unquote_plus(text)) if form}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """Text with the URL's secrets removed, wherever and however they appear."""
    if not url:
        return text
    text = text.replace(url, mask_url(url))
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def connect(url: str, timeout_s: float = 2.0):
    """A checked connection (PING, and SELECT of the URL's db); raises TiercliError."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    shown = mask_url(url)
    problem = url_problem(url)
    if problem is not None:
        raise TiercliError(f"redis url {shown}: {problem}", hint=f"use {URL_FORMS}")
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=False,
            # a few quick tries, then give up: at most ~1 s of waiting on a dead server
            retry=Retry(ExponentialBackoff(cap=0.4, base=0.05), retries=4))
        client.ping()
    except (ValueError, TypeError) as exc:  # TypeError: a query field redis-py does not know
        raise TiercliError(f"redis url {shown}: {scrub(str(exc), url)}", hint=f"use {URL_FORMS}") from None
    except Exception as exc:
        raise redis_error(exc, url, "cannot use Redis") from None
    return client


def redis_error(exc: Exception, url: str, what: str) -> TiercliError:
    """A one-line error with a hint for any failure talking to Redis."""
    import redis

    shown = mask_url(url)
    detail = scrub(str(exc), url) or type(exc).__name__
    scheme = url.partition("://")[0]
    if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in detail or "WRONGPASS" in detail \
            or "invalid password" in detail or "invalid username-password" in detail:
        return TiercliError(f"{what} at {shown}: authentication failed ({detail})",
                            hint="check the password in the URL: redis://:PASSWORD@host:port/db")
    if "DB index is out of range" in detail or "invalid DB index" in detail:
        return TiercliError(f"{what} at {shown}: no such database ({detail})",
                            hint="the db number at the end of the URL must be below the server's 'databases' setting")
    if "SSL" in detail or "ssl" in detail or "TLS" in detail or "record layer" in detail:
        return TiercliError(f"{what} at {shown}: TLS handshake failed ({detail})",
                            hint="use rediss:// only for a server that speaks TLS, redis:// otherwise")
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError, OSError)):
        hint = {"redis": "is the server up and reachable? (a TLS server needs rediss://)",
                "unix": "is the server up, and is that its socket's path?"}.get(scheme, "is the server up, and does it speak TLS?")
        return TiercliError(f"{what} at {shown}: {detail}", hint=hint)
    return TiercliError(f"{what} at {shown}: {type(exc).__name__}: {detail}")
