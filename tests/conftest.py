"""Shared test set-up: a per-session cache for trained text models, headless rendering."""

import os
import tempfile

os.environ.setdefault("GATOLAB_CACHE", os.path.join(tempfile.gettempdir(), "gatolab-test-cache"))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("XLA_FLAGS", "")
