"""The course's doggy door on the real EfficientNet-Lite0 ImageNet weights and the course photos."""

import json

import pytest

from runtime.apps.doggy_door import Decision, main


@pytest.fixture(scope="module")
def imagenet_onnx(tmp_path_factory):
    from export.onnx_export import export_fp32
    from train.cards import get_card

    entry = get_card("efficientnet_lite0_imagenet")
    spec = entry.spec()
    assert len(spec.labels) == 1000 and spec.labels[263] == "Pembroke"
    return export_fp32(entry.build(spec, "imagenet"), spec, tmp_path_factory.mktemp("imagenet"))


@pytest.mark.parametrize(
    "photo, decision",
    [
        ("happy_dog.jpg", Decision.LET_IN),
        ("Penny.jpg", Decision.LET_IN),
        ("brown_bear.jpg", Decision.KEEP_OUT),
        ("sleepy_cat.jpg", Decision.KEEP_INSIDE),
    ],
)
def test_the_door_decides_right_on_the_course_photos(imagenet_onnx, data_dir, photo, decision, capsys):
    assert main(["--engine", str(imagenet_onnx), str(data_dir / "dli_images" / photo), "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["decision"] == decision.name


def test_a_model_that_is_not_imagenet_is_refused(trained_mnist, data_dir, capsys):
    engine = trained_mnist["mnist_cnn"][1]
    assert main(["--engine", str(engine), str(data_dir / "dli_images" / "Penny.jpg")]) == 2
    assert "needs a 1000-class ImageNet model" in capsys.readouterr().err
