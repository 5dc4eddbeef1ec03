"""/proc/cpuinfo is read once per question, from the first processor's block."""

from __future__ import annotations

from pathlib import Path

import pytest

import attnlab.cpuinfo
from attnlab.cpuinfo import cpu_fields, cpu_flags, cpu_vendor

X86 = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2\n\n"
    "processor\t: 1\nvendor_id\t: GenuineIntel\nflags\t\t: fpu amx_bf16\n\n"
)
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd sve\n\nHardware\t: test\n"


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def write(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(attnlab.cpuinfo, "CPUINFO", path)

    return write


def test_an_x86_cpu_is_described_by_its_first_processor(cpuinfo) -> None:
    cpuinfo(X86)
    assert cpu_vendor() == "AuthenticAMD"
    assert cpu_flags() == {"fpu", "sse2", "avx2"}


def test_an_arm_cpu_gives_its_features_and_no_vendor(cpuinfo) -> None:
    cpuinfo(ARM)
    assert cpu_flags() == {"fp", "asimd", "sve"}
    assert cpu_vendor() == ""


def test_the_features_of_a_32_bit_arm_kernel_are_found_after_the_processors(cpuinfo) -> None:
    cpuinfo("processor\t: 0\nBogoMIPS\t: 38.40\n\nprocessor\t: 1\n\nFeatures\t: half vfpv4 neon\n")
    assert cpu_flags() == {"half", "vfpv4", "neon"}


def test_no_cpuinfo_means_nothing_known(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attnlab.cpuinfo, "CPUINFO", tmp_path / "missing")
    assert cpu_fields() == {} and cpu_flags() == set() and cpu_vendor() == ""
