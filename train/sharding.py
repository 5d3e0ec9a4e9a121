"""Devices, hosts and the one-axis ``data`` mesh.

Data parallelism is ``jax.jit`` + ``NamedSharding``, not ``pmap``. The mapping from the pmap idiom:

====================================================  =====================================================
pmap                                                  jit + sharding (what the trainer does)
====================================================  =====================================================
``jax.pmap(step, axis_name="batch")``                 ``jax.jit(step, in_shardings=..., out_shardings=...)``
per-device batch ``(n_dev, B/n_dev, ...)``            global batch ``(B, ...)`` with ``P("data")``
``jax_utils.replicate(state)``                        ``jax.device_put(state, NamedSharding(mesh, P()))``
``lax.pmean(grads, "batch")``                         nothing: the loss is a mean over the global batch, so
                                                      XLA inserts the all-reduce of the gradient itself
``lax.pmean(metrics, "batch")``                       nothing: metrics are global means already
``jax_utils.unreplicate(state)``                      ``jax.device_get(state)`` (it is replicated)
``shard_prefetch`` / ``device_put_sharded``           ``jax.make_array_from_process_local_data``
====================================================  =====================================================

Because the step is written on the global batch, the same program runs on 1 CPU, N fake CPU
devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``), GPUs, TPU slices and several
hosts. (Inside ``shard_map`` the rule differs: the gradient of replicated parameters is already
summed over ``data``; a further ``pmean`` would be wrong — MEASUREMENTS §4. We do not use shard_map.)
"""

from __future__ import annotations

import os
import sys

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

# Environment variables set by launchers that start one process per host.
_MULTIHOST_ENV = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")


def launched_multihost() -> bool:
    """True when a launcher started several processes (Slurm, Open MPI, a TPU pod, explicit JAX env)."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        if int(os.environ.get(name, "1") or 1) > 1:
            return True
    return "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def initialize(*, multihost: bool = False, require_tpu: bool = False) -> None:
    """Set up the JAX runtime before anything touches a device.

    Calls ``jax.distributed.initialize()`` when asked or when a multi-process launch is detected;
    with ``require_tpu`` exits with status 2 and a one-line reason when the backend is not a TPU.
    """
    if multihost or launched_multihost():
        jax.distributed.initialize()  # arguments come from the environment (Slurm, MPI, TPU pod...)
    if require_tpu:
        try:
            backend = jax.default_backend()
        except RuntimeError as err:  # no backend at all
            backend = f"none ({err})"
        if backend != "tpu":
            sys.stderr.write(f"error: --tpu was given but JAX's backend is {backend!r}, not 'tpu' "
                             "(run on a TPU VM with `pip install 'nst_jax[tpu]'`, or drop --tpu)\n")
            raise SystemExit(2)


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A one-axis mesh named ``data`` over all devices of all processes (or the given ones)."""
    devices = list(jax.devices() if devices is None else devices)
    return jax.sharding.Mesh(devices, ("data",))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Parameters, optimizer state, VGG weights, metrics: a full copy on every device."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Images: the leading (batch) axis split across the ``data`` axis."""
    return NamedSharding(mesh, P("data"))


def check_batch(global_batch: int, mesh: jax.sharding.Mesh) -> None:
    n = mesh.devices.size
    if global_batch % n:
        raise ValueError(f"batch_size {global_batch} is not divisible by the {n} devices; "
                         f"use a multiple of {n}")
