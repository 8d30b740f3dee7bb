"""Stroke-width normalisation in the digit deploy path (issue 27): a fine pen or a marker on paper reaches MNIST's
stroke width once framed; MNIST's own digits and specs without the field are left as they were."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from formats.errors import SpecError
from runtime.preprocess import image_to_pixels, normalize_stroke, prepare_pixels, stroke_share
from runtime.spec import Background, Framing, ModelSpec, Polarity, Stroke

KEEP_SPEC = ModelSpec(
    name="d",
    labels=tuple("0123456789"),
    height=28,
    width=28,
    mean=(0.1307,),
    std=(0.3081,),
    polarity=Polarity.LIGHT_ON_DARK,
    background=Background.FLATTEN,
    framing=Framing.CENTER_OF_MASS,
    frame_box=20,
)
STROKE_SPEC = replace(KEEP_SPEC, stroke=Stroke.NORMALIZE)
# MNIST's framed training digits, measured with stroke_share: 5th percentile 0.060, 95th 0.140.
MNIST_RANGE = (0.06, 0.14)


def pen_photo(pen: int, side: int = 320) -> Image.Image:
    """A "2" written about 200 px tall with a round pen ``pen`` px wide, dark on light grey paper."""
    sheet = Image.new("L", (side, side), 200)
    points = [(110, 110), (140, 70), (190, 70), (215, 110), (200, 160), (110, 260), (230, 260)]
    ImageDraw.Draw(sheet).line(points, fill=40, width=pen, joint="curve")
    return sheet


def test_a_fine_pen_gets_mnist_stroke_width():
    photo = pen_photo(pen=2)
    thin = image_to_pixels(photo, KEEP_SPEC)
    framed = image_to_pixels(photo, STROKE_SPEC)
    assert stroke_share(thin.astype(np.float32)) < MNIST_RANGE[0]  # the problem: a line under a pixel wide
    assert MNIST_RANGE[0] <= stroke_share(framed.astype(np.float32)) <= MNIST_RANGE[1]
    assert (framed > 128).mean() > 2 * (thin > 128).mean()


def test_a_stroke_thicker_than_mnist_is_eroded():
    rows, cols = np.mgrid[0:60, 0:60]
    radius = np.hypot(rows - 30, cols - 30)
    ring = np.where((radius <= 25) & (radius >= 12), 255.0, 0.0).astype(np.float32)  # an "0" a quarter as thick as tall
    assert stroke_share(ring) > 0.18
    assert MNIST_RANGE[0] <= stroke_share(normalize_stroke(ring)) <= MNIST_RANGE[1]


def test_mnist_digits_and_blank_images_are_left_alone(mnist_test):
    images = mnist_test.images[:300]
    same = (prepare_pixels(images, STROKE_SPEC) == prepare_pixels(images, KEEP_SPEC)).all(axis=(1, 2))
    assert same.mean() > 0.95  # within MNIST's own range: untouched (1.7 % of the 10k test digits change)
    blank = np.zeros((28, 28), np.float32)
    assert normalize_stroke(blank) is blank


def test_schema_2_specs_without_the_field_behave_as_before(mnist_test):
    text = KEEP_SPEC.to_json()
    assert "stroke" not in json.loads(text)  # written only when on: older specs keep their bytes
    loaded = ModelSpec.from_json(text)
    assert loaded.stroke is Stroke.KEEP and loaded == KEEP_SPEC
    photo = pen_photo(pen=2)
    assert np.array_equal(image_to_pixels(photo, loaded), image_to_pixels(photo, KEEP_SPEC))
    assert ModelSpec.from_json(STROKE_SPEC.to_json()).stroke is Stroke.NORMALIZE


def test_stroke_needs_mnist_framing_and_schema_2():
    data = json.loads(STROKE_SPEC.to_json())
    with pytest.raises(SpecError, match="needs framing 'center_of_mass'"):
        ModelSpec.from_dict({**data, "framing": "resize", "frame_box": None})
    old = {k: v for k, v in data.items() if k not in ("polarity", "background", "framing", "frame_box")}
    with pytest.raises(SpecError, match="schema_version 1 has no field"):
        ModelSpec.from_dict({**old, "schema_version": 1})
