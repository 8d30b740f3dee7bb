"""The main job on the embedded defaults: train → export → calibrate → build → parity → benchmark.

``python -m pipeline.demo [--data-dir DIR] [--out artifacts] [--models ...]`` covers the three
course models (MNIST MLP and CNN, the ASL CNN, EfficientNet-Lite0 transfer learning on flowers)
and the doggy door, prints a short report and writes ``<out>/demo_report.json``. Exit status 1
when a model misses its accuracy target or its parity gate. The flow itself (and its typed reports) is
``pipeline.flow``; this module picks the models, prints the tables and writes the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.timing import environment
from formats.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary
from formats.writer import Kind, add_force_argument, set_force, write_artifact
from pipeline.flow import run_doggy_door, run_model
from train.cards import SMOKE_TRAIN_IMAGES, DemoBudget, demo_cards
from train.data.paths import DATA_DIR_ENV, resolve_data_dir


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "demo",
        __doc__,
        [
            "edge demo --data-dir ../data --out artifacts          # = make demo, every model",
            "edge demo --models mnist_cnn --no-doggy-door          # one model, a few minutes",
            "edge demo --smoke --models mnist_mlp,mnist_cnn        # the path only: 1 epoch, 12k images",
        ],
    )
    add_force_argument(parser)
    parser.add_argument("--data-dir", default=None, help=f"data root (default ${DATA_DIR_ENV} or ./data)")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="artifact folder (default artifacts)")
    parser.add_argument(
        "--models", default=",".join(c.name for c in demo_cards()), help="comma-separated subset of the demo models"
    )
    parser.add_argument("--no-doggy-door", action="store_true", help="skip the doggy-door example")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"train 1 epoch per phase on at most {SMOKE_TRAIN_IMAGES:,} images: checks that every step runs, "
        "not the accuracy targets (what make test runs)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _verdict_word(row: dict) -> str:
    """As the gate's table: PASS shown within budget, pass only for want of data (inconclusive), FAIL a real miss."""
    return "FAIL" if not row["passed"] else "PASS" if row["verdict"] == "within budget" else "pass"


def print_precision_report(rows: list[dict]) -> None:
    done = [r for r in rows if "skipped" not in r]
    if not done:
        return
    print("\n== accuracy gate (test split, ONNX Runtime CPU vs FP32 PyTorch)")
    print("| model | precision | accuracy (95 % CI) | Δ pp (95 % CI) | b / c | agreement | budget | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for r in done:
        for g in r["gate"]:
            low, high = (100 * x for x in g["accuracy_ci"])
            d_low, d_high = (100 * x for x in g["difference_ci"])
            print(
                f"| {r['model']} | {g['precision']} | {g['accuracy']:.4f} ({low:.1f}–{high:.1f} %) "
                f"| {0.0 - g['drop_pp'] + 0.0:+.2f} ({d_low:+.1f} to {d_high:+.1f}) "
                f"| {g['mcnemar_b']} / {g['mcnemar_c']} | {g['agreement']:.2%} | {g['budget']} "
                f"| {_verdict_word(g)}: {g['verdict_text']} |"
            )
    print("\n== engines (TensorRT-family builds on this machine)")
    for r in done:
        for e in r["engines"]:
            status = (
                (
                    f"built with {e['flavour']} {e['trt_version']} in {e['build_seconds']:.1f} s, "
                    f"{e['bytes'] / 1e6:.2f} MB ({e['reason']})"
                )
                if e["built"]
                else f"NOT BUILT: {e['reason']}"
            )
            print(f"{r['model']} {e['precision']}: {status}")
    print("\n== comparison (median ms end to end from decoded images; ratios in this run)")
    print("| model | candidate | bs1 ms | bs1 × eager | bs64 ms | bs64 × ORT FP32 | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for r in done:
        by = {}
        for c in r["compare"]:
            by.setdefault(c["candidate"], {})[c["batch"]] = c
        for name, b in by.items():
            acc = b[1]["accuracy"]
            print(
                f"| {r['model']} | {name} | {b[1]['median_ms']:.3f} | {b[1]['vs_torch']:.2f} "
                f"| {b[64]['median_ms']:.3f} | {b[64]['vs_ort_fp32']:.2f} | {'' if acc is None else f'{acc:.4f}'} |"
            )


def _target(row: dict) -> str:
    return f"{row['target_accuracy']:.3f}" if row.get("target_checked", True) else "not checked (smoke)"


def print_report(rows: list[dict]) -> None:
    print(
        "\n| model | held-out split | accuracy | target | parity | max abs dlogit"
        " | runtime bs1 ms | torch bs1 ms | speedup |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['model']} | SKIPPED: {r['skipped']} | | | | | | | |")
            continue
        lat = r["latency"]
        print(
            f"| {r['model']} | {r['held_out']} | {r['accuracy']:.4f} | {_target(r)} "
            f"| {'PASS' if r['parity']['passed'] else 'FAIL'} | {r['parity']['max_abs_diff']:.1e} "
            f"| {lat['runtime']['median_ms']:.3f} | {lat['torch_eager']['median_ms']:.3f} | {lat['speedup']:.2f}x |"
        )
    for r in rows:
        if "robustness" in r:
            print(f"{r['model']} {r['robustness']['line']}")
        if "real_photos" in r:
            real = r["real_photos"]
            print(f"{r['model']} {real['line'] if 'line' in real else 'real photos: SKIPPED, ' + real['skipped']}")


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    known = {c.name: c for c in demo_cards()}
    unknown = [m for m in wanted if m not in known]
    if unknown:
        print(f"error: unknown demo model(s) {unknown}; choose from {sorted(known)}", file=sys.stderr)
        return EXIT_USER_ERROR
    data_dir = resolve_data_dir(args.data_dir)
    rows = []
    for name in wanted:
        reason = known[name].missing_data(data_dir)
        if reason:
            print(f"\n== {name}: SKIPPED, {reason}")
            rows.append({"model": name, "skipped": reason})
        else:
            report = run_model(
                known[name], data_dir, args.out, not args.no_progress, say=print, budget=DemoBudget(args.smoke)
            )
            rows.append(report.to_dict())
    door = None
    if not args.no_doggy_door and not (data_dir / "dli_images").is_dir():
        print(f"\n== doggy door: SKIPPED, {data_dir / 'dli_images'} (the course photos) not found")
    elif not args.no_doggy_door:
        door = run_doggy_door(data_dir, args.out, say=print).to_dict()
    print_report(rows)
    print_precision_report(rows)
    report = {"environment": environment(), "models": rows, "doggy_door": door}
    write_artifact(args.out / "demo_report.json", json.dumps(report, indent=2) + "\n", Kind.REPORT)
    print(
        f"\nreport written to {args.out / 'demo_report.json'} (machine: {report['environment']['cpu']}, "
        f"{report['environment']['cores']} cores)"
    )
    failed = [
        r["model"]
        for r in rows
        if "skipped" not in r
        and not ((r["accuracy_ok"] or not r["target_checked"]) and r["parity"]["passed"] and r["gate_passed"])
    ]
    if door is not None and door["exit_status"] != EXIT_OK:
        failed.append("doggy_door")
    if failed:
        print(
            f"FAILED: {', '.join(failed)} missed the accuracy target, the parity gate or the precision gate",
            file=sys.stderr,
        )
        return EXIT_CHECK_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
