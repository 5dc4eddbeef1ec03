"""What /proc/cpuinfo says about this CPU, read without importing torch (a config resolves,
and the CLI answers, before torch loads)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_fields() -> dict[str, str]:
    """The first processor's fields (``vendor_id``, ``flags``, ...) in /proc/cpuinfo; empty
    where there is no such file (not Linux) or it cannot be read. It reads no further than that
    block (the file runs to a megabyte on a large host), unless the block has no feature flags:
    32-bit Arm kernels list ``Features`` once, after the processors."""
    fields: dict[str, str] = {}
    try:
        with CPUINFO.open(errors="replace") as lines:
            for line in lines:
                key, colon, value = line.partition(":")
                if colon:
                    fields.setdefault(key.strip(), value.strip())
                elif not line.strip() and ("flags" in fields or "Features" in fields):
                    break
    except OSError:
        return {}
    return fields


def cpu_vendor() -> str:
    """``vendor_id``, e.g. ``"AuthenticAMD"`` or ``"GenuineIntel"``; ``""`` where unknown."""
    return cpu_fields().get("vendor_id", "")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``); empty where unknown."""
    fields = cpu_fields()
    return set((fields.get("flags") or fields.get("Features") or "").split())
