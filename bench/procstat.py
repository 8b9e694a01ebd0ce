#!/usr/bin/env python3
"""Per-proxy CPU time and memory, read from /proc.

A proxy is identified by the PID run.sh started; its cost is that process plus
all its descendants (nginx's worker under its master, for instance). Threads
need no special care: /proc/PID/stat already sums all threads of a process.

    procstat.py cpu PID   -> CPU time of the tree in microseconds: "total user"
                             (total = utime+stime; user = utime alone)
    procstat.py rss PID   -> VmRSS of the tree, in KiB
    procstat.py pids PID  -> the PIDs of the tree
    procstat.py threads PID -> CPU time (utime+stime, microseconds) of PID's
                             threads by name, a line "NAME US" each (threads
                             of the same name summed)

Also imported by idle_conns.py so both use one definition of "the proxy".
"""
import os
import sys

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name.

    The name (field 2) is in parentheses and may hold spaces or ')', so split
    after the last ')'. Returned list index 0 is field 3 (state).
    """
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def tree(root):
    """root and all its descendants that are alive now."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(name)[1])  # field 4
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [int(root)]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_us(root):
    """(utime+stime, utime) of the tree, in microseconds."""
    user = system = 0
    for pid in tree(root):
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        user += int(f[11])    # field 14, utime
        system += int(f[12])  # field 15, stime
    return ((user + system) * 1_000_000 // CLK_TCK, user * 1_000_000 // CLK_TCK)


def threads_us(pid):
    """{thread name: utime+stime in microseconds} of the threads of one process."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            fields = _stat_fields(f"{pid}/task/{tid}")
        except OSError:
            continue  # exited while we looked
        ticks = int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
        out[name] = out.get(name, 0) + ticks * 1_000_000 // CLK_TCK
    return out


def rss_kib(root):
    total = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def main():
    what, pid = sys.argv[1], int(sys.argv[2])
    if what == "cpu":
        print(*cpu_us(pid))
    elif what == "rss":
        print(rss_kib(pid))
    elif what == "pids":
        print(" ".join(map(str, tree(pid))))
    elif what == "threads":
        for name, us in sorted(threads_us(pid).items()):
            print(name.replace(" ", "_"), us)
    else:
        sys.exit(f"usage: {sys.argv[0]} cpu|rss|pids|threads PID")


if __name__ == "__main__":
    main()
