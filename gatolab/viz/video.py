"""Videos and images inline (mediapy): the one helper every notebook and widget uses.

Videos are h264 embedded as base64 in an HTML <video>, so an executed notebook's HTML
export plays them offline.
"""

from __future__ import annotations

import mediapy
import numpy as np
from IPython.display import HTML, display


def video_html(frames: np.ndarray, fps: int = 20, width: int = 320, title: str | None = None) -> str:
    """An HTML <video> (h264 embedded as base64) of (T, H, W, 3) uint8 frames."""
    if frames is None or len(frames) == 0:
        raise ValueError("video_html: no frames (was the environment made with render=True?)")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video_html: frames must be (T, H, W, 3), got shape {frames.shape}")
    h, w = frames.shape[1:3]
    return mediapy.show_videos([frames], [title] if title else None, fps=fps, width=width,
                               height=int(round(width * h / w / 2) * 2), return_html=True)


def show_video(frames: np.ndarray, fps: int = 20, width: int = 320, title: str | None = None) -> None:
    """Plays frames inline (an embedded mp4, visible in the HTML export too)."""
    display(HTML(video_html(frames, fps, width, title)))


def show_image(image: np.ndarray, title: str | None = None, width: int = 192) -> None:
    """Shows one (H, W, 3) uint8 image inline (embedded PNG)."""
    mediapy.show_image(image, title=title, width=width)


def png(frame: np.ndarray) -> bytes:
    """One frame as PNG bytes (for an ipywidgets Image)."""
    return mediapy.compress_image(frame, fmt="png")
