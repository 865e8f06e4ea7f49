"""A child process that holds many TCP (and UDP) sockets, for tests and benchmarks of the flows view.

Run as ``python -c OPENER N`` (in a namespace): it opens N loopback TCP connections
(2N sockets), prints ``ready``, then obeys ``close K`` (resets K connections scattered
through the table), ``open K`` and ``udp K`` lines from stdin, printing ``ok`` after each.
One process holds at most what its descriptor limit allows (``RLIMIT_NOFILE``'s hard
limit, which only a privileged process may raise): :func:`per_process` splits more
connections over several openers.
"""

import resource


def per_process(connections: int) -> list[int]:
    """How many connections each opener takes so that each stays under the hard descriptor limit
    (two descriptors a connection, 500 spare)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    each = max(1, ((hard if hard != resource.RLIM_INFINITY else 1 << 20) - 600) // 2)
    out = []
    while connections > 0:
        out.append(min(each, connections))
        connections -= out[-1]
    return out or [0]

OPENER = r"""
import resource, socket, struct, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 2 * n + 500
resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, want), hard), hard))
lst = {}
for fam, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
    s = socket.socket(fam); s.bind((host, 0)); s.listen(4096); lst[fam] = (s, host, s.getsockname()[1])
pairs = []
def open_one(i):
    s, host, port = lst[socket.AF_INET6 if i % 2 == 0 else socket.AF_INET]
    c = socket.socket(s.family); c.connect((host, port)); a, _ = s.accept(); pairs.append((c, a))
def close_one(k):
    for x in pairs.pop(k):
        x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: no TIME-WAIT
        x.close()
for i in range(n):
    open_one(i)
udp = []
print("ready", flush=True)
for line in sys.stdin:
    cmd, k = line.split()
    k = int(k)
    if cmd == "close":
        for j in range(k):
            close_one((j * 997) % len(pairs))  # scattered through the table
    elif cmd == "open":
        for j in range(k):
            open_one(j)
    elif cmd == "udp":
        for j in range(k):
            u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::1", 0)); udp.append(u)
    print("ok", flush=True)
"""
