"""Host names to addresses for steering rules (asyncio: ``loop.getaddrinfo`` in the default executor).

A rule is made of addresses: the name is resolved once, when the rule is added (a name whose
addresses change later is not followed: add the rule again).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

__all__ = ["ResolveError", "resolve_host", "TIMEOUT"]

TIMEOUT = 5.0


class ResolveError(Exception):
    """The name has no address (or the resolver did not answer in time); the message says which."""


async def resolve_host(name: str, *, timeout: float = TIMEOUT, limit: int = 16) -> list[str]:
    """The IPv6 and IPv4 addresses of ``name`` (IPv6 first, each once, at most ``limit``); ResolveError
    on failure or after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), timeout)
    except asyncio.TimeoutError:
        raise ResolveError(f"{name}: no answer from the resolver in {timeout:g} s") from None
    except (socket.gaierror, UnicodeError, OSError) as e:
        raise ResolveError(f"{name}: {getattr(e, 'strerror', None) or e}") from None
    out: list[str] = []
    for fam, *_rest, addr in infos:
        if fam not in (socket.AF_INET6, socket.AF_INET):
            continue
        text = str(ipaddress.ip_address(addr[0].split("%")[0]))
        if text not in out:
            out.append(text)
    out.sort(key=lambda a: ":" not in a)
    if not out:
        raise ResolveError(f"{name} has no IPv6 or IPv4 address")
    return out[:limit]
