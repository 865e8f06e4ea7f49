"""The throughput floor for benchmarks/engine_throughput.py: the smallest relay that does the engine's data work.

One blocking thread per direction: ``os.read`` from the TUN, seal with the same
AEAD frames (:mod:`mhgui.engine.dataplane`), ``sendto``; and back: ``recv``,
open, ``os.write``. Same TUN MTU as the engine. No signalling, no policy, no
checks beyond the AEAD and the replay window: what the engine's data path
cannot go below. Run in the lab's namespaces (root)::

    python _relay.py mn TUN HOA COA HA_ADDR PORT CN_PREFIX MTU KEYHEX
    python _relay.py ha TUN HA_HOME HOME_PREFIX PORT MTU KEYHEX
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mhgui.engine.dataplane import Receiver, Sender  # noqa: E402
from mhgui.engine.tun import open_tun  # noqa: E402


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def main() -> None:
    role = sys.argv[1]
    if role == "mn":
        tun_name, hoa, coa, ha, port, cn_prefix, mtu, keyhex = sys.argv[2:]
    else:
        tun_name, ha_home, home_prefix, port, mtu, keyhex = sys.argv[2:]
    key = bytes.fromhex(keyhex)
    k_up, k_down = key[:32], key[32:]
    if role == "mn":
        tun = open_tun(tun_name, mtu=int(mtu), addresses=((hoa, 128),))
        run("ip", "-6", "route", "replace", cn_prefix, "dev", tun_name, "src", hoa)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.bind((coa, 0))
        sock.connect((ha, int(port)))
        sender, receiver = Sender(k_up, 2), Receiver(k_down, 1)
    else:
        tun = open_tun(tun_name, mtu=int(mtu), addresses=((ha_home, 128),), routes=(home_prefix,))
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.bind(("::", int(port)))
        sender, receiver = Sender(k_down, 1), Receiver(k_up, 2)
    os.set_blocking(tun.fd, True)
    peer: list = []

    def up() -> None:  # TUN -> UDP
        while True:
            packet = os.read(tun.fd, 65535)
            frame = sender.seal(packet)
            try:
                if role == "mn":
                    sock.send(frame)
                elif peer:
                    sock.sendto(frame, peer[0])
            except OSError:
                pass

    def down() -> None:  # UDP -> TUN
        while True:
            data, addr = sock.recvfrom(65535)
            opened = receiver.open(data)
            if opened is None:
                continue
            if role == "ha" and not peer:
                peer.append(addr)
            try:
                os.write(tun.fd, opened[1])
            except OSError:
                pass

    for fn in (up, down):
        threading.Thread(target=fn, daemon=True).start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
