"""Property-based fuzzing (hypothesis) of preprocessing and the data loaders: never an unhandled exception,
never a silently wrong shape."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from formats.errors import InputError, SpecError
from runtime.preprocess import load_image, preprocess
from runtime.spec import ModelSpec
from train.cards import get_card
from train.data.mnist import parse_idx
from train.data.sign_mnist import parse_sign_mnist
from train.errors import DataError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SPECS = [get_card("mnist_cnn").spec(), get_card("efficientnet_lite0_transfer").spec(labels=("a", "b"), image_size=64)]

dtypes = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_, np.int8])
shapes = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=48),
    st.tuples(st.integers(1, 48), st.integers(1, 48), st.integers(1, 5)),
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
)


@FUZZ
@given(array=hnp.arrays(dtypes, shapes), which=st.integers(0, len(SPECS) - 1))
def test_preprocess_any_array_gives_the_spec_shape_or_input_error(array, which):
    spec = SPECS[which]
    try:
        out = preprocess(array, spec)
    except InputError:
        return
    assert out.shape == spec.input_shape and out.dtype == np.float32
    assert np.isfinite(out).all()


@FUZZ
@given(
    array=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 30), st.integers(1, 30), st.sampled_from([1, 3])),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
)
def test_float_arrays_with_nan_or_inf_are_refused_not_propagated(array):
    try:
        out = preprocess(array, SPECS[0])
    except InputError:
        return
    assert np.isfinite(out).all()


@FUZZ
@given(data=st.binary(max_size=2048), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a"]))
def test_random_bytes_as_an_image_file(tmp_path, data, prefix):
    path = tmp_path / "fuzz.img"
    path.write_bytes(prefix + data)
    try:
        image = load_image(path)
    except InputError as exc:
        assert str(path) in str(exc)
        return
    assert image.size[0] > 0 and image.size[1] > 0


cell = st.one_of(st.integers(-5, 300).map(str), st.sampled_from(["", "x", "1.5", " 7", "nan"]))


@FUZZ
@given(rows=st.lists(st.lists(cell, min_size=0, max_size=790), max_size=4), header=st.booleans())
def test_sign_mnist_parser_on_random_rows(rows, header):
    lines = (["label," + ",".join(f"pixel{i}" for i in range(1, 785))] if header else []) + [",".join(r) for r in rows]
    try:
        split = parse_sign_mnist("\n".join(lines), "fuzz.csv")
    except DataError:
        return
    assert split.images.shape == (len(split.labels), 28, 28) and split.images.dtype == np.uint8
    assert split.labels.min(initial=0) >= 0 and split.labels.max(initial=0) < 24


@FUZZ
@given(
    data=st.binary(max_size=256),
    magic=st.sampled_from([b"", b"\x00\x00\x08\x01", b"\x00\x00\x08\x03", b"\x00\x00\x0d\x02"]),
)
def test_idx_parser_on_random_bytes(data, magic):
    try:
        array = parse_idx(magic + data, "fuzz.idx")
    except DataError:
        return
    assert array.nbytes == len(magic + data) - 4 - 4 * (magic + data)[3]


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "name",
                "labels",
                "height",
                "width",
                "mean",
                "std",
                "scale",
                "colour",
                "color_mode",
                "resize",
                "input_dtype",
            ]
        ),
        st.one_of(st.integers(-3, 300), st.text(max_size=5), st.lists(st.floats(), max_size=3), st.none()),
    )
)
def test_spec_from_any_dict_is_valid_or_a_spec_error(fields):
    try:
        spec = ModelSpec.from_dict(fields)
    except SpecError:
        return
    assert spec.height > 0 and spec.width > 0 and spec.num_classes >= 1
