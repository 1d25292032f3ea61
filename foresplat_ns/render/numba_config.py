"""How numba compiles and runs our CPU kernels. Imported by the package before any kernel compiles: numba
reads these settings once, when its CPU target starts.

- Threads: the OpenMP layer, so the kernels run on torch's own OpenMP threads (the same libgomp). With a
  pool of its own (workqueue), torch's threads spin after each parallel op while numba's wait for a core:
  a 128² step with 2 threads on 2 cores took 33-37 ms that way, 28-29 ms on the shared pool.
  `launch` runs every kernel and undoes what starting the pool does to torch's thread count. Without
  OpenMP: workqueue.
- Vector width: on AVX-512 CPUs LLVM's tuning for Intel's server cores (Skylake-SP to Emerald Rapids)
  prefers 256-bit vectors ('prefer-256-bit'), against the clock drop 512-bit code once cost. The
  compositor's loops run over a block's 64 pixels; compiled for 512-bit vectors its backward took half
  the time and its forward 0.7x on this machine (`foresplat-bench raster`, docs/RESULTS.md). So numba
  compiles for the host's own features without that preference.

NUMBA_THREADING_LAYER, NUMBA_CPU_NAME and NUMBA_CPU_FEATURES, where set, win over both.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Callable

import llvmlite.binding
import numba
import numpy as np
import torch

WIDE_VECTORS = "-prefer-256-bit"
VECTORISING_FASTMATH = {"contract", "reassoc"}
"""The kernels' fastmath flags: fused multiply-adds and reordered sums along their inner loops (a block's
pixels, an image row), what lets LLVM vectorise those loops. No other fast-math licence is taken."""

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
    numba.config.THREADING_LAYER = "default"


def host_features_for_wide_vectors() -> str | None:
    """The host's LLVM feature string without the 256-bit preference, or None where the CPU has no AVX-512."""
    features = llvmlite.binding.get_host_cpu_features()
    return features.flatten() + "," + WIDE_VECTORS if features.get("avx512f") else None


if not {"NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"} & set(os.environ):
    numba.config.CPU_FEATURES = host_features_for_wide_vectors()


_LAUNCH = threading.Lock()
"""One parallel kernel at a time (the workqueue layer allows no more): renders from several Python
threads (e.g. nerfstudio's viewer beside training) take turns."""


def launch(kernel: Callable, *args, chunk: int) -> None:
    """Run a kernel on as many threads as torch uses (the presets set OMP_NUM_THREADS=1 for both), its
    prange handing out `chunk` iterations at a time."""
    threads = torch.get_num_threads()
    with _LAUNCH, numba.parallel_chunksize(chunk):
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        kernel(*args)
    if torch.get_num_threads() != threads:  # the OpenMP layer's start set the shared runtime to all CPUs
        torch.set_num_threads(threads)


def kernels_by_dtype(compile: Callable) -> Callable:
    """`compile(numpy float dtype, *constants)`, memoised per (torch dtype, *constants): each set of kernels is
    built (and found in numba's cache) once per process."""

    @functools.lru_cache(maxsize=None)
    def kernels(dtype: torch.dtype, *constants):
        return compile({torch.float32: np.float32, torch.float64: np.float64}[dtype], *constants)

    return kernels
