"""Which training precision is fast on the device at hand, and why.

bf16 autocast pays where the hardware computes bf16: NVIDIA GPUs from Ampere on, and
CPUs with AVX-512 BF16 or AMX. On a CPU with only AVX2 (common cloud VMs) torch emulates
bf16 and a step runs many times slower than in fp32: a benchmark's compute part alone
ran past 9 minutes there, against 73 s on a CPU with AVX-512 BF16 (issue 17).
"""

from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX tiles)."""
    # Private helpers, present in the pinned torch; absent ones count as "no".
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def cpu_capability() -> str:
    """The SIMD level torch dispatches to on this CPU (``AVX2``, ``AVX512``, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def fast_precision(device_type: str) -> tuple[str, str]:
    """The Lightning precision to train with on ``device_type``, and the reason in words.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.

    Returns:
        ``("bf16-mixed" | "16-mixed" | "32", reason)``.
    """
    if device_type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"{torch.cuda.get_device_name(0)} computes bf16 natively"
        return "16-mixed", f"{torch.cuda.get_device_name(0)} has no bf16: fp16 with loss scaling"
    if cpu_has_native_bf16():
        return "bf16-mixed", f"this CPU ({cpu_capability()}) computes bf16 natively (AVX-512 BF16 or AMX)"
    return "32", f"this CPU ({cpu_capability()}) has no native bf16, where bf16 autocast is emulated and slower than fp32"


def resolve_precision(setting: str, accelerator: str) -> tuple[str, str]:
    """``train.precision`` as Lightning takes it: ``auto`` becomes :func:`fast_precision`.

    Args:
        setting: ``auto``, ``32``, ``bf16-mixed`` or ``16-mixed``.
        accelerator: ``train.accelerator``; ``auto`` trains on CUDA when there is one.

    Returns:
        The precision and the reason, for the stage to print.
    """
    if setting != "auto":
        return setting, "set by train.precision"
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return fast_precision("cuda" if cuda else "cpu")
