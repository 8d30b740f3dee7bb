"""The parity gate on the whole real MNIST test set: PyTorch vs the runtime (ONNX Runtime)."""

import numpy as np
import pytest

from harness.parity import MAX_ABS_LOGIT_DIFF, check_parity


@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_cnn"])
def test_runtime_matches_pytorch_on_the_real_test_set(trained_mnist, mnist_test, name):
    ckpt, engine = trained_mnist[name]
    report = check_parity(ckpt.model, ckpt.spec, engine, mnist_test.images, mnist_test.labels)
    assert report.images == 10000
    assert report.agreement == 1.0
    assert report.max_abs_diff <= MAX_ABS_LOGIT_DIFF == 1e-4
    assert report.torch_accuracy == report.runtime_accuracy > 0.9
    assert report.passed and "PASS" in report.summary()


def test_the_gate_fails_for_a_different_model(trained_mnist, mnist_test):
    """A gate that cannot fail is no gate: the MLP's weights against the CNN's ONNX must fail."""
    mlp, _ = trained_mnist["mnist_mlp"]
    _, cnn_engine = trained_mnist["mnist_cnn"]
    report = check_parity(mlp.model, mlp.spec, cnn_engine, mnist_test.images[:500], mnist_test.labels[:500])
    assert not report.passed and report.max_abs_diff > 1e-2
    assert "FAIL" in report.summary()
    assert np.isfinite(report.max_abs_diff)
