"""Training's evaluation transform and the runtime's preprocessing are the same function.

Training runs the spec's deploy steps (``prepare_pixels``: polarity, background, the MNIST framing) over the
decoded uint8 digits in bulk and feeds ``normalize``; the runtime decodes files one by one. On real MNIST test
images saved as PNG they must agree to 1e-6.
"""

import numpy as np
from PIL import Image

from runtime.preprocess import prepare_pixels, preprocess
from train.cards import get_card
from train.workflow import to_tensors


def test_training_eval_transform_equals_runtime_preprocessing_on_real_images(tmp_path, mnist_test):
    spec = get_card("mnist_cnn").spec()
    images, labels = mnist_test.images[:200], mnist_test.labels[:200]
    x, _ = to_tensors(prepare_pixels(images, spec), labels, spec)  # what train_and_save feeds the model
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    runtime = np.stack([preprocess(p, spec) for p in paths])
    assert runtime.shape == tuple(x.shape)
    assert float(np.abs(runtime - x.numpy()).max()) <= 1e-6
