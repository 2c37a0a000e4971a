"""What this machine's processor is and can do (Linux's /proc/cpuinfo; neutral answers elsewhere)."""

from __future__ import annotations

import platform
from pathlib import Path


def _cpuinfo(field: str) -> str | None:
    """The first value of ``field`` in /proc/cpuinfo, None where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The processor's model name: training times only compare on the same kind of CPU."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The processor's feature flags (empty where unknown, which means float32)."""
    return set((_cpuinfo("flags") or "").split())


def native_bfloat16() -> list[str]:
    """The flags by which this CPU computes bfloat16 natively (AMX, AVX512-BF16); empty: emulated."""
    return sorted(cpu_flags() & {"amx_bf16", "avx512_bf16"})
