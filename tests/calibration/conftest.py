import pytest


@pytest.fixture(scope="session")
def calibrated_cnn(trained_mnist, data_dir):
    """The briefly trained MNIST CNN with every variant written by the real pipeline (128 samples, entropy)."""
    from calibration.pipeline import CalibrationOptions, calibrate_model

    ckpt, onnx_path = trained_mnist["mnist_cnn"]
    result = calibrate_model("mnist_cnn", onnx_path.parent, data_dir, CalibrationOptions(size=128), log=lambda *_: None)
    return onnx_path.parent, result
