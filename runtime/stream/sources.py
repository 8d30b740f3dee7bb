"""Frame readers: PyAV for files, image sequences, V4L2 cameras and network streams; OpenCV for GStreamer.

A V4L2 camera goes through exactly the code that reads a file (``PyAVReader``): only the format
(``v4l2``) and the device path differ. Every reader yields ``DecodedFrame`` objects and raises
``SourceError`` (one line: the source, what happened, the fix) when the source cannot go on. Problems it
survives (an undecodable packet, a file shorter than its header says) are collected in ``problems`` and
counted in ``undecodable``; the caller reports them and exits non-zero.
"""

from __future__ import annotations

import glob
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import Image

from formats.cli import MAX_PIXELS
from formats.errors import RuntimeToolkitError
from formats.files import not_regular
from runtime.stream.uri import NETWORK_SCHEMES, SourceKind, SourceSpec


class SourceError(RuntimeToolkitError):
    """A source that cannot be opened or read any further; ``reason`` is the short cause (FFmpeg's words)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class MissingProtocol(SourceError):
    """A network scheme this FFmpeg build was compiled without (``srt://`` in PyAV's wheels): waiting cannot help."""


class DecoderMissing(RuntimeToolkitError):
    """PyAV (or OpenCV with GStreamer) is not installed."""


@dataclass
class DecodedFrame:
    index: int  # position in the source's decoded frames, from 0, continuing across --loop and reconnects
    pts: float | None  # presentation time in seconds (the container's clock), None when unknown
    image: Image.Image  # RGB, full frame
    decode_s: float  # seconds spent demuxing, decoding and converting this frame
    decoded_at: float  # time.perf_counter() when the frame was ready
    loop: int = 0


@dataclass(frozen=True)
class ReadOptions:
    loop: bool = False  # start a file or image sequence again at its end
    reconnect_attempts: int = 5  # network sources: tries after a failed open or a lost stream
    reconnect_delay_s: float = 0.5  # first back-off; doubled each try, capped at 8 s
    timeout_s: float = 5.0  # network open and read timeout
    decoder_threads: int = 0  # FFmpeg threads per decoder; 0 lets FFmpeg choose (one per core)


@dataclass
class ReadReport:
    """What a reader survived: shown to the user and counted, never silently dropped."""

    undecodable: int = 0
    problems: list[str] = field(default_factory=list)
    reconnects: int = 0

    def add(self, problem: str, limit: int = 20) -> None:
        """Record a problem once (a looped file repeats them) and at most ``limit`` of them (memory stays bounded)."""
        if problem not in self.problems and len(self.problems) < limit:
            self.problems.append(problem)


def import_av():
    try:
        import av
    except ImportError:
        raise DecoderMissing(
            "video, camera and network sources need PyAV: pip install '.[stream]' (or pip install av)"
        ) from None
    return av


def open_reader(spec: SourceSpec, options: ReadOptions) -> PyAVReader | GStreamerReader:
    if spec.kind is SourceKind.GSTREAMER:
        return GStreamerReader(spec)
    import_av()
    return PyAVReader(spec, options)


class PyAVReader:
    """Files, image sequences, V4L2 devices and network streams through FFmpeg (PyAV)."""

    def __init__(self, spec: SourceSpec, options: ReadOptions) -> None:
        self.spec = spec
        self.options = options
        self.report = ReadReport()
        self._av = import_av()

    def frames(self, stop: threading.Event) -> Iterator[DecodedFrame]:
        index, loop, fruitless = 0, 0, 0
        while not stop.is_set():
            container = self._open(stop, index)
            if container is None:
                return
            lost, session_start = None, index
            try:
                for frame in self._decode(container, stop, index, loop):
                    index = frame.index + 1  # a skipped image of a sequence keeps its number
                    yield frame
            except self._av.error.FFmpegError as exc:
                lost = exc
            finally:
                container.close()
            if self.spec.kind is SourceKind.NETWORK:  # a network stream that ends or fails was lost: reconnect
                if stop.is_set():
                    return
                if self.options.reconnect_attempts == 0:
                    raise SourceError(
                        f"{self.spec.uri}: stream lost after {index} frame(s) ({lost or 'end of stream'}); "
                        "check the camera or server, or allow reconnects with --reconnect N"
                    )
                # a server that accepts and then sends nothing must not be reconnected to forever, nor at full speed
                fruitless = fruitless + 1 if index == session_start else 0
                if fruitless > self.options.reconnect_attempts:
                    raise SourceError(
                        f"{self.spec.uri}: the server accepts the connection but sends no video "
                        f"({lost or 'the stream ends at once'}) after {fruitless} tries; check the "
                        "stream's address and that its encoder is running"
                    )
                if fruitless and stop.wait(min(self.options.reconnect_delay_s * 2 ** (fruitless - 1), 8.0)):
                    return
                self.report.reconnects += 1
                continue
            if self.spec.live:
                raise SourceError(
                    f"{self.spec.uri}: the camera stopped after {index} frame(s) "
                    f"({lost or 'end of stream'}); check the cable and power, then run again"
                )
            if lost is not None:
                self.report.add(
                    f"corrupt data after frame {index} ({_reason(lost)}); decoded what came before "
                    "it; re-encode or re-copy the file"
                )
                return
            if index == 0 and self.spec.kind is SourceKind.FILE and not self.report.problems:  # not one frame in it
                raise SourceError(f"{self.spec.uri}: {_NO_FRAMES}", reason="no video frames")
            if not self.options.loop or index == 0:
                return
            loop += 1

    # opening ----------------------------------------------------------------------------------

    def _open(self, stop: threading.Event, frames_so_far: int):
        if self.spec.kind is not SourceKind.NETWORK:  # a missing file or camera does not come back by waiting
            if frames_so_far and self.spec.live:
                raise SourceError(
                    f"{self.spec.uri}: the camera stopped after {frames_so_far} frame(s); check "
                    "the cable and power, then run again"
                )
            return self._open_once()
        attempts = max(self.options.reconnect_attempts, 0)
        delay, last = self.options.reconnect_delay_s, None
        for attempt in range(attempts + 1):
            if stop.is_set():
                return None
            try:
                return self._open_once()
            except MissingProtocol:
                raise
            except SourceError as exc:
                last = exc
            if attempt < attempts and stop.wait(delay):
                return None
            delay = min(delay * 2, 8.0)
        what = "unreachable" if frames_so_far == 0 else f"lost after {frames_so_far} frame(s)"
        raise SourceError(
            f"{self.spec.uri}: stream {what}; {attempts} reconnect attempt(s) with back-off failed "
            f"(last: {last.reason}); check that the camera or server is up and the address is "
            "right, or raise --reconnect"
        )

    def _open_once(self):
        av = self._av
        spec = self.spec
        if spec.kind is SourceKind.IMAGE_SEQUENCE and not sequence_files(spec.target):
            raise SourceError(
                f"{spec.uri}: no image file matches this sequence; check the folder and pattern (quote "
                "a glob so the shell does not expand it: 'frames/*.png')",
                reason="no files",
            )
        odd = not_regular(spec.target) if spec.kind is SourceKind.FILE else None
        if odd:  # FFmpeg would block on a FIFO until a writer comes, or read a device for ever
            raise SourceError(
                f"{spec.uri}: is {odd}, expected a video file; give the path of a regular file", reason="not a file"
            )
        options = dict(spec.av_options)
        kwargs = {}
        if spec.kind is SourceKind.NETWORK:
            kwargs["timeout"] = (self.options.timeout_s, self.options.timeout_s)
            if spec.target.startswith("rtsp"):
                options.setdefault("rtsp_transport", "tcp")  # UDP loses packets behind NAT and on Wi-Fi
        try:
            container = av.open(spec.target, format=spec.av_format, options=options, **kwargs)
        except av.error.ProtocolNotFoundError:
            raise MissingProtocol(_missing_protocol(spec.uri), reason="protocol not found") from None
        except av.error.FFmpegError as exc:
            raise SourceError(self._open_message(exc), reason=_reason(exc)) from None
        if not container.streams.video:
            audio = [stream.codec_context.name for stream in container.streams.audio if stream.codec_context]
            container.close()
            what = f"holds only audio ({', '.join(audio)}), no video stream" if audio else "has no video stream"
            raise SourceError(f"{spec.uri}: {what}; give a video file, camera or stream", reason="no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None or stream.codec_context.codec is None:
            container.close()
            raise SourceError(
                f"{spec.uri}: its video codec cannot be decoded by this FFmpeg build (PyAV); "
                "re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4",
                reason="unsupported codec",
            )
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if width * height > MAX_PIXELS:  # refused from the header, before a frame is decoded
            container.close()
            raise SourceError(
                f"{spec.uri}: frames of {width}x{height} pixels, over the {MAX_PIXELS}-pixel bound images have too; "
                "scale the video down (ffmpeg -i IN -vf scale=1920:-2 OUT.mp4)",
                reason="frames too large",
            )
        # FFmpeg's own decoder threads share the cores with the other sources' decoders: one stream gets them
        # all, several split them (more threads than cores only adds switching)
        if spec.kind is SourceKind.IMAGE_SEQUENCE:
            # one image per packet, decoded in order: a bad file is reported as itself and keeps its number (frame
            # threading reports a decode error packets later, and the last file's never)
            stream.thread_type, stream.thread_count = "SLICE", 1
        else:
            stream.thread_type = "AUTO"
            stream.thread_count = self.options.decoder_threads
        return container

    def _open_message(self, exc: Exception) -> str:
        av, uri, kind = self._av, self.spec.uri, self.spec.kind
        if kind is SourceKind.V4L2:
            if isinstance(exc, av.error.FileNotFoundError):
                return (
                    f"{uri}: no such camera; list cameras with `v4l2-ctl --list-devices` (or ls /dev/video*), "
                    "check the cable, and pass the container's --device when running in Docker"
                )
            if isinstance(exc, av.error.PermissionError):
                return f"{uri}: permission denied; add the user to the video group (sudo usermod -aG video $USER)"
            return (
                f"{uri}: the camera refused to open ({_reason(exc)}); it may be in use by another program or "
                "not support the asked width/height/fps/format (list modes: v4l2-ctl --list-formats-ext)"
            )
        if kind is SourceKind.NETWORK:
            return f"{uri}: cannot connect ({_reason(exc)})"
        if isinstance(exc, av.error.FileNotFoundError):
            return f"{uri}: no such file; check the path"
        if isinstance(exc, av.error.EOFError) and kind is SourceKind.FILE:  # the header, then nothing
            return f"{uri}: {_NO_FRAMES}"
        if isinstance(exc, av.error.InvalidDataError):
            return (
                f"{uri}: not a video FFmpeg can read, or truncated before its index ({_reason(exc)}); "
                "re-encode or re-copy the file"
            )
        return f"{uri}: cannot be opened ({_reason(exc)})"

    # decoding ---------------------------------------------------------------------------------

    def _decode(self, container, stop: threading.Event, first_index: int, loop: int) -> Iterator[DecodedFrame]:
        av = self._av
        stream = container.streams.video[0]
        index, last_pts, packets = first_index, None, 0
        started = time.perf_counter()
        for packet in container.demux(stream):
            if stop.is_set():
                return
            packets += 1
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                if not isinstance(exc, av.error.InvalidDataError):
                    raise
                self.report.undecodable += 1
                if self.spec.kind is SourceKind.IMAGE_SEQUENCE:
                    self.report.add(f"{self._image_name(packets - 1)} is undecodable ({_reason(exc)}); skipped")
                    index += 1  # the next image keeps its own number
                    continue
                when = f" at {float(packet.pts * packet.time_base):.3f} s" if packet.pts is not None else ""
                self.report.add(f"packet {packets - 1}{when} is undecodable ({_reason(exc)})")
                continue
            for frame in decoded:
                if frame.width * frame.height > MAX_PIXELS:  # a stream whose size grows mid-way
                    self.report.undecodable += 1
                    self.report.add(f"a frame of {frame.width}x{frame.height} pixels is over the pixel bound; skipped")
                    continue
                # the same pixels as frame.to_image(), several times faster in PyAV 18 (one swscale pass)
                image = Image.fromarray(frame.to_ndarray(format="rgb24"))
                now = time.perf_counter()
                last_pts = frame.time
                yield DecodedFrame(index, frame.time, image, now - started, now, loop)
                index += 1
                started = time.perf_counter()
        if self.spec.kind is SourceKind.FILE:
            self._check_complete(container, stream, index - first_index, last_pts)

    def _image_name(self, position: int) -> str:
        """The file at ``position`` of an image sequence, in FFmpeg's order (glob: sorted; %d: by number)."""
        files = sequence_order(self.spec.target)
        return f"image {position} ({files[position]})" if 0 <= position < len(files) else f"image {position}"

    def _check_complete(self, container, stream, decoded: int, last_pts: float | None) -> None:
        """A file that ends before its header says it should was truncated: name what is missing."""
        declared = stream.frames
        if declared and decoded < declared:
            self.report.add(
                f"truncated or corrupt: decoded {decoded} of the {declared} frames its header "
                "declares; re-encode or re-copy the file"
            )
            return
        rate = float(stream.average_rate or 0) or 25.0
        if container.duration and last_pts is not None:
            start = (container.start_time or 0) / 1e6
            end = start + container.duration / 1e6
            if last_pts + 2.5 / rate < end:
                self.report.add(
                    f"truncated or corrupt: frames stop at {last_pts:.2f} s of the {end:.2f} s its "
                    "header declares; re-encode or re-copy the file"
                )


_NO_FRAMES = (
    "has no video frames (the file ends after its header: a recording stopped before its first frame, or an "
    "empty export); record or export it again"
)


def _missing_protocol(uri: str) -> str:
    scheme = uri.split("://", 1)[0].lower()
    others = ", ".join(f"{s}://" for s in NETWORK_SCHEMES if s != scheme)
    return (
        f"{uri}: this FFmpeg build (PyAV's) has no {scheme!r} protocol, so no retry can reach it; use one of "
        f"{others} (the stream's server can usually send one of them), or a PyAV built on an FFmpeg with {scheme}"
    )


class GStreamerReader:
    """A GStreamer pipeline (ending in ``appsink``) through OpenCV's GStreamer backend, BGR → RGB."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.report = ReadReport()

    def frames(self, stop: threading.Event) -> Iterator[DecodedFrame]:
        cv2 = self._cv2()
        capture = cv2.VideoCapture(self.spec.target, cv2.CAP_GSTREAMER)
        if not capture.isOpened():
            raise SourceError(
                f"{self.spec.uri}: GStreamer could not start this pipeline; test it with "
                "gst-launch-1.0 (ending in fakesink) and check that the camera is connected"
            )
        index = 0
        try:
            started = time.perf_counter()
            while not stop.is_set():
                ok, bgr = capture.read()
                if not ok:
                    if index == 0:
                        raise SourceError(
                            f"{self.spec.uri}: the pipeline started but gave no frame; check the "
                            "camera (on a Jetson: sudo systemctl restart nvargus-daemon)"
                        )
                    return
                image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                now = time.perf_counter()
                pts = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                yield DecodedFrame(index, pts, image, now - started, now)
                index += 1
                started = time.perf_counter()
        finally:
            capture.release()

    def _cv2(self):
        return check_gstreamer(self.spec.uri)


def check_gstreamer(uri: str):
    """OpenCV with its GStreamer backend, or DecoderMissing naming the source and what to install."""
    try:
        import cv2
    except ImportError:
        raise DecoderMissing(
            f"{uri}: GStreamer pipelines need OpenCV built with GStreamer "
            "(on a Jetson: JetPack's python3-opencv); `import cv2` failed"
        ) from None
    if not _has_gstreamer(cv2.getBuildInformation()):
        raise DecoderMissing(
            f"{uri}: this OpenCV ({cv2.__version__}) was built without GStreamer; "
            "use JetPack's python3-opencv or build OpenCV with -D WITH_GSTREAMER=ON"
        )
    return cv2


def sequence_files(target: str) -> list[str]:
    """The files an image2 pattern (``%05d``) or glob would read, found with the same rules as a glob."""
    return glob.glob(re.sub(r"%0?\d*d", "[0-9]*", target) if "%" in target else target)


def sequence_order(target: str) -> list[str]:
    """The files of an image sequence in the order FFmpeg's image2 demuxer reads them."""
    match = re.search(r"%0?(\d*)d", target)
    if match is None:
        return sorted(sequence_files(target))
    width = int(match.group(1)) if match.group(1) else None
    head, tail = target[: match.start()], target[match.end() :]
    digits = rf"\d{{{width},}}" if width else r"\d+"
    pattern = re.compile(re.escape(head) + f"({digits})" + re.escape(tail) + "$")
    found = [(int(m.group(1)), name) for name in sequence_files(target) if (m := pattern.match(name))]
    return [name for _, name in sorted(found)]


def _has_gstreamer(build_info: str) -> bool:
    for line in build_info.splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words, without the errno prefix and file name PyAV adds."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip()
