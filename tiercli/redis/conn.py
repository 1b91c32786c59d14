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
# The query fields a URL may carry: redis-py's URL fields that make sense for tiercli's connection,
# per scheme (TLS settings only with rediss://, keep-alive only over TCP). Any other field is
# refused up front: redis-py would pass it on to the connection, which fails on it later (a
# TypeError naming the field, a misspelt `Password=` included) or silently changes how replies
# are read (decode_responses).
_COMMON_FIELDS = ("db", "username", "password", "client_name", "protocol", "socket_timeout",
                  "socket_connect_timeout", "socket_read_size", "retry_on_timeout", "retry_on_error",
                  "health_check_interval", "max_connections", "legacy_responses")
_SCHEME_FIELDS = {
    "redis": ("socket_keepalive",),
    "rediss": ("socket_keepalive", "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path",
               "ssl_password", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers", "ssl_include_verify_flags",
               "ssl_exclude_verify_flags", "ssl_validate_ocsp", "ssl_validate_ocsp_stapled"),
    "unix": (),
}
# A field whose name looks like one of these holds a secret: its value is never shown.
_SECRET_NAME = re.compile(r"pass|pwd|token|secret|key|auth|cred", re.IGNORECASE)
_FIELD_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")  # a field name that may be named in a message


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
    problem = _field_problem(parts)
    if problem is not None:
        return problem
    from redis.connection import parse_url

    try:
        options = parse_url(url)
    except ValueError as exc:
        message = str(exc)  # "Invalid value for 'db' in connection URL." names a field, not a value
        if message.startswith("Invalid value for '"):
            return message.rstrip(".")
        return "the host and port cannot be read (host:port, with a port from 0 to 65535)" + encode
    options.pop("max_connections", None)  # the pool's, not the connection's
    try:  # builds the connection object, which checks the fields' values; it does not connect
        options.pop("connection_class", _connection_class(parts.scheme))(**options)
    except Exception as exc:  # its message may quote a value: named by the field it is about
        about = [name for _, name, _ in parts.fields() if name in str(exc)]
        return f"invalid value for {about[0]!r}" if about else f"redis-py cannot use these settings ({type(exc).__name__})"
    return None


def _connection_class(scheme: str):
    from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

    return {"redis": Connection, "rediss": SSLConnection, "unix": UnixDomainSocketConnection}[scheme]


def known_fields(scheme: str) -> tuple[str, ...]:
    """The query fields a `scheme` URL may carry: ours, as far as the installed redis-py's
    connection takes them."""
    import inspect

    from redis.connection import ConnectionPool

    taken = {name for cls in (*_connection_class(scheme).__mro__, ConnectionPool)
             for name in inspect.signature(cls.__init__).parameters} if scheme in _SCHEME_FIELDS else set()
    return tuple(name for name in (*_COMMON_FIELDS, *_SCHEME_FIELDS.get(scheme, ())) if name in taken)


def _field_problem(parts: _Parts) -> str | None:
    """An unknown or repeated query field, named (its value masked), with what was meant."""
    import difflib

    known = known_fields(parts.scheme)
    seen = set()
    for position, (_, name, _) in enumerate(parts.fields(), 1):
        named = f"{name}=***" if _FIELD_WORD.fullmatch(name) else f"number {position} (name not shown)"
        if name not in known:
            alike = [k for k in known if k.lower() == name.lower()] or difflib.get_close_matches(name, known, 1)
            meant = f"; did you mean {alike[0]}?" if alike else ""
            if "=" in name:  # `password%3DSECRET=x`: an encoded '=' made the value part of the name
                meant = "; its name holds an encoded '=' (%3D): write name=value with a plain '='"
            other = [s for s in _SCHEME_FIELDS if s != parts.scheme and name in _SCHEME_FIELDS[s]]
            where = f"; {name} applies to {other[0]}:// URLs" if other and not alike else ""
            return f"unknown field {named} after '?'{meant}{where} (known: {', '.join(known)})"
        if name in seen:
            return f"the field {name} is given twice after '?'"
        seen.add(name)
    return None


def _secret_field(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def mask_url(url: str) -> str:
    """The URL as it may be shown: the userinfo's password (or a lone user name, often a
    password meant) and the value of every query field whose name looks secret become ***.
    Masked by the URL's structure, never by searching for the secret in text."""
    parts = _Parts.of(url)
    if parts is None:
        return url if url == "embedded" else "***"
    if url_problem(url) is not None:  # cut where redis-py would not, or unknown fields: show nothing of it
        return f"{parts.scheme}://***" if _SCHEME_WORD.fullmatch(parts.scheme) else "***"
    shown = f"{parts.scheme}://"
    if parts.userinfo is not None:
        user, colon, _ = parts.userinfo.partition(":")
        shown += f"{user}:***@" if colon else "***@"
    shown += parts.host + parts.path
    if parts.query is not None:
        shown += "?" + "&".join(f"{field.partition('=')[0]}=***" if _secret_field(name) else field
                                for field, name, _ in parts.fields())
    return shown


def _secrets(url: str) -> list[str]:
    """The URL's secrets (the userinfo's password or lone user name, secret fields' values), as
    written and as decoded."""
    parts = _Parts.of(url)
    if parts is None:
        return [] if url == "embedded" else [url]
    raw = []
    if parts.userinfo is not None:
        user, colon, password = parts.userinfo.partition(":")
        raw.append(password if colon else user)
    raw += [value for _, name, value in parts.fields() if _secret_field(name) and value]
    return sorted({form for text in raw for form in (text, unquote(text), unquote_plus(text)) if form})


def _shown_detail(exc: Exception, url: str) -> str:
    """The error's own text, unless it holds one of the URL's secrets: then only its type
    (withheld whole rather than cut, which would leave a part of the secret or mangle the text)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not text or any(secret in text for secret in _secrets(url)):
        return type(exc).__name__
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
    except Exception as exc:
        raise redis_error(exc, url, "cannot use Redis") from None
    return client


def redis_error(exc: Exception, url: str, what: str) -> TiercliError:
    """A one-line error with a hint for any failure talking to Redis."""
    import redis

    shown = mask_url(url)
    text = str(exc)  # read, never shown as such: _shown_detail decides what of it is shown
    detail = _shown_detail(exc, url)
    scheme = url.partition("://")[0]
    if isinstance(exc, redis.AuthenticationError) or any(
            word in text for word in ("NOAUTH", "WRONGPASS", "invalid password", "invalid username-password")):
        return TiercliError(f"{what} at {shown}: authentication failed ({detail})",
                            hint="check the password in the URL: redis://:PASSWORD@host:port/db")
    if "DB index is out of range" in text or "invalid DB index" in text:
        return TiercliError(f"{what} at {shown}: no such database ({detail})",
                            hint="the db number at the end of the URL must be below the server's 'databases' setting")
    if any(word in text for word in ("SSL", "ssl", "TLS", "record layer")):
        return TiercliError(f"{what} at {shown}: TLS handshake failed ({detail})",
                            hint="use rediss:// only for a server that speaks TLS, redis:// otherwise")
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError, OSError)):
        hint = {"redis": "is the server up and reachable? (a TLS server needs rediss://)",
                "unix": "is the server up, and is that its socket's path?"}.get(scheme, "is the server up, and does it speak TLS?")
        return TiercliError(f"{what} at {shown}: {detail}", hint=hint)
    return TiercliError(f"{what} at {shown}: {type(exc).__name__}: {detail}")
