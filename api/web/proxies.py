"""Forwarded headers are believed only from the proxies named in TRUSTED_PROXIES.

Anyone can send `X-Forwarded-Host`: trusted from any client, it let a request signed by Twilio
for another host pass our signature check. This middleware looks at the TCP peer before anything
else does, marks whether it is a trusted proxy, and only then takes the real client address from
`X-Forwarded-For` (the right-most hop that is not itself a trusted proxy). The service runs
uvicorn with its own proxy-header handling off, so this is the one place that decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.config import get_settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Set on the ASGI scope by the middleware: was the TCP peer a trusted proxy?
SCOPE_KEY = "tratativa.via_trusted_proxy"


def is_trusted(host: str | None, networks: Iterable[Network]) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return any(address.version == n.version and address in n for n in networks)


def forwarded_headers_trusted(connection: HTTPConnection) -> bool:
    """True when the request came through a configured proxy, so X-Forwarded-* may be read."""
    marked = connection.scope.get(SCOPE_KEY)
    if marked is not None:
        return bool(marked)
    client = connection.client
    return is_trusted(client.host if client else None, get_settings().trusted_proxies)


def _real_client(forwarded_for: str, networks: Iterable[Network]) -> str | None:
    """The right-most hop that is not a trusted proxy (the left-most if all are); None when
    that hop is not an IP address."""
    hops = [hop.strip().strip("[]") for hop in forwarded_for.split(",") if hop.strip()]
    networks = tuple(networks)
    untrusted = [hop for hop in hops if not is_trusted(hop, networks)]
    candidate = untrusted[-1] if untrusted else (hops[0] if hops else "")
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


class TrustedProxyMiddleware:
    """Marks requests from a trusted proxy and gives them the client address and scheme it
    forwarded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            networks = get_settings().trusted_proxies
            client = scope.get("client")
            trusted = is_trusted(client[0] if client else None, networks)
            scope = dict(scope)
            scope[SCOPE_KEY] = trusted
            if trusted and client:
                headers = dict(scope.get("headers") or [])
                forwarded_for = headers.get(b"x-forwarded-for", b"").decode("latin-1")
                real = _real_client(forwarded_for, networks) if forwarded_for else None
                if real:
                    scope["client"] = (real, 0)
                # As uvicorn did for its trusted proxies: URLs built from the request (a
                # redirect) keep the scheme the client used in front of the TLS proxy.
                proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1")
                proto = proto.split(",")[0].strip().lower()
                if proto in ("http", "https"):
                    websocket = scope["type"] == "websocket"
                    scope["scheme"] = {"http": "ws", "https": "wss"}[proto] if websocket else proto
        await self.app(scope, receive, send)
