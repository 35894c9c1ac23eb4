"""Which URLs the image fetcher may touch.

Crawled image URLs are untrusted: a URL (or a redirect) pointing at 10.x, 127.x, 169.254.x
(cloud metadata) and so on would make the pipeline probe its own network. Two checks, both
before any connection is opened:

- ``AddressPolicy.check_url``: the scheme, and every address the host resolves to. The URL
  is parsed by urllib3's parser, the one requests connects with (``urllib.parse`` reads
  ``http://127.0.0.1:1\\@8.8.8.8/`` as host 8.8.8.8, urllib3 as host 127.0.0.1), and the
  fetcher requests the URL as that parser wrote it back.
- ``GuardedAdapter``: the connection code itself resolves the host, checks every address, and
  connects to a checked address (not to a second, possibly different DNS answer), so a host
  that re-resolves to a private address after the first check is still refused unconnected.

IPv6 forms that embed an IPv4 address (mapped ``::ffff:a.b.c.d``, compatible ``::a.b.c.d``,
translated ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo) are
judged by the IPv4 policy on the embedded address.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util import connection as u3connection
from urllib3.util import parse_url

from . import deadline

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # embedding depends on the prefix used


class UrlRejected(Exception):
    """A URL the policy refuses; ``status`` is the image row status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address stands for, or None for a plain IPv6 address."""
    n = int(addr)
    low = ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if addr.ipv4_mapped is not None:
        return [addr.ipv4_mapped]
    if n >> 32 == 0 or n >> 32 == 0xFFFF0000 or addr in _NAT64:  # compatible, translated
        return [low]
    if addr.sixtofour is not None:
        return [addr.sixtofour]
    if addr.teredo is not None:
        return list(addr.teredo)  # (server, client)
    return None


class AddressPolicy:
    """Public addresses only, plus the networks listed in ``allow`` (CIDR or single IPs)."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allowed = tuple(ipaddress.ip_network(a, strict=False) for a in allow)

    def ip_allowed(self, ip: str | IPAddress) -> bool:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        if any(addr in net for net in self.allowed):
            return True
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.scope_id:  # fe80::1%eth0: link-local by construction
                return False
            inner = embedded_ipv4(addr)
            if inner is not None:
                return all(self.ip_allowed(a) for a in inner)
            if addr in _NAT64_LOCAL:
                return False
        # is_global is False for private, loopback, link-local, CGNAT, reserved, unspecified.
        return addr.is_global and not addr.is_multicast

    def check_url(self, url: str) -> str:
        """The URL to request, as urllib3 reads it; UrlRejected unless it is http(s) to a host
        whose addresses are all allowed."""
        try:
            parts = parse_url(url)
        except (LocationParseError, ValueError) as e:
            raise UrlRejected("bad_url", f"unparsable URL: {e}") from None
        scheme = (parts.scheme or "").lower()
        if scheme not in ("http", "https"):
            raise UrlRejected("bad_scheme", f"scheme {scheme or '(none)'!r} is not http(s)")
        host = parts.host
        if not host:
            raise UrlRejected("bad_url", "URL has no host")
        self.check_host(host, parts.port or (443 if scheme == "https" else 80))
        return parts.url

    def check_host(self, host: str, port: int) -> tuple[str, ...]:
        """All addresses of ``host``; UrlRejected unless every one is allowed."""
        try:
            addrs = resolve(host, port)
        except (OSError, UnicodeError) as e:
            msg = getattr(e, "strerror", None) or e
            raise UrlRejected("connection_error", f"cannot resolve {host}: {msg}") from None
        for a in addrs:
            if not self.ip_allowed(a):
                raise UrlRejected("blocked_address", f"{host} resolves to non-public address {a}")
        return addrs


@functools.lru_cache(maxsize=4096)
def resolve(host: str, port: int) -> tuple[str, ...]:
    """All addresses of ``host``, in getaddrinfo's order (cached: one lookup per host per
    process)."""
    try:
        return (str(ipaddress.ip_address(host.strip("[]"))),)
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(info[4][0] for info in infos))


class BlockedPeer(Exception):
    """Raised from inside urllib3 when a connection would go to an address the policy
    refuses."""


def _guarded(base: type, policy: AddressPolicy) -> type:
    def _new_conn(self: Any) -> socket.socket:
        # Resolve and check here, then connect to a checked address: urllib3 would resolve
        # again and could get another answer.
        try:
            addrs = policy.check_host(self._dns_host, self.port)
        except UrlRejected as e:
            if e.status == "blocked_address":
                raise BlockedPeer(str(e)) from None
            raise NameResolutionError(self.host, self, socket.gaierror(str(e))) from None
        dl = deadline.current()
        err: Exception | None = None
        for addr in addrs:
            timeout = self.timeout
            if dl is not None and isinstance(timeout, int | float):
                timeout = min(timeout, dl.remaining())
                if timeout <= 0:
                    raise ConnectTimeoutError(self, f"no time left to connect to {self.host}")
            try:
                sock = u3connection.create_connection(
                    (addr, self.port),
                    timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as e:
                err = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={timeout})"
                )
                err.__cause__ = e
                continue
            except OSError as e:
                err = NewConnectionError(self, f"Failed to establish a new connection: {e}")
                err.__cause__ = e
                continue
            if dl is not None:
                dl.watch(sock)
            return sock
        raise err or NewConnectionError(self, f"{self.host} has no address")

    return type(f"Guarded{base.__name__}", (base,), {"_new_conn": _new_conn})


def _watched_pool(base: type, conn_cls: type) -> type:
    def _get_conn(self: Any, timeout: float | None = None) -> Any:
        conn = base._get_conn(self, timeout)
        dl = deadline.current()
        if dl is not None and conn.sock is not None:  # a kept-alive connection
            dl.watch(conn.sock)
        return conn

    return type(
        f"Guarded{base.__name__}", (base,), {"ConnectionCls": conn_cls, "_get_conn": _get_conn}
    )


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go to policy-checked addresses only, and whose
    sockets are registered with the running request's deadline (see deadline.py)."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        self._policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _watched_pool(HTTPConnectionPool, _guarded(HTTPConnection, self._policy)),
            "https": _watched_pool(HTTPSConnectionPool, _guarded(HTTPSConnection, self._policy)),
        }
