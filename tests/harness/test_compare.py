"""The comparison harness: PyTorch as a backend, several backends on the same real batches, typed comparisons."""

import numpy as np
import pytest
import torch

from formats.errors import BackendInputError
from harness.compare import Batch, Feed, Timing, compare_results, file_runner, run_backends, torch_runner
from harness.torch_backend import TorchBackend
from runtime.backends.onnxruntime import DISABLED_OPTIMIZERS_KEY


def test_torch_backend_has_the_runtime_lifecycle_and_input_checks(trained_mnist, mnist_test):
    ckpt, _ = trained_mnist["mnist_cnn"]
    backend = TorchBackend(ckpt.model, ckpt.spec)
    x = np.zeros((2, *ckpt.spec.input_shape), np.float32)
    with pytest.raises(RuntimeError, match="not active"):
        backend.infer({ckpt.spec.input_name: x})
    with backend:
        assert backend.active and backend.inputs[0].shape == (None, 1, 28, 28)
        with pytest.raises(BackendInputError, match="dtype float64"):
            backend.infer({ckpt.spec.input_name: x.astype(np.float64)})
        out = backend.infer({ckpt.spec.input_name: x})[ckpt.spec.output_name]
    assert not backend.active
    with torch.inference_mode():
        np.testing.assert_array_equal(out, ckpt.model.eval()(torch.from_numpy(x)).numpy())


def test_pytorch_and_the_runtime_on_the_same_batches(trained_mnist, mnist_test):
    ckpt, onnx_path = trained_mnist["mnist_cnn"]
    batches = [
        Batch(mnist_test.images[:300], mnist_test.labels[:300]),
        Batch(mnist_test.images[300:500], mnist_test.labels[300:500]),
    ]
    runners = [torch_runner(ckpt.model, ckpt.spec), file_runner(onnx_path, "onnx", feed=Feed.PER_IMAGE)]
    results = run_backends(runners, batches, Timing(calls=2))
    assert list(results) == ["pytorch", "onnx"]
    onnx = results["onnx"]
    assert onnx.outputs.shape == (500, 10) and onnx.batch_sizes == [300, 200]
    assert [len(t) for t in onnx.latencies_ms] == [2, 2] and onnx.median_ms(1) > 0
    comparison = compare_results(results["pytorch"], onnx, ckpt.spec.labels)
    assert comparison.agreement == 1.0 and comparison.max_abs_diff < 1e-4
    assert comparison.accuracy == comparison.reference_accuracy == float((onnx.top1 == mnist_test.labels[:500]).mean())
    assert len(comparison.per_class) == 10 and sum(c.images for c in comparison.per_class) == 500
    assert all(c.change_pp == 0.0 for c in comparison.per_class)


def test_a_different_model_shows_up_in_the_comparison(trained_mnist, mnist_test):
    mlp, _ = trained_mnist["mnist_mlp"]
    _, cnn_onnx = trained_mnist["mnist_cnn"]
    batch = [Batch(mnist_test.images[:200], mnist_test.labels[:200])]
    results = run_backends([torch_runner(mlp.model, mlp.spec, "mlp"), file_runner(cnn_onnx, "cnn")], batch)
    comparison = compare_results(results["mlp"], results["cnn"], mlp.spec.labels)
    assert comparison.max_abs_diff > 1e-2 and comparison.mean_squared_diff > 0 and comparison.agreement < 1.0
    assert any(c.change_pp != 0.0 for c in comparison.per_class)


def test_runner_names_must_be_unique_and_every_batch_gets_a_timed_call(trained_mnist):
    _, onnx_path = trained_mnist["mnist_cnn"]
    with pytest.raises(ValueError, match="unique"):
        run_backends([file_runner(onnx_path, "a"), file_runner(onnx_path, "a")], [])
    with pytest.raises(ValueError, match="at least 1"):
        Timing(calls=0)


def test_a_file_runs_with_the_session_settings_it_is_deployed_with(calibrated_cnn, mnist_test):
    """The int8 CPU form asks ONNX Runtime to leave one graph rewrite off; the harness's session honours it
    (the sensitivity ranking's latencies used to come from a session that ignored it)."""
    folder, _ = calibrated_cnn
    runner = file_runner(folder / "mnist_cnn.int8.ort.onnx", probabilities=True)
    with runner.classifier:
        options = runner.classifier.backend.session.get_session_options()
        assert (
            options.get_session_config_entry("optimization.disable_specified_optimizers")
            == (runner.classifier.backend.metadata()[DISABLED_OPTIMIZERS_KEY])
        )
        result = run_backends([runner], [Batch(mnist_test.images[:8])])[runner.name]
    np.testing.assert_allclose(result.outputs.sum(1), 1.0, rtol=1e-5)  # probabilities, as asked
    assert result.labels is None and result.accuracy is None
