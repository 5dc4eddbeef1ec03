"""What /proc/cpuinfo says about this CPU, read without importing torch (a config resolves,
and the CLI answers, before torch loads)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_fields() -> dict[str, str]:
    """The first processor's fields (``vendor_id``, ``flags``, ...) in /proc/cpuinfo; empty
    where there is no such file (not Linux) or it cannot be read."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block has ended
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_vendor() -> str:
    """``vendor_id``, e.g. ``"AuthenticAMD"`` or ``"GenuineIntel"``; ``""`` where unknown."""
    return cpu_fields().get("vendor_id", "")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``); empty where unknown."""
    fields = cpu_fields()
    return set((fields.get("flags") or fields.get("Features") or "").split())
