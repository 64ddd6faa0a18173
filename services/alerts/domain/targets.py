"""Which addresses a webhook may be delivered to.

A webhook URL is chosen by whoever holds an admin key, and its delivery log shows each
attempt's outcome: left open, it would probe the town's own network (the database, the broker,
the cloud metadata service) from inside. So only globally routable unicast addresses are
allowed, unless an admin allow-lists a network on purpose (a receiver on the same host or LAN).

The check runs twice: on the literal address when a webhook is created (a clear 422), and on
every address a host name resolves to when a delivery connects (DNS can change in between).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# NAT64's well-known prefix embeds an IPv4 address in the last 32 bits (RFC 6052).
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class ForbiddenTarget(ValueError):
    pass


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host denotes without DNS, in any of the forms resolvers accept.

    `0x7f000001`, `2130706433`, `0177.0.0.1` and `127.1` all mean 127.0.0.1 to inet_aton
    (and so to libc's resolver): they are decoded the same way here.

    >>> str(literal_address("0x7f000001")), str(literal_address("2130706433"))
    ('127.0.0.1', '127.0.0.1')
    >>> str(literal_address("[::ffff:127.0.0.1]"))
    '::ffff:7f00:1'
    >>> literal_address("hooks.example.org") is None
    True
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded(addr: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), else itself."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr.teredo is not None:
            return addr.teredo[1]
        if addr in NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def forbidden_reason(addr: IPAddress, *, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why delivering to `addr` is refused, or None if it is allowed.

    >>> forbidden_reason(ipaddress.ip_address("169.254.169.254"))
    'link-local address (169.254.169.254)'
    >>> forbidden_reason(ipaddress.ip_address("fd00:ec2::254"))
    'private address (fd00:ec2::254)'
    >>> forbidden_reason(ipaddress.ip_address("::ffff:10.0.0.1"))
    'private address (10.0.0.1)'
    >>> forbidden_reason(ipaddress.ip_address("93.184.215.14")) is None
    True
    >>> net = ipaddress.ip_network("127.0.0.1/32")
    >>> forbidden_reason(ipaddress.ip_address("127.0.0.1"), allowed=[net]) is None
    True
    """
    inner = _embedded(addr)
    for candidate in {addr, inner}:
        if any(candidate.version == n.version and candidate in n for n in allowed):
            return None
    for kind, test in (
        ("unspecified", inner.is_unspecified),
        ("loopback", inner.is_loopback),
        ("link-local", inner.is_link_local),
        ("multicast", inner.is_multicast),
        ("private", inner.is_private),
        ("reserved", inner.is_reserved),
        # Whatever else IANA does not route globally (shared address space 100.64/10, ...).
        ("non-global", not inner.is_global),
    ):
        if test:
            return f"{kind} address ({inner})"
    return None


def check_literal(host: str, *, allowed: Iterable[IPNetwork] = ()) -> None:
    """Refuse a URL host that is, or obviously names, a forbidden address (no DNS here)."""
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        addr: IPAddress | None = ipaddress.IPv4Address("127.0.0.1")
    else:
        addr = literal_address(host)
    if addr is not None and (reason := forbidden_reason(addr, allowed=allowed)):
        raise ForbiddenTarget(
            f"webhook target refused: {reason}; an admin can allow a network with "
            "TOWNPULSE_WEBHOOK_ALLOWED_NETWORKS"
        )
