"""One source syntax for the command line, parsed without any decoder library.

=============================================  =================  ===========================================
source                                         kind               opened as
=============================================  =================  ===========================================
``clip.mp4`` (.mkv .avi .webm .mov .ts …)      FILE               PyAV, format from the file
``frames/%05d.png``, ``'frames/*.png'``        IMAGE_SEQUENCE     PyAV's image2 demuxer (glob or pattern)
``/dev/video0``, ``v4l2:///dev/video0?...``    V4L2               PyAV, format ``v4l2`` — the file code path
``rtsp://…``, ``http(s)://…``, ``udp://…``     NETWORK            PyAV; reconnects with bounded back-off
``csi://0?width=1280&height=720&fps=30``       GSTREAMER          OpenCV + GStreamer, ``nvarguscamerasrc``
``gst://PIPELINE`` or ``"a ! b ! appsink"``    GSTREAMER          OpenCV + GStreamer
=============================================  =================  ===========================================

V4L2 and CSI query options: ``width``, ``height``, ``fps`` and (V4L2) ``format`` (``mjpeg``, ``yuyv422``…).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from formats.errors import RuntimeToolkitError

VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mkv",
        ".avi",
        ".webm",
        ".mov",
        ".ts",
        ".mts",
        ".mpg",
        ".mpeg",
        ".mjpeg",
        ".mjpg",
        ".h264",
        ".264",
        ".h265",
        ".265",
        ".hevc",
        ".ivf",
        ".flv",
        ".y4m",
    }
)
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_PATTERN = re.compile(r"%0?\d*d")
_GLOB = re.compile(r"[*?\[]")


class SourceKind(str, enum.Enum):
    FILE = "file"
    IMAGE_SEQUENCE = "image_sequence"
    V4L2 = "v4l2"
    NETWORK = "network"
    GSTREAMER = "gstreamer"

    @property
    def live(self) -> bool:
        """Live sources are never blocked: when inference falls behind their oldest frames are dropped."""
        return self in (SourceKind.V4L2, SourceKind.NETWORK, SourceKind.GSTREAMER)


@dataclass(frozen=True)
class SourceSpec:
    """What the user typed (``uri``) and how to open it: ``target`` and ``av_format`` go to ``av.open``
    (for GStreamer ``target`` is the pipeline), ``av_options`` are FFmpeg demuxer/device options."""

    uri: str
    kind: SourceKind
    target: str
    av_format: str | None = None
    av_options: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.kind.live


class SourceSyntaxError(RuntimeToolkitError, ValueError):
    """A source string that looks like a stream but cannot be understood (bad query, bad size)."""


def is_stream_source(text: str) -> bool:
    """True for anything this package decodes; plain images and folders stay with ``runtime.infer``."""
    if "://" in text or " ! " in text or text.startswith("/dev/video"):
        return True
    path = Path(text)
    if path.is_dir():  # a folder of images, even one named like a pattern
        return False
    if not path.exists() and (_PATTERN.search(path.name) or _GLOB.search(text)):
        return True
    return path.suffix.lower() in VIDEO_SUFFIXES


def parse_source(text: str) -> SourceSpec:
    """The SourceSpec for one command-line source; SourceSyntaxError names the problem and the fix."""
    if text.startswith("gst://"):
        return SourceSpec(text, SourceKind.GSTREAMER, text[len("gst://") :])
    if " ! " in text:
        return SourceSpec(text, SourceKind.GSTREAMER, text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "csi":
        return SourceSpec(text, SourceKind.GSTREAMER, _csi_pipeline(text))
    if scheme == "v4l2" or text.startswith("/dev/video"):
        return _v4l2(text)
    if scheme in NETWORK_SCHEMES:
        return SourceSpec(text, SourceKind.NETWORK, text)
    if scheme == "file":
        text_path = urlsplit(text).path
    elif scheme:
        raise SourceSyntaxError(
            f"{text}: unknown source scheme {scheme!r}; use a file path, /dev/videoN, v4l2://, "
            f"csi://, gst://, or one of {', '.join(s + '://' for s in NETWORK_SCHEMES)}"
        )
    else:
        text_path = text
    if Path(text_path).is_file():  # an existing file is that file, even named clip[1].mp4 or take%d.mp4
        return SourceSpec(text, SourceKind.FILE, text_path)
    if _PATTERN.search(Path(text_path).name):
        return SourceSpec(text, SourceKind.IMAGE_SEQUENCE, text_path, "image2")
    if _GLOB.search(text_path):
        return SourceSpec(text, SourceKind.IMAGE_SEQUENCE, text_path, "image2", {"pattern_type": "glob"})
    return SourceSpec(text, SourceKind.FILE, text_path)


def _query(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    query = dict(parse_qsl(urlsplit(text).query, keep_blank_values=True))
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise SourceSyntaxError(f"{text}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    for key in ("width", "height", "fps"):
        if key in query and not _positive_number(query[key]):
            raise SourceSyntaxError(f"{text}: {key}={query[key]!r} is not a positive number")
    if ("width" in query) != ("height" in query):
        raise SourceSyntaxError(f"{text}: give width and height together (e.g. ?width=1280&height=720)")
    return query


def _positive_number(value: str) -> bool:
    try:
        return float(value) > 0
    except ValueError:
        return False


def _v4l2(text: str) -> SourceSpec:
    device = urlsplit(text).path if text.startswith("v4l2://") else text.split("?", 1)[0]
    query = _query(text, ("width", "height", "fps", "format"))
    options = {}
    if "width" in query:
        options["video_size"] = f"{int(float(query['width']))}x{int(float(query['height']))}"
    if "fps" in query:
        options["framerate"] = query["fps"]
    if "format" in query:
        options["input_format"] = query["format"]
    return SourceSpec(text, SourceKind.V4L2, device, "v4l2", options)


def _csi_pipeline(text: str) -> str:
    """jetson-inference's ``csi://N`` as the usual Jetson Argus pipeline (NVMM → BGR for OpenCV's appsink)."""
    sensor = urlsplit(text).netloc or "0"
    if not sensor.isdigit():
        raise SourceSyntaxError(f"{text}: expected csi://N with N the sensor id (csi://0)")
    query = _query(text, ("width", "height", "fps"))
    width, height = int(float(query.get("width", 1280))), int(float(query.get("height", 720)))
    fps = int(float(query.get("fps", 30)))
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={width},height={height},"
        f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink drop=true max-buffers=2"
    )
