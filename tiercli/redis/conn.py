"""Connecting to Redis: bounded timeouts, short bounded retries, one-line errors with hints,
and the password never shown."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tiercli.errors import TiercliError

_PASSWORD = re.compile(r"(?P<scheme>[a-z]+://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


def scrub(text: str, url: str | None) -> str:
    """Text with the URL's password removed, wherever it appears."""
    if not url:
        return text
    text = text.replace(url, mask_url(url))
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def connect(url: str, timeout_s: float = 2.0):
    """A checked connection (PING, and SELECT of the URL's db); raises TiercliError."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    shown = mask_url(url)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise TiercliError(f"redis url {shown}: unknown scheme {scheme!r}",
                           hint="use redis://[:password@]host:port/db, rediss:// for TLS, or --redis embedded")
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=False,
            # a few quick tries, then give up: at most ~1 s of waiting on a dead server
            retry=Retry(ExponentialBackoff(cap=0.4, base=0.05), retries=4))
        client.ping()
    except ValueError as exc:
        raise TiercliError(f"redis url {shown}: {scrub(str(exc), url)}",
                           hint="use redis://[:password@]host:port/db") from None
    except Exception as exc:
        raise redis_error(exc, url, "cannot use Redis") from None
    return client


def redis_error(exc: Exception, url: str, what: str) -> TiercliError:
    """A one-line error with a hint for any failure talking to Redis."""
    import redis

    shown = mask_url(url)
    detail = scrub(str(exc), url) or type(exc).__name__
    scheme = urlsplit(url).scheme.lower()
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
        hint = ("is the server up and reachable? (a TLS server needs rediss://)" if scheme == "redis"
                else "is the server up, and does it speak TLS?")
        return TiercliError(f"{what} at {shown}: {detail}", hint=hint)
    return TiercliError(f"{what} at {shown}: {type(exc).__name__}: {detail}")
