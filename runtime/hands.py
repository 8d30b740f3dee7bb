"""Find the hand in a photo: MediaPipe's palm detector and hand landmarker, run as ONNX on our own backends.

The two networks come from the mediapipe 0.10.14 wheel (``palm_detection_full.tflite``, ``hand_landmark_full.tflite``)
and are converted once to ``hand_palm.fp32.onnx`` and ``hand_landmark.fp32.onnx`` by ``edge hands``
(``export.hands``). Everything around them is numpy here, following MediaPipe's own graphs
(``palm_detection_cpu.pbtxt``, ``hand_landmark_cpu.pbtxt``): letterbox to 192 px, SSD anchors, sigmoid scores,
weighted non-maximum suppression, the rotated palm → hand region (×2.6, shifted towards the fingers), a rotated
224 px crop for the landmarker, landmarks mapped back to image pixels.

What a classifier then gets: ``Hand.crop`` (a square, axis-aligned crop around the 21 points with a margin, the
way ``asl_real`` crops were made) for an image model, or ``landmark_features`` (wrist-centred, scale-normalised,
mirrored to a right hand) for a landmark model. ``find`` answers ``None`` — "no hand" — instead of a guess.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from formats.artifacts import Artifacts, Precision
from formats.errors import ModelLoadError

PALM_MODEL = "hand_palm"
LANDMARK_MODEL = "hand_landmark"
PALM_SIZE = 192
LANDMARK_SIZE = 224
NUM_LANDMARKS = 21
# MediaPipe's own thresholds (palm_detection_cpu.pbtxt, hand_landmark_cpu.pbtxt).
PALM_SCORE_MIN = 0.5
NMS_IOU = 0.3
PRESENCE_MIN = 0.5
PALM_TO_HAND_SCALE = 2.6
PALM_TO_HAND_SHIFT_Y = -0.5
# The square crop handed to an image classifier: the landmarks' bounding square × this (asl_real me369 used 1.45).
CROP_MARGIN = 1.45
# A photo cropped tight around the hand hides the wrist and the palm's context the detector looks for; a border
# of this fraction of the long side, added before detection, lets it find such hands (chosen on asl_real/adapt).
DETECT_BORDER = 0.25
# ``find_in_crop``: the landmarker's region around an image that is already a hand crop, this fraction of its side
# added on each side (on 60 Sign-MNIST images: presence ≥ 0.5 in 97 % at 0 and at 0.15, median 0.98 → 0.99).
CROP_PAD = 0.15


@dataclass(frozen=True)
class HandModels:
    """The two ONNX files of the hand stage (``hand_palm.fp32.onnx``, ``hand_landmark.fp32.onnx``)."""

    palm: Path
    landmark: Path

    @classmethod
    def in_folder(cls, folder: str | os.PathLike) -> HandModels:
        folder = Path(folder)
        return cls(
            Artifacts(folder, PALM_MODEL).onnx(Precision.FP32), Artifacts(folder, LANDMARK_MODEL).onnx(Precision.FP32)
        )

    def check(self) -> HandModels:
        missing = [str(p) for p in (self.palm, self.landmark) if not p.is_file()]
        if missing:
            raise ModelLoadError(
                f"hand models not found: {', '.join(missing)}; make them with "
                f"`edge hands --out {self.palm.parent}` (converts MediaPipe's palm detector and landmarker to ONNX)"
            )
        return self


@dataclass(frozen=True)
class Hand:
    """One hand: 21 landmarks in image pixels (x, y, z; z in the same pixel scale, relative to the wrist)."""

    landmarks: np.ndarray  # (21, 3) float32
    presence: float  # the landmarker's hand-presence probability
    right: float  # the landmarker's handedness output (probability of a right hand as MediaPipe labels it)
    palm_score: float

    def box(self, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
        """The square crop around the landmarks, ``margin`` × their larger extent, as (left, top, right, bottom)."""
        xy = self.landmarks[:, :2]
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        side = max(1, int(round(max(hi - lo) * margin)))
        left, top = (int(round(c - side / 2)) for c in (lo + hi) / 2)
        return left, top, left + side, top + side

    def crop(self, image: Image.Image, margin: float = CROP_MARGIN) -> Image.Image:
        """The square crop of ``image`` around this hand (outside the photo is black), for an image classifier."""
        return image.crop(self.box(margin))

    def to_dict(self) -> dict:
        return {
            "box": list(self.box()),
            "presence": round(self.presence, 4),
            "right": round(self.right, 4),
            "palm_score": round(self.palm_score, 4),
        }


# --- palm detection: anchors, decoding, suppression, region ----------------------------------------------------


@lru_cache(maxsize=1)
def palm_anchors() -> np.ndarray:
    """The 2016 SSD anchor centres (x, y in 0..1) of palm_detection_full: strides 8, 16, 16, 16, two anchors per
    cell (MediaPipe's SsdAnchorsCalculator options; fixed anchor size, so every width and height is 1)."""
    centres = []
    for stride, count in ((8, 2), (16, 6)):  # the three stride-16 layers share a grid: 6 anchors per cell
        side = PALM_SIZE // stride
        ys, xs = np.meshgrid((np.arange(side) + 0.5) / side, (np.arange(side) + 0.5) / side, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, count, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Palm:
    score: float
    box: np.ndarray  # (x_centre, y_centre, width, height) in letterbox 0..1
    keypoints: np.ndarray  # (7, 2) in letterbox 0..1; 0 = wrist, 2 = middle finger's base


def decode_palms(raw_boxes: np.ndarray, raw_scores: np.ndarray) -> list[Palm]:
    """The palm detector's (2016, 18) and (2016, 1) outputs → palms above the score threshold, after weighted
    non-maximum suppression (overlapping detections averaged by score, as MediaPipe does)."""
    scores = 1 / (1 + np.exp(-np.clip(raw_scores[:, 0], -100, 100)))
    keep = np.nonzero(scores >= PALM_SCORE_MIN)[0]
    if not len(keep):
        return []
    anchors = palm_anchors()[keep]
    raw = raw_boxes[keep] / PALM_SIZE
    boxes = np.concatenate([raw[:, :2] + anchors, raw[:, 2:4]], axis=1)
    keypoints = raw[:, 4:].reshape(-1, 7, 2) + anchors[:, None, :]
    return _weighted_nms(scores[keep], boxes, keypoints)


def _weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray) -> list[Palm]:
    order = list(np.argsort(-scores))
    palms = []
    while order:
        ious = _iou(boxes[order[0]], boxes[order])
        group = [order[i] for i in np.nonzero(ious > NMS_IOU)[0]]
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        points = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        palms.append(Palm(float(scores[order[0]]), box, points))
        order = [i for i in order if i not in set(group)]
    return palms


def _iou(one: np.ndarray, many: np.ndarray) -> np.ndarray:
    def corners(b):
        return (
            b[..., 0] - b[..., 2] / 2,
            b[..., 1] - b[..., 3] / 2,
            b[..., 0] + b[..., 2] / 2,
            b[..., 1] + b[..., 3] / 2,
        )

    ax0, ay0, ax1, ay1 = corners(one)
    bx0, by0, bx1, by1 = corners(many)
    w = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    h = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = w * h
    return inter / (one[2] * one[3] + many[:, 2] * many[:, 3] - inter + 1e-9)


@dataclass(frozen=True)
class Region:
    """A rotated square in image pixels: centre, side, rotation (radians, clockwise in image coordinates)."""

    cx: float
    cy: float
    side: float
    rotation: float

    def corners(self) -> np.ndarray:
        """Upper-left, lower-left, lower-right, upper-right (Pillow's QUAD order), in image pixels."""
        c, s, h = math.cos(self.rotation), math.sin(self.rotation), self.side / 2
        local = np.array([[-h, -h], [-h, h], [h, h], [h, -h]])
        return np.stack([self.cx + local[:, 0] * c - local[:, 1] * s, self.cy + local[:, 0] * s + local[:, 1] * c], 1)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Points in this region's 0..1 frame → image pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        u, v = (points[:, 0] - 0.5) * self.side, (points[:, 1] - 0.5) * self.side
        return np.stack([self.cx + u * c - v * s, self.cy + u * s + v * c], 1)


def palm_region(palm: Palm, side: float, offset: tuple[float, float]) -> Region:
    """The hand's rotated square from a palm in letterbox coordinates (MediaPipe's DetectionsToRects with
    rotation from wrist to middle finger, then RectTransformation: shift −0.5 towards the fingers, ×2.6)."""
    ox, oy = offset
    points = palm.keypoints * side - (ox, oy)
    cx, cy = palm.box[0] * side - ox, palm.box[1] * side - oy
    w, h = palm.box[2] * side, palm.box[3] * side
    angle = math.pi / 2 - math.atan2(-(points[2, 1] - points[0, 1]), points[2, 0] - points[0, 0])
    rotation = (angle + math.pi) % (2 * math.pi) - math.pi
    cx += -h * PALM_TO_HAND_SHIFT_Y * math.sin(rotation)
    cy += h * PALM_TO_HAND_SHIFT_Y * math.cos(rotation)
    return Region(cx, cy, max(w, h) * PALM_TO_HAND_SCALE, rotation)


def letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """RGB image → (1, size, size, 3) float32 in 0..1, padded to a square with black (aspect ratio kept).

    Returns the tensor, the square's side in image pixels and the image's offset inside that square."""
    w, h = image.size
    side = max(w, h)
    canvas = Image.new("RGB", (side, side))
    offset = ((side - w) // 2, (side - h) // 2)
    canvas.paste(image, offset)
    pixels = np.asarray(canvas.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return pixels[None], float(side), (float(offset[0]), float(offset[1]))


def rotated_crop(image: Image.Image, region: Region, size: int) -> np.ndarray:
    """The region as a (1, size, size, 3) float32 tensor in 0..1 (outside the photo is black)."""
    quad = tuple(region.corners().ravel())
    crop = image.transform((size, size), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float32)[None] / 255.0


# --- features for a landmark classifier ----------------------------------------------------------------------


def landmark_features(landmarks: np.ndarray, right: float) -> np.ndarray:
    """21 landmarks (image pixels) → 42 features: (x, y) with the wrist at the origin, the wrist → middle-finger-base
    distance as the unit, a left hand mirrored to a right one. Orientation is kept on purpose: ASL tells g/h from
    p and k from p by it. ``right`` is the landmarker's handedness output (≥ 0.5: right). Depth (z) is left out:
    with it, leave-one-signer-out on asl_real/adapt fell from 74 % to 70 % (docs/hands.md)."""
    points = np.asarray(landmarks, dtype=np.float32)[:, :2]
    points = points - points[0]
    scale = float(np.linalg.norm(points[9])) or 1.0
    points = points / scale
    if right < 0.5:
        points[:, 0] = -points[:, 0]
    return points.reshape(-1).astype(np.float32)


FEATURE_SIZE = NUM_LANDMARKS * 2


# --- the stage ----------------------------------------------------------------------------------------------


class HandFinder:
    """Palm detector + landmarker on one backend each. A context manager; ``find(image)`` → Hand or None."""

    def __init__(self, models: HandModels, options=None, border: float = DETECT_BORDER):
        """``options``: the backend table's ``BackendOptions`` (None: every backend's defaults)."""
        from runtime.model import open_backend

        models.check()
        self.palm = open_backend(models.palm, options)
        self.landmark = open_backend(models.landmark, options)
        self.border = border

    def __enter__(self) -> HandFinder:
        self.palm.activate()
        try:
            self.landmark.activate()
        except BaseException:
            self.palm.deactivate()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.landmark.deactivate()
        self.palm.deactivate()

    def find(self, image: Image.Image) -> Hand | None:
        """The most confident hand in an RGB image, or None when the detector finds no palm or the landmarker
        says the region holds no hand."""
        image = image.convert("RGB")
        padded, pad = _with_border(image, self.border)
        tensor, side, offset = letterbox(padded, PALM_SIZE)
        out = self.palm.infer({self.palm.inputs[0].name: tensor})
        raw_boxes, raw_scores = (out[t.name][0] for t in self.palm.outputs)
        for palm in decode_palms(raw_boxes, raw_scores)[:1]:
            region = palm_region(palm, side, offset)
            region = Region(region.cx - pad, region.cy - pad, region.side, region.rotation)
            hand = self._landmarks(image, region, palm.score)
            if hand is not None:
                return hand
        return None

    def find_in_crop(self, image: Image.Image, pad: float = CROP_PAD) -> Hand | None:
        """The landmarker alone on a photo that is already a hand crop (Sign-MNIST's 28×28 hands, upscaled): the
        region is the whole image plus ``pad`` of its side on each side, upright, no palm detection. None when the
        landmarker's hand-presence score is below 0.5."""
        image = image.convert("RGB")
        side = max(image.size) * (1 + 2 * pad)
        return self._landmarks(image, Region(image.width / 2, image.height / 2, side, 0.0), 1.0)

    def _landmarks(self, image: Image.Image, region: Region, palm_score: float) -> Hand | None:
        tensor = rotated_crop(image, region, LANDMARK_SIZE)
        out = self.landmark.infer({self.landmark.inputs[0].name: tensor})
        screen, presence, right, _world = (out[t.name].reshape(-1) for t in self.landmark.outputs)
        if float(presence[0]) < PRESENCE_MIN:
            return None
        points = screen.reshape(NUM_LANDMARKS, 3) / LANDMARK_SIZE
        xy = region.to_image(points[:, :2])
        z = points[:, 2:] * region.side
        return Hand(np.concatenate([xy, z], 1).astype(np.float32), float(presence[0]), float(right[0]), palm_score)


def _with_border(image: Image.Image, border: float) -> tuple[Image.Image, float]:
    if border <= 0:
        return image, 0.0
    pad = int(round(max(image.size) * border))
    canvas = Image.new("RGB", (image.width + 2 * pad, image.height + 2 * pad))
    canvas.paste(image, (pad, pad))
    return canvas, float(pad)
