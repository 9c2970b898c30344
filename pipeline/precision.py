"""Which training precision is fast on the device at hand, and why.

bf16 autocast pays where the hardware computes bf16: NVIDIA GPUs from Ampere on, and
CPUs with AVX-512 BF16 or AMX. On a CPU with only AVX2 (common cloud VMs) torch emulates
bf16 and a step runs many times slower than in fp32: a benchmark's compute part alone
ran past 9 minutes there, against 73 s on a CPU with AVX-512 BF16 (issue 17).

Except 3D on a CPU: on a 2-core Xeon with AVX-512 BF16 and AMX, torch 2.13's bf16
``conv3d`` (oneDNN) returned garbage at random with two threads, up to 1e34 and NaN, on
the same input in eval mode (``layer4.0.conv1`` of the demo's ResNet-18, 4 in 40
forward passes; none with one thread), so the demo's training went NaN in its second
epoch. 2D convolutions gave identical outputs in every pass. A 3D model on a CPU trains
in fp32 under ``auto`` (measured there: bf16 1.34x faster per 3D step, 1.79x per 2D step).
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


def fast_precision(device_type: str, *, spatial_dims: int) -> tuple[str, str]:
    """The Lightning precision to train with on ``device_type``, and the reason in words.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
        spatial_dims: 2 or 3, the model's convolutions (3D on a CPU: fp32, see the module docstring).

    Returns:
        ``("bf16-mixed" | "16-mixed" | "32", reason)``.
    """
    if device_type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"{torch.cuda.get_device_name(0)} computes bf16 natively"
        return "16-mixed", f"{torch.cuda.get_device_name(0)} has no bf16: fp16 with loss scaling"
    if cpu_has_native_bf16() and spatial_dims == 3:
        return "32", (f"this CPU ({cpu_capability()}) computes bf16 natively, but torch's bf16 3D convolution on a "
                      "CPU returned non-finite values at random with more than one thread (pipeline/precision.py)")
    if cpu_has_native_bf16():
        return "bf16-mixed", f"this CPU ({cpu_capability()}) computes bf16 natively (AVX-512 BF16 or AMX)"
    return "32", f"this CPU ({cpu_capability()}) has no native bf16, where bf16 autocast is emulated and slower than fp32"


def resolve_precision(setting: str, accelerator: str, *, spatial_dims: int) -> tuple[str, str]:
    """``train.precision`` as Lightning takes it: ``auto`` becomes :func:`fast_precision`.

    Args:
        setting: ``auto``, ``32``, ``bf16-mixed`` or ``16-mixed``.
        accelerator: ``train.accelerator``; ``auto`` trains on CUDA when there is one.
        spatial_dims: 2 or 3, the model's convolutions.

    Returns:
        The precision and the reason, for the stage to print.
    """
    if setting != "auto":
        return setting, "set by train.precision"
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return fast_precision("cuda" if cuda else "cpu", spatial_dims=spatial_dims)


def conv_dims(network: torch.nn.Module) -> int:
    """3 when ``network`` has a 3D convolution (5-D weights), else 2."""
    return 3 if any(p.ndim == 5 for p in network.parameters()) else 2
