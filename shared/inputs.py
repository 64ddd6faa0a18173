"""Types for what comes in at the edge: days and times, numbers, outbound URLs.

Every route and request body declares its inputs with these instead of bare `date`, `datetime`,
`float` or `str`, so that what reaches date arithmetic, a numeric rule or an HTTP client was
checked once, at the edge, with a 422 and a reason: `9999-12-31` plus a day overflows, a NaN
threshold never fires (NaN compares false with everything), and a URL httpx cannot parse would
otherwise surface as a 500 when it is used, long after it was stored.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, AllowInfNan, Field

# Before any sensor of ours existed, and far enough ahead for a clock set wrong by a year: past
# those, a time is a typo (or a probe for an overflow), never a question about the town.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=366)


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_instant(value: datetime) -> datetime:
    """An aware time within [2000, a year from now], in UTC.

    >>> check_instant(datetime(2026, 1, 1, 12, tzinfo=UTC)).isoformat()
    '2026-01-01T12:00:00+00:00'
    >>> check_instant(datetime(9999, 12, 31, tzinfo=UTC))
    Traceback (most recent call last):
    ...
    ValueError: must be between 2000 and a year from now
    """
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset (e.g. Z)")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not EARLIEST <= value <= utcnow() + FUTURE_SLACK:
        raise ValueError("must be between 2000 and a year from now")
    return value


def check_day(value: date) -> date:
    """A calendar day within [2000-01-01, a year from today].

    >>> check_day(date(2026, 3, 1))
    datetime.date(2026, 3, 1)
    >>> check_day(date(1, 1, 1))
    Traceback (most recent call last):
    ...
    ValueError: must be between 2000-01-01 and a year from today
    """
    if not EARLIEST.date() <= value <= (utcnow() + FUTURE_SLACK).date():
        raise ValueError("must be between 2000-01-01 and a year from today")
    return value


# A time (query string or body): aware, converted to UTC, bounded as above.
Instant = Annotated[datetime, AfterValidator(check_instant)]
# A calendar day (a summary's day, a round's date): bounded as above.
Day = Annotated[date, AfterValidator(check_day)]
# A number that arithmetic and comparisons can use: NaN and ±Infinity are refused, whether sent
# as JSON's non-standard literals or as strings ("NaN", "Infinity") in a query or a body.
Finite = Annotated[float, AllowInfNan(False)]

_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A host whose last label is a number is an IPv4 address to browsers and to httpx (the WHATWG
# URL standard): 1.2.3.256 is an invalid address, not a host name.
_NUMERIC_LAST_LABEL = re.compile(r"(^|\.)(0x[0-9a-f]*|[0-9]+)\.?$")


def check_outbound_url(url: str) -> str:
    """An http(s) URL the services may send to: parsable by httpx, with a valid host and port,
    no control character or space, no credentials. Where it may point (private networks) is
    the sender's own check (services/alerts/domain/targets.py).

    >>> check_outbound_url("https://hooks.example.org/townpulse?x=1")
    'https://hooks.example.org/townpulse?x=1'
    >>> check_outbound_url("http://1.2.3.256/")
    Traceback (most recent call last):
    ...
    ValueError: the host is not a valid IPv4 address: 1.2.3.256
    >>> check_outbound_url("http://a.example/\\r\\nX-Injected: 1")
    Traceback (most recent call last):
    ...
    ValueError: the URL holds a control character or a space
    """
    if _CONTROL.search(url):
        raise ValueError("the URL holds a control character or a space")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("no credentials in the URL: the receiver checks the signature instead")
    if port == 0:
        raise ValueError("port 0 is not a port")
    _check_host(parts.hostname, bracketed="[" in parts.netloc)
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    return url


def _check_host(host: str, *, bracketed: bool) -> None:
    if bracketed:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"the host is not a valid IPv6 address: {host}") from None
        return
    if _NUMERIC_LAST_LABEL.search(host):
        # The forms resolvers accept too (0x7f000001, 2130706433, 127.1): they are addresses,
        # and where they point is the target check's business.
        try:
            socket.inet_aton(host)
        except OSError:
            raise ValueError(f"the host is not a valid IPv4 address: {host}") from None
        return
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"the host is not a valid name: {host}") from None
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"the host is not a valid name: {host}")


OutboundUrl = Annotated[str, Field(max_length=2000), AfterValidator(check_outbound_url)]
