"""Which kernel is this? Local CPU, a GPU VM, a Colab TPU runtime or a Cloud TPU VM."""

from __future__ import annotations

import os
import sys
from typing import Any

import jax


def runtime_info() -> dict[str, Any]:
    """Platform, devices and hosts as JAX sees them, plus a one-line description."""
    devices = jax.devices()
    platform = devices[0].platform
    kind = getattr(devices[0], "device_kind", platform)
    colab = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
    if platform == "tpu":
        where = "Colab TPU runtime" if colab else ("Cloud TPU VM" if os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio") else "TPU")
    elif platform == "gpu":
        where = "Colab GPU runtime" if colab else "GPU machine"
    else:
        where = "Colab CPU runtime" if colab else "local CPU"
    info = {
        "where": where, "platform": platform, "device_kind": kind, "devices": jax.device_count(),
        "local_devices": jax.local_device_count(), "processes": jax.process_count(), "process_index": jax.process_index(),
        "jax": jax.__version__,
    }
    info["summary"] = (f"{where}: {info['devices']} x {kind} ({platform}) over {info['processes']} process(es), "
                       f"jax {jax.__version__}")
    return info
