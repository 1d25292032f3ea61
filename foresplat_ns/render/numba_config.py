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


def kernel_threads() -> int:
    """The threads `launch` runs a kernel on: as many as torch uses (the presets set OMP_NUM_THREADS=1 for
    both), at most numba's pool."""
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def launch(kernel: Callable, *args, chunk: int) -> None:
    """Run a kernel on `kernel_threads()` threads, its prange cut into `chunk` iterations at a time.

    The OpenMP layer deals those chunks out statically, one contiguous run per thread: a kernel whose
    iterations differ in cost along the loop spreads them with `interleaved`."""
    threads = torch.get_num_threads()
    with _LAUNCH, numba.parallel_chunksize(chunk):
        numba.set_num_threads(kernel_threads())
        kernel(*args)
    if torch.get_num_threads() != threads:  # the OpenMP layer's start set the shared runtime to all CPUs
        torch.set_num_threads(threads)


def runs_per_thread(items: int, threads: int, group: int) -> int:
    """Iterations per thread of `interleaved`'s loop: range(runs_per_thread(...) * threads) covers every item."""
    groups = -(-items // group)
    return -(-groups // threads) * group


@numba.njit(cache=True, nogil=True, inline="always")
def interleaved(i, per_thread, threads, group):
    """The item that iteration i of range(per_thread * threads) works on (past the last item: skip it).

    The static split gives the t-th thread iterations [t * per_thread, (t + 1) * per_thread), and this maps
    them to groups t, t + threads, t + 2 threads, ... of `group` consecutive items. Items whose cost varies
    smoothly along the loop (a block's list length down the image) are then shared evenly, while a thread
    still walks neighbouring items in turn (they share Gaussians in cache). In plain order the top half of
    an image went to one thread and the bottom half to the other."""
    thread, k = i // per_thread, i % per_thread
    return ((k // group) * threads + thread) * group + k % group


GAUSSIANS_PER_TASK = 1024
"""Gaussians a thread takes at a time in the per-Gaussian kernels (their costs are alike; smaller tasks would
cost their scheduling)."""


@numba.njit(cache=True, nogil=True, inline="always")
def tasks(items, per_task):
    """How many tasks of `per_task` items cover `items`: a kernel's prange over them, `task_items` inside."""
    return -(-items // per_task)


@numba.njit(cache=True, nogil=True, inline="always")
def task_items(task, items, per_task):
    """The items of task `task`, `items` being cut into tasks of `per_task`: a scratch array allocated per
    task serves them in turn (one per item cost fresh pages every call)."""
    return range(task * per_task, min(items, (task + 1) * per_task))


def kernel_array(tensor: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """`tensor` as the contiguous numpy array of `dtype` a kernel reads (no copy where it already is one)."""
    return tensor.detach().to(dtype).contiguous().numpy()


def kernels_by_dtype(compile: Callable) -> Callable:
    """`compile(numpy float dtype, *constants)`, memoised per (torch dtype, *constants): each set of kernels is
    built (and found in numba's cache) once per process."""

    @functools.lru_cache(maxsize=None)
    def kernels(dtype: torch.dtype, *constants):
        return compile({torch.float32: np.float32, torch.float64: np.float64}[dtype], *constants)

    return kernels
