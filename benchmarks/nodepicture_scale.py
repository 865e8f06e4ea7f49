"""The Node tab's picture (issue 15.2) with 5,000 care-of addresses: what each refresh costs.

The Node page builds the picture again at every refresh of the window (about once a second while it is
shown) and lays it out only when it changed; the build is the part that grows with the addresses. Printed:

- floor: a bare Python loop over the same addresses (reading each one's value and ifindex), measured in the
  same run: what touching every address costs at the least;
- build: :func:`mhgui.core.nodepicture.build_picture` for the 3 interfaces, 3 HoAs, 10 CoAs node of the
  tests plus N more CoAs (median of several runs), and its ratio to the floor;
- layout: :func:`mhgui.core.nodepicture.layout` of that picture at the window's default page size.

No root, no Qt. Usage: python benchmarks/nodepicture_scale.py [--short] [N]
"""

from __future__ import annotations

import ipaddress
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from mhgui.core.analysis import analyse  # noqa: E402
from mhgui.core.model import Address  # noqa: E402
from mhgui.core.nodepicture import build_picture, layout  # noqa: E402
from test_nodepicture import FLOWS, UPLINKS, mcoa_bindings, node_3x3x10  # noqa: E402


def median_ms(fn, runs: int) -> float:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--short"]
    short = "--short" in sys.argv or os.environ.get("MHGUI_BENCH_SHORT") == "1"
    n = int(args[0]) if args else 5000
    runs = 5 if short else 25
    st = node_3x3x10()
    base = ipaddress.IPv6Address("2001:db8:1::")  # sorts before the bound CoAs: the column must keep them
    for k in range(n):
        a = Address(2 + k % 3, str(base + k), 64)
        st.addresses[a.key] = a
    an = analyse(st, 0.0)
    bindings = mcoa_bindings()
    kw = dict(uplinks=UPLINKS, flow_bindings=FLOWS, daemon="engine", connected=True)

    def floor() -> None:
        s = 0
        for a in st.addresses.values():
            s += a.ifindex + len(a.address)

    pic = build_picture(st, an, bindings, **kw)
    f = median_ms(floor, runs)
    b = median_ms(lambda: build_picture(st, an, bindings, **kw), runs)
    lay = median_ms(lambda: layout(pic, 1330, 170), runs)
    print(f"addresses: {len(st.addresses)}, CoAs usable: {sum(len(v) for v in an.coa_keys.values())}, "
          f"nodes drawn: {len(pic.nodes)}")
    print(f"floor (touch every address): {f:.2f} ms")
    print(f"build_picture: {b:.2f} ms  ({b / f:.1f} x floor)")
    print(f"layout: {lay:.2f} ms  ({lay / f:.2f} x floor)")


if __name__ == "__main__":
    main()
