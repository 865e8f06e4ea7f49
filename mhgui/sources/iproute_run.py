"""Running iproute2's ``ip`` for :mod:`mhgui.sources.iproute_json`, light enough to start before a program's
own imports (``mhctl status`` starts them first: they run while Python loads the rest, issue 14).

:class:`IpRun` starts ``ip -d -j addr show`` and ``ip -6 -j route show table main default`` side by side,
their output going to memory files (``memfd_create``: ip's many small writes wake nobody, as a pipe's
would), and :meth:`IpRun.outputs` waits on their pidfds (no polling loop); where the kernel has no memfd
or pidfd (Linux < 5.3), pipes and ``communicate``. Imports nothing of mhgui.
"""

from __future__ import annotations

import os
import subprocess
import time

__all__ = ["COMMANDS", "IP_TIMEOUT", "IpJsonError", "IpRun"]

#: seconds each ``ip`` may take
IP_TIMEOUT = 10.0
#: the arguments of the two ``ip`` commands: links with ``linkinfo`` and every address; the IPv6 default routes
COMMANDS = (("-d", "-j", "addr", "show"), ("-6", "-j", "route", "show", "table", "main", "default"))


class IpJsonError(RuntimeError):
    """``ip`` could not give the tables: missing, failed, timed out, or printed something else (the message
    says which, naming the command)."""


def _spawn(args: list[str], out, err) -> subprocess.Popen:
    try:
        return subprocess.Popen(["ip", *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    except FileNotFoundError:
        raise IpJsonError("`ip` (iproute2) is not installed or not on PATH") from None
    except OSError as e:
        raise IpJsonError(f"cannot run `ip`: {e.strerror or e}") from None


def _failed(what: str, code: int, err: bytes) -> IpJsonError:
    why = err.decode("utf-8", "replace").strip().splitlines()
    return IpJsonError(f"`{what}` failed (exit {code}){': ' + why[-1] if why else ''}")


class _MemoryRun:
    """The commands started side by side, their output into memory files, their ends seen through pidfds.
    Raises ``OSError``/``AttributeError`` where memfd or pidfd are missing (nothing is left running then),
    :class:`IpJsonError` when ``ip`` cannot be started."""

    def __init__(self, commands: list[list[str]]) -> None:
        self._runs: list[list] = []  # [what, process, stdout fd, stderr fd, pidfd]
        try:
            for args in commands:
                run = ["ip " + " ".join(args), None, os.memfd_create("ip-out", os.MFD_CLOEXEC), None, None]
                self._runs.append(run)
                run[3] = os.memfd_create("ip-err", os.MFD_CLOEXEC)
                run[1] = _spawn(args, run[2], run[3])
                run[4] = os.pidfd_open(run[1].pid)
        except BaseException:
            self.close()
            raise

    def outputs(self, timeout: float) -> list[bytes]:
        import select

        try:
            poller = select.poll()
            waiting = {}
            for run in self._runs:
                if run[1].poll() is None:
                    waiting[run[4]] = run
                    poller.register(run[4], select.POLLIN)
            deadline = time.monotonic() + timeout
            while waiting and time.monotonic() < deadline:
                for fd, _ev in poller.poll(max(0, int((deadline - time.monotonic()) * 1000)) + 1):
                    waiting.pop(fd)[1].wait()
                    poller.unregister(fd)
            outputs = []
            for what, p, out, err, _pidfd in self._runs:
                if p.returncode is None:
                    raise IpJsonError(f"`{what}` gave no answer within {timeout:g} s")
                if p.returncode != 0:
                    raise _failed(what, p.returncode, os.pread(err, 4096, 0))
                outputs.append(os.pread(out, os.fstat(out).st_size, 0))
            return outputs
        finally:
            self.close()

    def close(self) -> None:
        runs, self._runs = self._runs, []
        for _what, p, out, err, pidfd in runs:
            if p is not None and p.returncode is None:
                p.kill()
                p.wait()
            for fd in (out, err, pidfd):
                if fd is not None:
                    os.close(fd)


def _run_with_pipes(commands: list[list[str]], timeout: float) -> list[bytes]:
    """:class:`_MemoryRun` for kernels without memfd or pidfd: pipes and ``communicate``."""
    procs: list[tuple[str, subprocess.Popen]] = []
    try:
        for args in commands:
            procs.append(("ip " + " ".join(args), _spawn(args, subprocess.PIPE, subprocess.PIPE)))
        outputs = []
        for what, p in procs:
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise IpJsonError(f"`{what}` gave no answer within {timeout:g} s") from None
            if p.returncode != 0:
                raise _failed(what, p.returncode, err)
            outputs.append(out)
        return outputs
    finally:
        for _what, p in procs:
            if p.returncode is None:
                p.kill()
                p.communicate()


class IpRun:
    """The :data:`COMMANDS`, started now; :meth:`outputs` gives their output. Raises :class:`IpJsonError`
    when ``ip`` cannot be started (missing from PATH). Not thread-safe; call :meth:`outputs` once."""

    def __init__(self, commands=COMMANDS) -> None:
        self._commands = [list(c) for c in commands]
        self._memory = None
        try:
            self._memory = _MemoryRun(self._commands)
        except (AttributeError, OSError):  # no memfd_create or pidfd_open here: pipes, in outputs()
            self._memory = None

    def outputs(self, timeout: float = IP_TIMEOUT) -> list[bytes]:
        """Each command's standard output, in order; :class:`IpJsonError` when one failed or took longer
        than ``timeout`` s (counted from this call)."""
        if self._memory is None:
            return _run_with_pipes(self._commands, timeout)
        return self._memory.outputs(timeout)

    def close(self) -> None:
        """End the processes if still running (their output unread)."""
        if self._memory is not None:
            self._memory.close()
