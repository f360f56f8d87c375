#!/usr/bin/env python3
"""Timing helper of vm_apply_vs_qemu.sh (one clock for both sides, no interpreter start counted).

  vm_timer.py apply CMD...           runs CMD, stamps each output line; prints JSON
                                     {"seconds", "rc", "lines": [[t, line], ...]}
  vm_timer.py direct ARGV_FILE QMP   starts the NUL-separated argv of ARGV_FILE, asks its QMP
                                     socket every 20 ms (connect, qmp_capabilities, query-status,
                                     as the plugin does) until it says "running"; prints JSON
                                     {"seconds", "pid"}, then stops that QEMU (SIGTERM, by PID)
  vm_timer.py status QMP             prints QMP's query-status answer ("running")
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time


def qmp_status(path, timeout=2.0):
    """QMP's status string, or None when the socket does not answer yet."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        f = s.makefile("rwb", buffering=0)
        f.readline()  # greeting
        for cmd in ("qmp_capabilities", "query-status"):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            while True:
                reply = json.loads(f.readline() or b"{}")
                if "return" in reply or "error" in reply or not reply:
                    break  # events in between are skipped
        return reply.get("return", {}).get("status")
    except (OSError, ValueError):
        return None
    finally:
        s.close()


def main():
    mode = sys.argv[1]
    if mode == "apply":
        t0 = time.monotonic()
        p = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = [[round(time.monotonic() - t0, 4), l.decode(errors="replace").rstrip()]
                 for l in iter(p.stdout.readline, b"")]
        rc = p.wait()
        print(json.dumps({"seconds": time.monotonic() - t0, "rc": rc, "lines": lines}))
    elif mode == "direct":
        with open(sys.argv[2], "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        qmp = sys.argv[3]
        deadline = time.monotonic() + 60
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            while True:
                if qmp_status(qmp) == "running":
                    t = time.monotonic() - t0
                    break
                if p.poll() is not None:
                    sys.exit("qemu exited with %d before running" % p.returncode)
                if time.monotonic() > deadline:
                    sys.exit("qemu not running after 60 s")
                time.sleep(0.02)  # the interval between two questions, as the plugin's
            print(json.dumps({"seconds": t, "pid": p.pid}))
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
            try:
                os.unlink(qmp)
            except OSError:
                pass
    elif mode == "status":
        print(qmp_status(sys.argv[2]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
