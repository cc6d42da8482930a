"""Making and rendering environments prints no audio/display library noise (issue 14).

On a headless machine pygame's `pygame.init()` (called by gymnasium's classic-control
`render()`) used to print ALSA's "ALSA lib ... cannot find card" lines and SDL's
"XDG_RUNTIME_DIR is invalid or not set" to stderr; the demo report showed them as a red
block under its video cell. Each case runs in a fresh process, headless (no display,
no XDG_RUNTIME_DIR, no SDL settings), as the demo's notebook kernels do.
"""

import os
import subprocess
import sys

import pytest

NOISE = ("ALSA lib", "XDG_RUNTIME_DIR", "snd_", "pulseaudio", "PulseAudio")

SCRIPT = """
import sys
import gatolab as gl
env = gl.domains.get(sys.argv[1]).make(sys.argv[2], seed=0, render=True)
env.reset(seed=0)
frame = env.render()
assert frame is not None and frame.ndim == 3, frame
env.close()
print("rendered", frame.shape)
"""


def _headless_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "DISPLAY", "WAYLAND_DISPLAY") and not k.startswith("SDL_")}
    env["MUJOCO_GL"] = env.get("MUJOCO_GL", "egl")
    return env


@pytest.mark.parametrize("domain,task", [("classic", "CartPole-v1"), ("classic", "Pendulum-v1"),
                                         ("babyai", "BabyAI-GoToRedBall-v0")])
def test_render_prints_no_library_noise(domain, task):
    pytest.importorskip("gymnasium")
    if domain == "babyai":
        pytest.importorskip("minigrid")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, domain, task], capture_output=True, text=True,
                          env=_headless_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rendered" in proc.stdout
    noisy = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, "library noise on stderr:\n" + "\n".join(noisy)


def test_quiet_sdl_keeps_explicit_settings(monkeypatch):
    from gatolab.domains.common import quiet_sdl

    monkeypatch.setenv("SDL_AUDIODRIVER", "pulse")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    quiet_sdl()
    assert os.environ["SDL_AUDIODRIVER"] == "pulse"  # the user's choice wins
    assert "SDL_VIDEODRIVER" not in os.environ  # a display exists: SDL picks its own video driver
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    quiet_sdl()
    assert os.environ["SDL_VIDEODRIVER"] == "dummy"
