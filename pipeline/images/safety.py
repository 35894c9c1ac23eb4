"""Which URLs the image fetcher may touch.

Crawled image URLs are untrusted: a URL (or a redirect) pointing at 10.x, 127.x, 169.254.x
(cloud metadata) and so on would make the pipeline probe its own network. Two checks:
before a request, the URL's scheme and every address its host resolves to; and when a
connection is actually opened, the peer address of the socket (closing the window in which a
host could re-resolve to another address between the check and the connect).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRejected(Exception):
    """A URL the policy refuses; ``status`` is the image row status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class AddressPolicy:
    """Public addresses only, plus the networks listed in ``allow`` (CIDR or single IPs)."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allowed = tuple(ipaddress.ip_network(a, strict=False) for a in allow)

    def ip_allowed(self, ip: str | IPAddress) -> bool:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self.allowed):
            return True
        # is_global is False for private, loopback, link-local, CGNAT, reserved, unspecified.
        return addr.is_global and not addr.is_multicast

    def check_url(self, url: str) -> None:
        """Raise UrlRejected unless ``url`` is http(s) to a host with only allowed addresses."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise UrlRejected("bad_url", f"unparsable URL: {e}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UrlRejected("bad_scheme", f"scheme {scheme or '(none)'!r} is not http(s)")
        host = parts.hostname
        if not host:
            raise UrlRejected("bad_url", "URL has no host")
        port = port or (443 if scheme == "https" else 80)
        try:
            addrs = resolve(host, port)
        except OSError as e:
            raise UrlRejected(
                "connection_error", f"cannot resolve {host}: {e.strerror or e}"
            ) from None
        for a in addrs:
            if not self.ip_allowed(a):
                raise UrlRejected("blocked_address", f"{host} resolves to non-public address {a}")


@functools.lru_cache(maxsize=4096)
def resolve(host: str, port: int) -> tuple[str, ...]:
    """All addresses of ``host`` (cached: one lookup per host per process)."""
    try:
        return (str(ipaddress.ip_address(host.strip("[]"))),)
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(sorted({info[4][0] for info in infos}))


class BlockedPeer(Exception):
    """Raised from inside urllib3 when a socket connects to an address the policy refuses."""


def _guarded(base: type, policy: AddressPolicy) -> type:
    def _new_conn(self):  # type: ignore[no-untyped-def]
        sock = base._new_conn(self)
        peer = sock.getpeername()[0]
        if not policy.ip_allowed(peer):
            sock.close()
            raise BlockedPeer(f"{self.host} connected to non-public address {peer}")
        return sock

    return type(f"Guarded{base.__name__}", (base,), {"_new_conn": _new_conn})


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections check the peer address right after connecting."""

    def __init__(self, policy: AddressPolicy, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        http_conn = _guarded(HTTPConnection, self._policy)
        https_conn = _guarded(HTTPSConnection, self._policy)
        http_pool = type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
        https_pool = type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}
