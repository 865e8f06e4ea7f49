"""umipdouble: a test double of UMIP's Mobile IPv6 daemon ``mip6d``.

Written from ``shared/domain/umip.md`` and ``shared/domain/protocol.md`` only;
it imports nothing from ``mhgui``. Stdlib plus pyroute2.

Run (as root, in the network namespace it should manage)::

    cd tests && python -m umipdouble -c mip6d.conf [--vt-service PORT] [--ha-stand-in]
    PYTHONPATH=/path/to/tests ip netns exec NS python -m umipdouble -c FILE

Faithful (per umip.md):
  * VT: localhost TCP (every getaddrinfo result, usually 127.0.0.1 and ::1),
    port 7777 or ``--vt-service``, backlog 1, one client at a time
    (``Too many connections\\n``), greeting ``mip6d> ``, one recv chunk = one
    line whose last byte becomes NUL, reply + ``mip6d> `` + NUL, ``quit``/``exit``
    close silently, prompt/verbose/fancy per connection (yes/no/yes),
    ``unknown command: "X"`` / ``(null)``, ``unknown args``, ``help`` lists,
    NIP6ADDR addresses, ``bul`` and HA ``bc`` layouts, EPIPE on a VT write ends
    the daemon (as SIGPIPE ends mip6d).
  * Configuration grammar of section 2 with its error line
    ``Error in configuration file F at line N: MSG at 'TOK'`` and exit 1;
    missing ``-c FILE`` exit 1; ``MnHomeLink`` interface must exist
    (``invalid interface``); HA ``Interface`` entries must exist.
  * One CoA for all HoAs by MnIfPreference, carrier, global non-tentative
    address and default router, from rtnetlink events; at-home deregistration.
  * BU/BA as real Mobility Header messages (raw IPv6 socket, protocol 135),
    backoff 1.5 s (first registration) / 1.0 s (re-registration) doubling to
    32 s, refresh at 95 % of the granted lifetime, BA 135 resynchronisation.
  * Signals: SIGTERM/SIGINT exit 0; SIGHUP re-reads the Interface list, which
    only interfaces that appear afterwards use.

Simplified or invented (umip.md is silent or the kernel cannot):
  * The HoA travels in an RFC 5096 experimental mobility option (type 18), not
    in a Home Address destination option; the BA goes to the CoA without a type
    2 routing header (see :mod:`umipdouble.mh`). No tunnel, no HoA on the home
    interface, no routes/metrics, no XFRM/IPsec: the double changes nothing in
    the kernel.
  * No daemonising (DebugLevel 0 stays in the foreground), no syslog; logs go
    to stderr (DebugLevel 1: moves and BAs, 2: every BU) or DebugLogFile.
  * No router solicitation/RA processing, no DHAAD (``HomeAgentAddress ::`` is
    skipped), no route optimisation (``rr``, ``nonce``, MN ``bc`` are empty), no
    mobile prefix solicitation (the ``mps`` line is always empty), no NEMO.
  * Texts umip.md does not give: ``invalid preference``, the ``stats`` counter
    names, the ``bc add`` usage line, the HA ``mpa - / 0 retry -2`` filler, the
    message for an unreadable ``-c`` file; fancy mode decorates the ``Home
    address`` line of ``bul`` (bold underline) as it does ``hoa`` in ``bc``.
  * ``hal`` and ``pl`` are empty; ``thread`` prints ``bu: N`` with N = BUs in
    flight.
"""

__all__ = ["main"]


def main(argv=None) -> int:
    from .daemon import main as _main
    return _main(argv)
