"""The course's models as cards: the MNIST MLP and CNN (lab 1), the ASL CNN (labs 2-4), the transfer models and
the whole pretrained ImageNet classifiers (lab 5, the doggy door).

The demo budgets are small enough for a 2-core CPU; the targets are what these budgets reach reliably here (the
issues' full-run targets and what full runs reached are in the docs). The trainers are imported inside the demo
hooks: they look cards up by name themselves, so this module must not need them to be loaded first.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from train.cards.registry import FULL_BUDGET, DemoBudget, DemoPlan, ModelCard, register
from train.data.splits import DatasetKind, image_folder_split, mnist_split, sign_mnist_split
from train.errors import TrainError
from train.loop import TrainConfig
from train.models.asl import AslCNN, asl_spec
from train.models.mnist import MnistCNN, MnistMLP, mnist_spec
from train.models.transfer import (
    EFFICIENTNET_LITE0,
    VGG16,
    BackboneInfo,
    TransferModel,
    imagenet_labels,
    transfer_spec,
)

SIGN_MNIST_HINT = "download the Sign-MNIST CSVs from Kaggle (datamunge/sign-language-mnist)"
FLOWERS_HINT = "put an ImageFolder there: train/<class>/*.jpg and val/<class>/*.jpg (e.g. TensorFlow flower_photos)"


def _train_mnist(card: ModelCard, data_dir: Path, out: Path, progress: bool, budget: DemoBudget = FULL_BUDGET) -> dict:
    from train.mnist import MNIST_PAPER, train_mnist

    config = budget.configs(card.demo)[0]
    return train_mnist(card.name, data_dir, out, config, limit=budget.limit, progress=progress, augment=MNIST_PAPER)


def _train_asl(card: ModelCard, data_dir: Path, out: Path, progress: bool, budget: DemoBudget = FULL_BUDGET) -> dict:
    from train.asl import train_asl

    config = budget.configs(card.demo)[0]
    return train_asl(data_dir, out, config, limit=budget.limit, progress=progress, model_name=card.name)


def _train_transfer(
    card: ModelCard, data_dir: Path, out: Path, progress: bool, budget: DemoBudget = FULL_BUDGET
) -> dict:
    from train.transfer import train_transfer

    head, finetune = budget.configs(card.demo)  # the flowers folder is small: a smoke run only shortens epochs
    return train_transfer(
        card.backbone.name, "imagenet", data_dir / card.data, out, head=head, finetune=finetune, progress=progress
    )


def _mnist_samples(data_dir: Path, out: Path) -> list[Path]:
    """A few real test digits as PNG files, to run the deploy CLI the way a user would."""
    test = mnist_split(None, data_dir, "test")
    folder = out / "samples" / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(6):
        paths.append(folder / f"test{i:04d}_label{test.labels[i]}.png")
        Image.fromarray(test.images[i]).save(paths[-1])
    return paths


def _asl_samples(data_dir: Path, out: Path) -> list[Path]:
    return [data_dir / "dli_images" / "A.jpg", data_dir / "dli_images" / "B.jpg"]  # colour photos, as in lab 4


def _flower_samples(data_dir: Path, out: Path) -> list[Path]:
    return [sorted((data_dir / "flowers" / "val" / c).iterdir())[0] for c in ("daisy", "roses", "sunflowers")]


def _mnist(name: str, module, target: float) -> ModelCard:
    return ModelCard(
        name,
        lambda spec, weights: module(),
        lambda labels, size: mnist_spec(name),
        DatasetKind.MNIST,
        splits=mnist_split,
        data="mnist",
        int8_max_drop_pp=0.5,
        demo=DemoPlan(
            target,
            "MNIST test (10k)",
            (TrainConfig(epochs=5),),
            _train_mnist,
            _mnist_samples,
            real_photos="digits_real",
        ),
    )


def _transfer(backbone: BackboneInfo, demo: DemoPlan | None = None) -> ModelCard:
    name = f"{backbone.name}_transfer"

    def make_spec(labels, size):
        if not labels:
            raise TrainError(f"{name} needs the class labels of its data set")
        return transfer_spec(name, backbone, tuple(labels), size or 224)

    return ModelCard(
        name,
        lambda spec, weights: TransferModel(backbone, spec.num_classes, weights),
        make_spec,
        DatasetKind.IMAGE_FOLDER,
        splits=image_folder_split,
        data="flowers",
        data_hint=FLOWERS_HINT,
        int8_max_drop_pp=1.0,
        demo=demo,
        backbone=backbone,
    )


def _imagenet(backbone: BackboneInfo) -> ModelCard:
    """The whole pretrained ImageNet classifier (the doggy door's model), no training."""
    name = f"{backbone.name}_imagenet"
    return ModelCard(
        name,
        lambda spec, weights: backbone.load(weights),
        lambda labels, size: transfer_spec(name, backbone, imagenet_labels(), size or 224),
        DatasetKind.IMAGENET,
        backbone=backbone,
    )


register(_mnist("mnist_mlp", MnistMLP, 0.975))
# With `--augment paper` (issue 27) the 5-epoch demo budget reached 98.98 % on MNIST test here (and 93.7 % on real
# digit photos, 11 % before): 0.2 pp of MNIST traded for the paper. The 99.0 % is missed by 2 images; the
# demo's check is what this budget reaches reliably.
register(_mnist("mnist_cnn", MnistCNN, 0.985))
register(
    ModelCard(
        "asl_cnn",
        lambda spec, weights: AslCNN(),
        lambda labels, size: asl_spec("asl_cnn"),
        DatasetKind.SIGN_MNIST,
        splits=sign_mnist_split,
        data="sign_mnist",
        data_hint=SIGN_MNIST_HINT,
        int8_max_drop_pp=0.5,
        demo=DemoPlan(
            0.99,
            "Sign-MNIST test (7,172)",
            (TrainConfig(epochs=8, batch_size=32),),
            _train_asl,
            _asl_samples,
            real_photos="asl_real/test",
        ),
    )
)
register(_transfer(VGG16))
# EfficientNet-Lite0 on the 400-photo flowers subset: 1e-6 (the course's VGG16 rate) does not move this backbone
# in a demo's few epochs; 2e-4 with label smoothing plateaus at about 90.5 % val here.
register(
    _transfer(
        EFFICIENTNET_LITE0,
        DemoPlan(
            0.90,
            "flowers val (200)",
            (
                TrainConfig(epochs=3, lr=3e-3, batch_size=32, val_fraction=0.2, label_smoothing=0.1),
                TrainConfig(epochs=8, lr=2e-4, batch_size=32, label_smoothing=0.1),
            ),
            _train_transfer,
            _flower_samples,
        ),
    )
)
register(_imagenet(VGG16))
register(_imagenet(EFFICIENTNET_LITE0))
