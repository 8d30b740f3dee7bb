"""The ASL landmark classifier: MediaPipe's 21 hand points (as ``runtime.hands.landmark_features`` makes them) →
24 letters, by a one-hidden-layer MLP. The feature standardisation is part of the module (buffers), so the ONNX
file takes the raw features and nothing is re-typed on the device.
"""

from __future__ import annotations

import torch
from torch import nn

from runtime.hands import FEATURE_SIZE
from runtime.spec import ColorMode, InputKind, ModelSpec
from train.data.sign_mnist import ASL_LABELS

HIDDEN = 128


def landmark_spec(name: str = "asl_landmarks_adapted", labels: tuple[str, ...] = ASL_LABELS) -> ModelSpec:
    """Input (N, 1, 1, FEATURE_SIZE) float32 features; output logits over the letters."""
    return ModelSpec(
        name=name,
        labels=labels,
        height=1,
        width=FEATURE_SIZE,
        color_mode=ColorMode.GRAY,
        scale=1.0,
        input_name="features",
        input_kind=InputKind.HAND_LANDMARKS,
    )


class LandmarkMLP(nn.Module):
    """standardise → Linear(F, 128) → ReLU → Dropout → Linear(128, classes)."""

    def __init__(self, classes: int = len(ASL_LABELS), features: int = FEATURE_SIZE, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, classes))

    def set_standardisation(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0) + 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x.flatten(1) - self.mean) / self.std)
