import numpy as np
import pytest
from PIL import Image

from formats.errors import InputError
from runtime.preprocess import (
    find_images,
    load_image,
    normalize,
    preprocess,
    preprocess_batch,
    to_color_mode,
)
from runtime.spec import ColorMode, InputDType, ModelSpec, ResizePolicy

GRAY = ModelSpec(name="g", labels=tuple("0123456789"), height=28, width=28, mean=(0.5,), std=(0.25,))
RGB = ModelSpec(
    name="c",
    labels=("a", "b"),
    height=32,
    width=32,
    color_mode=ColorMode.RGB,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    resize=ResizePolicy.SHORTER_SIDE_CENTER_CROP,
    resize_size=36,
)


@pytest.fixture(scope="module")
def digit(mnist_test) -> np.ndarray:
    return mnist_test.images[0]


@pytest.fixture(scope="module")
def photo(data_dir) -> Image.Image:
    return load_image(data_dir / "dli_images" / "A.jpg")


def expected_gray(pixels: np.ndarray) -> np.ndarray:
    return ((pixels.astype(np.float32) / 255.0 - 0.5) / 0.25)[None]


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_gray_files_decode_to_the_exact_pixels(tmp_path, digit, suffix):
    path = tmp_path / f"digit{suffix}"
    Image.fromarray(digit).save(path)
    got = preprocess(path, GRAY)
    assert got.shape == (1, 28, 28) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected_gray(digit), atol=1e-6)


def test_jpeg_decodes_close_to_the_source(tmp_path, digit):
    Image.fromarray(digit).save(tmp_path / "d.jpg", quality=95)
    got = preprocess(tmp_path / "d.jpg", GRAY)
    assert np.abs(got - expected_gray(digit)).mean() < 0.05


def test_rgb_rgba_and_palette_inputs_become_gray(tmp_path, digit):
    rgb = np.stack([digit] * 3, axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.dstack([rgb, np.full_like(digit, 255)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "p.png")
    for name in ("rgb.png", "rgba.png"):
        np.testing.assert_allclose(preprocess(tmp_path / name, GRAY), expected_gray(digit), atol=1e-6)
    # A 256-colour palette of a gray image is lossless up to palette quantization.
    assert np.abs(preprocess(tmp_path / "p.png", GRAY) - expected_gray(digit)).max() < 0.1


def test_transparent_pixels_are_composited_on_black():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200  # colour under fully transparent alpha must not leak through
    rgba[0, 0] = (255, 255, 255, 255)
    gray = np.asarray(to_color_mode(Image.fromarray(rgba, "RGBA"), ColorMode.GRAY))
    assert gray[0, 0] == 255 and gray[1:, 1:].max() == 0


def test_16_bit_images_keep_their_full_range(tmp_path, digit):
    wide = digit.astype(np.uint16) * 257  # 0..255 → 0..65535
    Image.fromarray(wide).save(tmp_path / "d16.png")
    img = Image.open(tmp_path / "d16.png")
    assert img.mode.startswith("I")
    np.testing.assert_allclose(preprocess(tmp_path / "d16.png", GRAY), expected_gray(digit), atol=1e-6)
    np.testing.assert_allclose(preprocess(wide, GRAY), expected_gray(digit), atol=1e-6)


def test_colour_photo_to_gray_model_is_resized(photo):
    got = preprocess(photo, GRAY)
    assert got.shape == (1, 28, 28)
    ref = np.asarray(photo.convert("L").resize((28, 28), Image.Resampling.BILINEAR), np.float32)
    np.testing.assert_allclose(got, expected_gray(ref), atol=1e-6)


def test_shorter_side_center_crop_matches_the_torchvision_recipe(photo):
    got = preprocess(photo, RGB)
    assert got.shape == (3, 32, 32)
    w, h = photo.size
    short = 36
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    resized = photo.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    left, top = round((size[0] - 32) / 2), round((size[1] - 32) / 2)
    crop = np.asarray(resized.crop((left, top, left + 32, top + 32)), np.float32) / 255.0
    mean, std = np.array(RGB.mean, np.float32), np.array(RGB.std, np.float32)
    np.testing.assert_allclose(got, ((crop - mean) / std).transpose(2, 0, 1), atol=1e-6)


def test_raw_arrays_take_the_fast_path_with_identical_results(digit):
    via_pillow = preprocess(Image.fromarray(digit), GRAY)
    np.testing.assert_array_equal(preprocess(digit, GRAY), via_pillow)
    np.testing.assert_array_equal(preprocess(digit[..., None], GRAY), via_pillow)
    np.testing.assert_allclose(preprocess(digit.astype(np.float32), GRAY), via_pillow, atol=1e-6)


def test_normalize_on_a_stack_equals_per_image(mnist_test):
    stack = mnist_test.images[:16]
    batched = normalize(stack, GRAY)
    assert batched.shape == (16, 1, 28, 28)
    for i in range(16):
        np.testing.assert_array_equal(batched[i], preprocess(stack[i], GRAY))


def test_uint8_input_specs_only_relayout(photo):
    spec = ModelSpec(
        name="u8",
        labels=("a", "b"),
        height=8,
        width=8,
        color_mode=ColorMode.RGB,
        mean=(0, 0, 0),
        std=(1, 1, 1),
        input_dtype=InputDType.UINT8,
    )
    got = preprocess(photo, spec)
    assert got.dtype == np.uint8 and got.shape == (3, 8, 8)


def test_batches_stack_in_order(mnist_test):
    batch = preprocess_batch(list(mnist_test.images[:5]), GRAY)
    assert batch.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(batch[3], preprocess(mnist_test.images[3], GRAY))
    with pytest.raises(InputError, match="empty batch"):
        preprocess_batch([], GRAY)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.mkdir(), p)[1], "is a directory"),
        (lambda p: (p.write_bytes(b""), p)[1], "not a readable image"),
        (lambda p: (p.write_text("label,pixel1\n1,2\n"), p)[1], "not a readable image"),
    ],
)
def test_bad_files_name_the_file(tmp_path, make, message):
    path = make(tmp_path / "bad.png")
    with pytest.raises(InputError, match=message) as info:
        preprocess(path, GRAY)
    assert "bad.png" in str(info.value)


def test_truncated_image_is_reported(tmp_path, photo):
    photo.save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png: image is truncated or corrupt"):
        preprocess(tmp_path / "cut.png", GRAY)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((2, 2, 2, 2), np.uint8), "is not an image"),
        (np.zeros((0, 5), np.uint8), "array is empty"),
        (np.full((4, 4), np.nan, np.float32), "NaN or Inf"),
        (np.full((4, 4), 300.0, np.float32), "expected pixels in 0..255"),
        (np.zeros((4, 4), np.complex64), "unsupported array dtype"),
    ],
)
def test_bad_arrays_are_refused(array, message):
    with pytest.raises(InputError, match=message):
        preprocess(array, GRAY)


def test_find_images_lists_image_files_sorted(tmp_path, digit):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.PNG", "sub/c.jpg"):
        Image.fromarray(digit).save(tmp_path / name, format="PNG")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == ["a.PNG", "b.png", "sub/c.jpg"]
