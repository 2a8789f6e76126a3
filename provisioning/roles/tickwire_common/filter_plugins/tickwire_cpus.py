"""CPU lists the kernel's way, for the tickwire roles (the same forms /sys and /proc use):

    "0-2,5" | tickwire_cpus       -> [0, 1, 2, 5]
    [0, 1, 2, 5] | tickwire_cpulist -> "0-2,5"
    [0, 1] | tickwire_cpumask     -> "3"      (hex, as /sys/devices/virtual/workqueue/cpumask takes it;
                                               [0, 40] -> "100,00000001")

Kept here rather than imported from tickwire's tuning package so that the roles need
nothing on the controller but Ansible.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def tickwire_cpus(text):
    out = set()
    for part in str(text if text is not None else "").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            out.update(range(int(first), int(last or first) + 1))
        except ValueError as exc:
            raise AnsibleFilterError(f"CPU list {text!r}: {part!r} is not a CPU or a range (write e.g. 3 or 2-3,5)") \
                from exc
    return sorted(out)


def tickwire_cpulist(cpus):
    s = sorted({int(c) for c in cpus})
    runs, i = [], 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[j] + 1:
            j += 1
        runs.append(f"{s[i]}-{s[j]}" if j > i else str(s[i]))
        i = j + 1
    return ",".join(runs)


def tickwire_cpumask(cpus):
    """Hex in 32-bit groups, most significant first: the kernel's bitmap parser refuses more than
    8 digits without a comma (a box with more than 32 CPUs)."""
    value = sum(1 << int(c) for c in set(cpus))
    groups = []
    while True:
        groups.append(value & 0xFFFFFFFF)
        value >>= 32
        if not value:
            break
    groups.reverse()
    return ",".join([f"{groups[0]:x}"] + [f"{g:08x}" for g in groups[1:]])


class FilterModule:
    def filters(self):
        return {"tickwire_cpus": tickwire_cpus, "tickwire_cpulist": tickwire_cpulist,
                "tickwire_cpumask": tickwire_cpumask}
