"""The digit deploy path in the spec (issue 27): polarity, background flattening and MNIST framing, on real MNIST
digits and on paper-like drawings of them; the same arithmetic for one photo and for a whole data set."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageFilter

from formats.errors import SpecError
from runtime.preprocess import deploy_batch, image_to_pixels, ink_is_dark, prepare_pixels, preprocess
from runtime.spec import Background, Framing, ModelSpec, Polarity

DIGIT_SPEC = ModelSpec(
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


def paper_photo(digit: np.ndarray, side: int = 150, at: tuple[int, int] = (70, 20), shade: bool = True) -> Image.Image:
    """A 28×28 MNIST digit drawn dark on a light, unevenly lit sheet, 60 px tall, somewhere off-centre."""
    ink = np.asarray(Image.fromarray(digit).resize((60, 60), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    cover = np.zeros((side, side), np.float32)
    cover[at[0] : at[0] + 60, at[1] : at[1] + 60] = ink
    light = np.linspace(1.0, 0.6, side)[None, :] if shade else np.ones((1, side))
    sheet = (210 * (1 - cover) + 30 * cover) * light
    return Image.fromarray(np.clip(sheet, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 64, b > 64
    return (a & b).sum() / (a | b).sum()


def test_polarity_is_read_from_the_border(mnist_test):
    digit = mnist_test.images[0]
    stack = np.stack([digit, 255 - digit, np.asarray(paper_photo(digit))[:28, :28]]).astype(np.float32)
    assert ink_is_dark(stack[:2]).tolist() == [False, True]
    assert not ink_is_dark(np.zeros((1, 28, 28), np.float32))[0]  # nothing to read: left as it is


def test_mnist_digits_pass_almost_unchanged(mnist_test):
    """MNIST is already framed this way: the path must be close to the identity on it (issue 27's caveat)."""
    images = mnist_test.images[:300]
    out = prepare_pixels(images, DIGIT_SPEC)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.mean([_iou(a, b) for a, b in zip(out, images)]) > 0.85  # 0.90 measured: faint edges dropped
    rows = np.arange(28)
    mass = out.reshape(len(out), 28, 28).astype(np.float64)
    centre = (mass.sum(axis=2) * rows).sum(axis=1) / mass.sum(axis=(1, 2))
    assert np.abs(centre - 14).max() <= 1.0  # centre of mass at the middle, as LeCun et al. placed it


def test_a_photo_of_paper_becomes_an_mnist_digit(mnist_test):
    digit = mnist_test.images[0]
    framed = image_to_pixels(paper_photo(digit), DIGIT_SPEC)
    assert framed.shape == (28, 28)
    assert np.percentile(framed, 75) == 0  # the shading and the paper are gone: a black field around the ink
    assert _iou(framed, prepare_pixels(digit[None], DIGIT_SPEC)[0]) > 0.5  # the same digit, in the same place
    rows, cols = np.nonzero(framed > 0)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 21  # fitted into the 20×20 box (one pixel of blur)


def test_one_photo_and_a_data_set_get_the_same_pixels(mnist_test):
    images = mnist_test.images[:20]
    one_by_one = np.stack([image_to_pixels(Image.fromarray(i), DIGIT_SPEC) for i in images])
    assert np.array_equal(prepare_pixels(images, DIGIT_SPEC), one_by_one)
    assert np.array_equal(preprocess(images[3], DIGIT_SPEC), preprocess(Image.fromarray(images[3]), DIGIT_SPEC))


def test_fixed_inversion_and_an_empty_image(mnist_test):
    spec = replace(DIGIT_SPEC, polarity=Polarity.INVERT, background=Background.KEEP, framing=Framing.RESIZE)
    spec = replace(spec, frame_box=None)
    assert np.array_equal(deploy_batch(mnist_test.images[:1], spec)[0], 255 - mnist_test.images[0])
    assert deploy_batch(np.full((1, 40, 30), 200, np.uint8), DIGIT_SPEC).max() == 0  # blank paper: nothing inked


def test_version_1_specs_still_load_and_mean_no_deploy_steps():
    old = json.loads(DIGIT_SPEC.to_json())
    for field in ("polarity", "background", "framing", "frame_box"):
        old.pop(field)
    spec = ModelSpec.from_dict({**old, "schema_version": 1})
    assert spec.schema_version == 2 and not spec.has_deploy_steps
    with pytest.raises(SpecError, match="schema_version 1 has no field"):
        ModelSpec.from_dict({**old, "schema_version": 1, "polarity": "invert"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"frame_box": None}, "frame_box must be an integer"),
        ({"frame_box": 40}, "frame_box must be an integer"),
        ({"polarity": "sideways"}, "expected one of"),
    ],
)
def test_bad_deploy_fields_are_refused(changes, message):
    with pytest.raises(SpecError, match=message):
        ModelSpec.from_dict({**json.loads(DIGIT_SPEC.to_json()), **changes})


def test_deploy_steps_are_for_grayscale_models():
    with pytest.raises(SpecError, match="grayscale models only"):
        ModelSpec(
            name="c", labels=("a", "b"), height=8, width=8, color_mode="RGB", mean=(0, 0, 0), std=(1, 1, 1),
            polarity=Polarity.INVERT,
        )  # fmt: skip
