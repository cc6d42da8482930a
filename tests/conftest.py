"""Shared test set-up: a per-session cache for trained text models, headless rendering."""

import os
import tempfile

os.environ.setdefault("GATOLAB_CACHE", os.path.join(tempfile.gettempdir(), "gatolab-test-cache"))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("XLA_FLAGS", "")

# The toy "reach" domain (gatolab.testing) is a test fixture, not a builtin domain: every test
# process registers it, so tests and CLI calls can name it like any domain ("toy").
from gatolab import testing  # noqa: E402
from gatolab.domains import registry  # noqa: E402

registry.register(testing.TOY_ENTRY, replace=True)
