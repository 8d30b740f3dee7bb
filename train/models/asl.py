"""The ASL (Sign Language MNIST) CNN of course labs 3–4."""

from __future__ import annotations

from torch import nn

from runtime.spec import ModelSpec, ResizePolicy
from train.data.sign_mnist import ASL_LABELS


def asl_spec(name: str = "asl_cnn") -> ModelSpec:
    """28×28 grayscale scaled to 0..1 as the course does; colour photos are converted to grey.

    A non-square frame is brought to 28×28 by its centre square (shorter side to 28, centre crop): on camera-like
    re-shots of the test split (``calibration.robustness``, 4:3 / 3:4 / 16:9 frames) that kept 99.5 % where
    stretching kept 68 % and letterboxing 50 % (course-augmented model, 200 re-shots; README "Robustness").
    """
    return ModelSpec(
        name=name,
        labels=ASL_LABELS,
        height=28,
        width=28,
        resize=ResizePolicy.SHORTER_SIDE_CENTER_CROP,
        resize_size=28,
        mean=(0.0,),
        std=(1.0,),
    )


def _block(cin: int, cout: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=1, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.MaxPool2d(2, stride=2))
    return layers


class AslCNN(nn.Module):
    """Conv3×3 → BN → ReLU → (Dropout) → MaxPool with 25, 50, 75 channels; Linear 512 → 24."""

    def __init__(self, num_classes: int = len(ASL_LABELS)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_block(1, 25, 0.0),  # 25×14×14
            *_block(25, 50, 0.2),  # 50×7×7
            *_block(50, 75, 0.0),  # 75×3×3
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(75 * 3 * 3, 512),
            nn.Dropout(0.3),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
