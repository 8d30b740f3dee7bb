"""The course's doggy door on an ImageNet classifier: dogs come in, cats stay inside, anything else stays out.

``python -m runtime.apps.doggy_door --engine efficientnet_lite0_imagenet.fp32.onnx photo.jpg ...``

ImageNet classes 151–268 are dogs and 281–285 cats (the course's ranges). The decision uses the
top-1 class of a 1000-class model whose spec lists the ImageNet labels in order.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from formats.cli import EXIT_OK, EXIT_SOME_INPUTS_BAD, EXIT_USER_ERROR, command_parser, error_boundary
from formats.errors import InputError, RuntimeToolkitError, SpecError
from runtime.model import Classifier
from runtime.postprocess import Prediction

DOG_CLASSES = range(151, 269)
CAT_CLASSES = range(281, 286)


class Decision(str, enum.Enum):
    LET_IN = "dog: the door opens"
    KEEP_INSIDE = "cat: stays inside"
    KEEP_OUT = "not a dog or a cat: stays outside"


@dataclass(frozen=True)
class DoorResult:
    path: str
    decision: Decision
    prediction: Prediction


def decide(prediction: Prediction) -> Decision:
    index = prediction.indices[0]
    if index in DOG_CLASSES:
        return Decision.LET_IN
    if index in CAT_CLASSES:
        return Decision.KEEP_INSIDE
    return Decision.KEEP_OUT


def check_imagenet(classifier: Classifier) -> None:
    if classifier.spec.num_classes != 1000:
        raise SpecError(
            f"{classifier.source}: the doggy door needs a 1000-class ImageNet model, this one has "
            f"{classifier.spec.num_classes} classes; export one with "
            "`python -m export --pretrained efficientnet_lite0_imagenet --out DIR`"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "doggy-door",
        __doc__,
        [
            "edge export --pretrained efficientnet_lite0_imagenet --out artifacts/imagenet",
            "edge doggy-door --engine artifacts/imagenet/efficientnet_lite0_imagenet.fp32.onnx dog.jpg cat.jpg",
        ],
    )
    parser.add_argument("--engine", type=Path, required=True, help="an ImageNet classifier (.onnx)")
    parser.add_argument("images", nargs="+", type=Path, help="photos to judge: dog in, anything else out")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results, errors = [], []
    try:
        with Classifier.from_path(args.engine) as classifier:
            check_imagenet(classifier)
            for path in args.images:
                try:
                    prediction = classifier.predict([path], k=3)[0]
                except InputError as exc:
                    errors.append(str(exc))
                    continue
                results.append(DoorResult(str(path), decide(prediction), prediction))
    except RuntimeToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        print(
            json.dumps(
                [{"input": r.path, "decision": r.decision.name, **r.prediction.to_dict()} for r in results], indent=2
            )
        )
    else:
        for r in results:
            print(f"{r.path}: {r.decision.value} ({r.prediction.label}, p={r.prediction.probability:.2f})")
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_SOME_INPUTS_BAD if errors else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
