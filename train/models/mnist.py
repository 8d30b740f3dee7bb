"""The MNIST models of the course: the dense MLP of lab 1 and a small CNN."""

from __future__ import annotations

from torch import nn

from runtime.spec import Background, Framing, ModelSpec, Polarity, ResizePolicy, Stroke
from train.data.mnist import MNIST_LABELS

# The usual MNIST statistics (mean and std of the training pixels in 0..1).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def mnist_spec(name: str) -> ModelSpec:
    """28×28 grayscale, white digit on black as in MNIST, and MNIST's own deploy path for a photo of ink on paper
    (issue 27): strokes made light on dark per image, the paper's shading flattened and the contrast stretched,
    a stroke far thinner or thicker than MNIST's (a fine pen, a marker) brought to MNIST's width, then the digit's
    bounding box fitted into 20×20 (aspect kept) and centred by centre of mass in 28×28 — what LeCun et al. did to
    the NIST digits. MNIST's own images pass through nearly unchanged; training, calibration,
    the gate and the runtime all apply it (``runtime.preprocess``)."""
    return ModelSpec(
        name=name,
        labels=MNIST_LABELS,
        height=28,
        width=28,
        resize=ResizePolicy.SHORTER_SIDE_CENTER_CROP,
        resize_size=28,
        mean=(MNIST_MEAN,),
        std=(MNIST_STD,),
        polarity=Polarity.LIGHT_ON_DARK,
        background=Background.FLATTEN,
        framing=Framing.CENTER_OF_MASS,
        frame_box=20,
        stroke=Stroke.NORMALIZE,
    )


class MnistMLP(nn.Module):
    """Lab 1: Flatten → 784→512 ReLU → 512 ReLU → 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        return self.net(x)


class MnistCNN(nn.Module):
    """Two conv blocks (32, 64 channels) and a 128-unit dense layer; ≈ 99 % in a few epochs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 32×14×14
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 64×7×7
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
