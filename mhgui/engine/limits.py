"""Bounded rate limits for what an internet-facing daemon does on behalf of others (pure, clock given).

- :class:`TokenBucket`: at most ``rate`` events a second, bursts of ``burst``;
- :class:`KeyedBuckets`: one bucket per key (a source prefix, an identity), at most ``max_keys`` keys kept
  (least recently used forgotten first), so that many sources cannot grow memory or CPU;
- :func:`source_prefix`: the key for an address: its /64 (IPv6) or the address itself (IPv4, also
  IPv4-mapped), so that one host with a /64 counts once.
"""

from __future__ import annotations

import collections
import ipaddress

__all__ = ["KeyedBuckets", "TokenBucket", "source_prefix"]


class TokenBucket:
    """``rate`` tokens a second (float), at most ``burst``; :meth:`take` spends one when there is one."""

    __slots__ = ("burst", "rate", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class KeyedBuckets:
    """A :class:`TokenBucket` per key, created full, the ``max_keys`` most recently used kept."""

    def __init__(self, rate: float, burst: float, max_keys: int = 4096) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: collections.OrderedDict[object, TokenBucket] = collections.OrderedDict()

    def take(self, key: object, now: float) -> bool:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return b.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


def source_prefix(address: str) -> str:
    """``2001:db8:1:2::7`` -> ``2001:db8:1:2::/64``; IPv4 (and ``::ffff:a.b.c.d``) -> the address; junk -> itself."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped if ip.version == 6 else ip)
