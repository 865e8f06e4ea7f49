"""What the connected mobility daemon can do (filled by a daemon driver).

Used to tell, beside the goals the draft says a configuration allows, which
ones the node can reach today with its daemon.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DaemonCapabilities:
    """Capabilities of a mobility daemon.

    - ``connected``: a daemon answers at all (False: none of the MIPv6 goals is available).
    - ``per_hoa_choice``: each HoA can use its own CoA/interface (draft 7.1, 7.2);
      mainline UMIP picks one interface for every HoA.
    - ``multiple_coas``: several CoAs per HoA with BIDs (RFC 5648; draft 6.2.1).
    - ``flow_bindings``: per-flow binding at the HA (RFC 6089; draft 7.3).
    - ``runtime_rebind``: bindings change without a daemon restart.
    - ``failover``: the daemon re-binds its HoAs through another interface by itself when
      the one in use fails (draft 7.3, first bullet; UMIP does, by ``MnIfPreference``).
    - ``hoa_as_coa``: a HoA may be registered as the CoA of another HoA (draft 6.2.2).
    - ``home_and_foreign``: home binding while away on other links (RFC 5648 section 5.6; draft 6.2.3).
    - ``ipv4_coas``: IPv4 care-of addresses (RFC 5555), also behind NAT44.
    """

    name: str = "none"
    connected: bool = False
    per_hoa_choice: bool = False
    multiple_coas: bool = False
    flow_bindings: bool = False
    runtime_rebind: bool = False
    failover: bool = False
    hoa_as_coa: bool = False
    home_and_foreign: bool = False
    ipv4_coas: bool = False


#: No daemon connected.
NO_DAEMON = DaemonCapabilities()
