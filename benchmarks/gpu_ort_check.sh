#!/usr/bin/env bash
# The ONNX Runtime CUDA-EP check for the GPU test machine (see ../shared/docs/GPU.md), prepared here, run there.
#
#   bash benchmarks/gpu_ort_check.sh prepare [--with-effnet]   # HERE (CPU, venv): ORT parts + models + MNIST
#   bash benchmarks/gpu_ort_check.sh stash N                   # THERE: keep carried part N under /tmp/ortparts
#   bash benchmarks/gpu_ort_check.sh run                       # THERE: unpack ORT, gpu tests, benchmark → $OUT
#   bash benchmarks/gpu_ort_check.sh proof [--dry-run]         # THERE (make gpu-proof): unpack ORT, then
#        python -m benchmarks.gpu_proof → $OUT/gpu_proof.{json,md}; --dry-run: its CPU half, here, no parts needed
#
# Everything travels under .gpu-ort/ (git-ignored through .git/info/exclude): ort/part0..3 (onnxruntime-gpu 1.31.1,
# CUDA 13, cp312, from ../shared/tools/ort-gpu-parts.sh), models/<name>/<name>.fp32.onnx (+ .json spec, + .pt for
# the PyTorch eager column) and data/mnist (the tests train their fixture model on it). One transfer carries at most
# 64 MiB, so parts 0–2 go one per call (`stash`), and the last call carries part 3, models and data and runs `run`.
# `run` writes at most 8 files to $OUT: env.txt, pytest.log, summary.md and one <model>.ortgpu.json per model.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
DIR=${GPU_ORT_DIR:-.gpu-ort}
SITE=${ORT_SITE:-/tmp/ortsite}
PARTS=${ORT_PARTS:-/tmp/ortparts}
PY=${PYTHON:-python3}

prepare() {
  local venv_py=${PYTHON:-.venv/bin/python} data=${EDGE_DATA_DIR:-../shared/data}
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$DIR/models" "$DIR/data" "$(dirname "$exclude")"
  case "$DIR" in /*) ;; *) grep -qxF "/$DIR/" "$exclude" 2>/dev/null || echo "/$DIR/" >> "$exclude" ;; esac
  # ORT_PARTS_SKIP=1: models and data only (the parts need PyPI and ~3 minutes of xz)
  [ -n "${ORT_PARTS_SKIP:-}" ] || [ -f "$DIR/ort/WHOLE.sha256" ] || bash ../shared/tools/ort-gpu-parts.sh "$DIR/ort"
  cp -r "$data/mnist" "$DIR/data/"
  [ -f "$DIR/models/mnist_cnn/mnist_cnn.fp32.onnx" ] || {
    "$venv_py" -m train mnist --model mnist_cnn --data-dir "$data" --out "$DIR/models/mnist_cnn" --epochs 1 \
      --limit 12000 --no-progress && "$venv_py" -m export --checkpoint "$DIR/models/mnist_cnn/mnist_cnn.pt"; }
  [ -f "$DIR/models/asl_cnn/asl_cnn.fp32.onnx" ] || {
    "$venv_py" -m train asl --data-dir "$data" --out "$DIR/models/asl_cnn" --epochs 1 --limit 6000 --no-progress \
      && "$venv_py" -m export --checkpoint "$DIR/models/asl_cnn/asl_cnn.pt"; }
  if [ "${1:-}" = "--with-effnet" ] && [ ! -f "$DIR/models/efficientnet_lite0/efficientnet_lite0.fp32.onnx" ]; then
    "$venv_py" -m export --pretrained efficientnet_lite0 --out "$DIR/models/efficientnet_lite0"
  fi
  du -sh "$DIR"/ort/part* "$DIR/models" "$DIR/data" 2>/dev/null || true
  echo "carry per call: [$DIR/ort/part0] … [$DIR/ort/part2] with \`stash N\`; last: [$DIR/ort/part3," \
       "$DIR/ort/WHOLE.sha256, $DIR/models, $DIR/data] with \`run\` (each call under 64 MiB with the repo)"
}

stash() {
  mkdir -p "$PARTS" && cp "$DIR/ort/part$1" "$PARTS/" && ls -l "$PARTS"
}

unpack() {
  if [ -d "$SITE/onnxruntime" ]; then return; fi
  mkdir -p "$PARTS" && cp "$DIR"/ort/part* "$PARTS/" 2>/dev/null || true
  local want got
  want=$(cat "$DIR/ort/WHOLE.sha256")
  got=$(cat "$PARTS"/part* | sha256sum | cut -d' ' -f1)
  [ "$want" = "$got" ] || { echo "error: joined parts in $PARTS do not match WHOLE.sha256 (missing a stash?)"; exit 2; }
  mkdir -p "$SITE" && cat "$PARTS"/part* | xz -d | tar x -C "$SITE"
}

run_check() {
  local out=${OUT:-gpu-ort-out}
  mkdir -p "$out"
  unpack
  export PYTHONPATH="$SITE:$HERE" EDGE_DATA_DIR="$(cd "$DIR/data" && pwd)" PYTHONUNBUFFERED=1
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    "$PY" -c "import onnxruntime as o, sys; print(sys.version.split()[0], o.__version__, o.__file__, \
o.get_available_providers())"; } | tee "$out/env.txt"
  set +e
  "$PY" -m pytest -p no:cacheprovider -rs -s tests/runtime/test_ort_cuda.py tests/runtime/test_ort_binding.py \
    tests/runtime/test_providers.py tests/benchmarks/test_ortgpu.py 2>&1 | tee "$out/pytest.log"
  local rc=${PIPESTATUS[0]}
  : > "$out/summary.md"
  for onnx in "$DIR"/models/*/*.fp32.onnx; do
    [ -f "$onnx" ] || continue
    "$PY" -m benchmarks ortgpu --engine "$onnx" --providers cuda --batch 1,64 --duration-s "${DURATION_S:-0.5}" \
      --rounds 3 --out "$out" 2>&1 | tee -a "$out/summary.md"
    [ "${PIPESTATUS[0]}" = 0 ] || rc=3
    rm -f "$out/$(basename "$onnx").ortgpu.md"  # the same text is in summary.md; $OUT returns at most 8 files
  done
  set -e
  echo "exit status $rc (0 all passed, 1 a test failed, 3 a benchmark failed); results in $out"
  return "$rc"
}

proof() {
  local out=${OUT:-gpu-proof-out}
  mkdir -p "$out"
  if [ "${1:-}" = "--dry-run" ]; then
    PYTHONPATH="$HERE" "$PY" -m benchmarks.gpu_proof --force --dry-run --models "$DIR/models" --out "$out"
    return
  fi
  unpack
  export PYTHONPATH="$SITE:$HERE" EDGE_DATA_DIR="$(cd "$DIR/data" && pwd)" PYTHONUNBUFFERED=1
  "$PY" -m benchmarks.gpu_proof --force --models "$DIR/models" --out "$out"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  stash) stash "${2:?part number}" ;;
  run) run_check ;;
  proof) shift; proof "$@" ;;
  *) sed -n 2,15p "$0"; exit 2 ;;
esac
