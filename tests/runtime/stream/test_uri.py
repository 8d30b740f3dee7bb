"""The source syntax: what each string opens as (no decoder involved)."""

import pytest

from runtime.stream.pipeline import Roi
from runtime.stream.uri import SourceKind, SourceSyntaxError, is_stream_source, parse_source


@pytest.mark.parametrize(
    "text, kind, target, fmt, options",
    [
        ("clip.mp4", SourceKind.FILE, "clip.mp4", None, {}),
        ("file:///data/clip.MKV", SourceKind.FILE, "/data/clip.MKV", None, {}),
        ("frames/%05d.png", SourceKind.IMAGE_SEQUENCE, "frames/%05d.png", "image2", {}),
        ("frames/*.png", SourceKind.IMAGE_SEQUENCE, "frames/*.png", "image2", {"pattern_type": "glob"}),
        ("/dev/video0", SourceKind.V4L2, "/dev/video0", "v4l2", {}),
        (
            "v4l2:///dev/video1?width=1280&height=720&fps=30&format=mjpeg",
            SourceKind.V4L2,
            "/dev/video1",
            "v4l2",
            {"video_size": "1280x720", "framerate": "30", "input_format": "mjpeg"},
        ),
        ("rtsp://10.0.0.2:554/stream1", SourceKind.NETWORK, "rtsp://10.0.0.2:554/stream1", None, {}),
        (
            "http://127.0.0.1:8080/live.ts?token=a",
            SourceKind.NETWORK,
            "http://127.0.0.1:8080/live.ts?token=a",
            None,
            {},
        ),
        ("gst://videotestsrc ! appsink", SourceKind.GSTREAMER, "videotestsrc ! appsink", None, {}),
        (
            "videotestsrc ! videoconvert ! appsink",
            SourceKind.GSTREAMER,
            "videotestsrc ! videoconvert ! appsink",
            None,
            {},
        ),
    ],
)
def test_sources_parse_to_what_opens_them(text, kind, target, fmt, options):
    spec = parse_source(text)
    assert is_stream_source(text)
    assert (spec.kind, spec.target, spec.av_format, spec.av_options, spec.uri) == (kind, target, fmt, options, text)
    assert spec.live == (kind in (SourceKind.V4L2, SourceKind.NETWORK, SourceKind.GSTREAMER))


def test_csi_becomes_the_jetson_argus_pipeline():
    spec = parse_source("csi://1?width=1920&height=1080&fps=60")
    assert spec.kind is SourceKind.GSTREAMER
    assert spec.target.startswith(
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=60/1 ! nvvidconv"
    )
    assert spec.target.endswith("appsink drop=true max-buffers=2")


@pytest.mark.parametrize("text", ["photo.png", "digits/", "scan.JPG"])
def test_images_and_folders_stay_with_the_image_path(text):
    assert not is_stream_source(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("v4l2:///dev/video0?width=640", "give width and height together"),
        ("v4l2:///dev/video0?fps=zero", "fps='zero' is not a positive number"),
        ("v4l2:///dev/video0?exposure=3", "unknown option(s) exposure"),
        ("csi://left", "expected csi://N"),
        ("ftp://host/x.mp4", "unknown source scheme 'ftp'"),
    ],
)
def test_bad_sources_name_the_problem(text, message):
    with pytest.raises(SourceSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_source(text)


def test_roi_parses_pixels_or_center_and_refuses_to_leave_the_frame():
    assert Roi.parse("center").box((640, 480)) == (80, 0, 560, 480)
    assert Roi.parse("10,20,100,50").box((640, 480)) == (10, 20, 110, 70)
    with pytest.raises(ValueError, match="leaves the 64×48 frame"):
        Roi.parse("10,20,100,50").box((64, 48))
    with pytest.raises(ValueError, match="expected x,y,w,h"):
        Roi.parse("1,2")
