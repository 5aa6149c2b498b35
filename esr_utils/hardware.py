"""The one place that probes devices and picks dtypes."""

from __future__ import annotations

import time

import torch

__all__ = ["resolve_device", "resolve_dtype", "matmul_peak_gflops"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> str:
    """Turn "auto" into the best available device; check explicit requests."""
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device not in {"cpu", "cuda", "mps"} and not device.startswith("cuda:"):
        raise ValueError(f"DEVICE must be 'auto', 'cpu', 'cuda' or 'mps', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"DEVICE={device!r} but torch sees no CUDA device; use DEVICE='cpu'")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """Turn "auto" into float32 on CPU and bfloat16 on accelerators."""
    if dtype == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 matmul rate of this machine (GFLOP/s): the denominator of model FLOPs
    utilisation."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm up the BLAS threads
    best = 0.0
    for _ in range(repeats):
        began = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - began) / 1e9)
    return best
