"""The ASL models made for real photographs (issue 22): EfficientNet-Lite0 on grayscale hands, learnt from
Sign-MNIST (``asl_effnet``) and then adapted to a user's own photos (``asl_effnet_adapted``), and the landmark
classifier on MediaPipe's 21 hand points, learnt from Sign-MNIST alone (``asl_landmarks``, zero-shot) or fitted on
a user's photos (``asl_landmarks_adapted``).

A model that saw a user's photos says so in its name (``_adapted``). None of them is in ``edge demo``'s budget:
``docs/asl-models.md`` and ``docs/hands.md`` give the commands and every number measured on real photos.
"""

from __future__ import annotations

from train.cards.course import SIGN_MNIST_HINT
from train.cards.registry import ModelCard, register
from train.data.splits import DatasetKind, sign_mnist_split
from train.models.asl_effnet import AslEffNet, asl_effnet_spec
from train.models.landmarks import LandmarkMLP, landmark_spec
from train.models.transfer import EFFICIENTNET_LITE0


def _asl_effnet(name: str) -> ModelCard:
    """Calibrated and judged on Sign-MNIST like ``asl_cnn`` (the real photos stay a scoreboard)."""
    return ModelCard(
        name,
        lambda spec, weights: AslEffNet(weights),
        lambda labels, size: asl_effnet_spec(name, size),
        DatasetKind.SIGN_MNIST,
        splits=sign_mnist_split,
        data="sign_mnist",
        data_hint=SIGN_MNIST_HINT,
        int8_max_drop_pp=1.0,
        backbone=EFFICIENTNET_LITE0,
    )


register(_asl_effnet("asl_effnet"))
register(_asl_effnet("asl_effnet_adapted"))
# the landmark classifiers read the hand stage's 42 features, not images: no image split to calibrate or gate on.
# Zero-shot, from Sign-MNIST's hands read by the landmarker alone (`train asl_landmarks`, train.asl_landmarks):
register(
    ModelCard(
        "asl_landmarks",
        lambda spec, weights: LandmarkMLP(),
        lambda labels, size: landmark_spec("asl_landmarks"),
        DatasetKind.ASL_PHOTOS,
    )
)
# fitted on a user's own photos by `train asl --adapt DIR` (train.landmarks)
register(
    ModelCard(
        "asl_landmarks_adapted",
        lambda spec, weights: LandmarkMLP(),
        lambda labels, size: landmark_spec("asl_landmarks_adapted"),
        DatasetKind.ASL_PHOTOS,
    )
)
