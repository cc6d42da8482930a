"""Shared test set-up: a per-session cache for trained text models, headless rendering."""

import os
import tempfile

os.environ.setdefault("GATOLAB_CACHE", os.path.join(tempfile.gettempdir(), "gatolab-test-cache"))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("XLA_FLAGS", "")
# One persistent XLA compilation cache for the whole run: the tests and the subprocesses they start
# (training workers, notebooks, the demo) compile many of the same tiny-model programs.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.environ["GATOLAB_CACHE"], "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# The toy "reach" domain (gatolab.testing) is a test fixture, not a builtin domain: every test
# process registers it, so tests and CLI calls can name it like any domain ("toy").
from gatolab import testing  # noqa: E402
from gatolab.domains import registry  # noqa: E402

registry.register(testing.TOY_ENTRY, replace=True)
