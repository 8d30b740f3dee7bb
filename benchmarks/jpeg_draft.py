"""``python -m benchmarks.jpeg_draft [--out DIR]``: peak memory of preprocessing one huge JPEG, with and without draft.

Writes an 88-megapixel JPEG (just under Pillow's decompression-bomb limit) and preprocesses it for a 224-pixel
RGB model in fresh processes: the baseline decodes at full size (what ``runtime.preprocess`` did before), the
other lets ``load_image`` decode at reduced DCT scale (Pillow's ``draft``). Each process reports its peak RSS
(``VmHWM`` of ``/proc/self/status``: unlike ``ru_maxrss`` it is not inherited from the parent across exec); a
process that only imports the same modules gives the floor. Linux only. Writes
``jpeg_draft.json`` with the machine (``benchmarks.timing.environment``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.timing import environment
from formats.cli import EXIT_OK, command_parser, error_boundary
from formats.writer import Kind, add_force_argument, set_force, write_artifact

SIZE = (10_800, 8_150)  # 88.0 MP; Pillow refuses above 89.5 MP

_CHILD = """
import sys, json, time
import numpy as np
from PIL import Image
from runtime.preprocess import image_to_pixels, load_image, normalize, preprocess
from runtime.spec import ModelSpec
spec = ModelSpec("rgb", ("a", "b"), 224, 224, color_mode="RGB", resize="shorter_side_center_crop",
                 resize_size=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255)
mode, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if mode == "full":
    sample = normalize(image_to_pixels(load_image(path), spec), spec)
elif mode == "draft":
    sample = preprocess(path, spec)
else:
    sample = np.zeros((3, 224, 224), np.float32)
seconds = time.perf_counter() - start
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mb": hwm / 1024, "seconds": seconds,
                  "checksum": float(np.abs(sample).mean())}))
"""


def make_jpeg(path: Path) -> None:
    """A photo-like 88 MP JPEG: smooth gradients plus fine noise (so it compresses like a photo, not a flat fill)."""
    import numpy as np
    from PIL import Image

    w, h = SIZE
    base = Image.linear_gradient("L").resize((w, h))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 40, (h // 8, w // 8), np.uint8)).resize((w, h))
    Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).save(path, quality=85)


def measure(mode: str, path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "jpeg-draft",
        __doc__,
        ["edge jpeg-draft --out /tmp/jpeg-draft --repeats 3   # peak memory of an 88-MP JPEG, draft vs full decode"],
    )
    add_force_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("benchmarks") / "results", help="report folder")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per mode (default 3)")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    with tempfile.TemporaryDirectory(prefix="edge-jpeg-") as tmp:
        jpeg = Path(tmp) / "88mp.jpg"
        make_jpeg(jpeg)
        runs = {mode: [measure(mode, jpeg) for _ in range(args.repeats)] for mode in ("imports", "full", "draft")}
        file_mb = jpeg.stat().st_size / 1e6
    peak = {mode: max(r["peak_rss_mb"] for r in rows) for mode, rows in runs.items()}
    report = {
        "image": {
            "width": SIZE[0],
            "height": SIZE[1],
            "megapixels": SIZE[0] * SIZE[1] / 1e6,
            "file_mb": round(file_mb, 2),
        },
        "model_input": "224x224 RGB, resize_size 256",
        "peak_rss_mb": peak,
        "above_imports_mb": {m: peak[m] - peak["imports"] for m in ("full", "draft")},
        "ratio_full_over_draft": (peak["full"] - peak["imports"]) / max(peak["draft"] - peak["imports"], 1e-9),
        "median_seconds": {m: sorted(r["seconds"] for r in rows)[len(rows) // 2] for m, rows in runs.items()},
        "runs": runs,
        "environment": environment(),
    }
    path = write_artifact(args.out / "jpeg_draft.json", json.dumps(report, indent=2) + "\n", Kind.REPORT)
    print(
        f"88 MP JPEG ({file_mb:.1f} MB) → 224² RGB: peak RSS {peak['full']:.0f} MB full decode, "
        f"{peak['draft']:.0f} MB with draft (imports alone {peak['imports']:.0f} MB); {path}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
