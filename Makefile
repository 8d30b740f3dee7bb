# The README's two commands: `make demo` (the main job) and `make test`. Both set everything up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision are pinned to the builds this project is tested with (see README).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# Tests and CI use the shared real data when it is beside the checkout; otherwise ./data is filled.
SHARED_DATA := $(wildcard ../shared/data/mnist)
DATA_DIR ?= $(if $(SHARED_DATA),../shared/data,data)
OUT ?= artifacts
PYTEST_ARGS ?=

# The device profile: a second venv with only what a Jetson has — the `gpu` extra (numpy, Pillow, onnxruntime,
# cuda-python), onnx, and TensorRT-RTX standing in for JetPack's tensorrt. No torch, tqdm or matplotlib.
DEVICE_VENV ?= .venv-device
DEVICE_VENV_PY := $(DEVICE_VENV)/bin/python

.PHONY: install serve-install device-venv data hands demo lint browser test test-slow device-check gpu-proof clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(MAKE) --no-print-directory serve-install
	@touch $@

install: $(VENV)/.installed

$(DEVICE_VENV)/.installed: pyproject.toml
	@test -x $(DEVICE_VENV_PY) || $(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV_PY) -m pip install --quiet --upgrade pip
	$(DEVICE_VENV_PY) -m pip install --quiet -e '.[gpu]' 'onnx>=1.16' 'tensorrt-rtx-cu13>=1.7'
	@touch $@

device-venv: $(DEVICE_VENV)/.installed

# The real Triton Inference Server for `python -m serving.serve` and its tests: the nvidia-pytriton wheel without
# its declared deps (they pin numpy < 2; we never import pytriton), and numpy 1.x for the wheel's Python-backend
# stub only (its pybind11 predates numpy 2), in a folder apart from the venv's numpy (serving.triton_server).
TRITON_WHEEL ?= nvidia-pytriton==0.7.0
serve-install:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[serve]'
	$(PY) -m pip install --quiet --no-deps $(TRITON_WHEEL)
	$(PY) -m pip install --quiet --upgrade --no-deps --target $(VENV)/triton-stub-site 'numpy>=1.24,<2'

data: install
	$(PY) -m train.data fetch-mnist --data-dir $(DATA_DIR)

# The hand stage's two ONNX models (MediaPipe's palm detector and landmarker, converted by `edge hands` from the
# mediapipe 0.10.14 wheel, which pip downloads once; mediapipe is never installed). Tests read them from here.
HANDS_DIR ?= $(OUT)/hands
$(HANDS_DIR)/hand_palm.fp32.onnx: | install
	$(PY) -m export.hands --out $(HANDS_DIR)

hands: $(HANDS_DIR)/hand_palm.fp32.onnx

demo: data
	$(PY) -m pipeline.demo --data-dir $(DATA_DIR) --out $(OUT)

# Lint and format check (ruff, configured in pyproject.toml); `ruff format .` fixes the formatting.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# What CI runs: everything but the `slow` tests (the whole demo, full-budget training), ~10 min on 2 cores;
# tests/engine/test_device_flow.py runs the device flow in the device profile.
# Headless Chromium for the --view browser test (tests/runtime/stream/test_view.py): installed when absent, only
# as root where apt-get exists; elsewhere that one test skips and says how to get it.
APT_CHROMIUM = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { $(APT_CHROMIUM) || { apt-get update -qq && $(APT_CHROMIUM); }; } \
		|| echo "note: chromium not installed (needs root and apt-get): the browser test will skip"; }

test: lint data device-venv browser hands
	EDGE_DATA_DIR=$(abspath $(DATA_DIR)) EDGE_HANDS_DIR=$(abspath $(HANDS_DIR)) EDGE_DEVICE_PYTHON=$(abspath $(DEVICE_VENV_PY)) $(PY) -m pytest $(PYTEST_ARGS)

# Also the slow tests: the whole demo and the flowers accuracy target (~15 more minutes on 2 cores).
test-slow: data device-venv browser hands
	EDGE_DATA_DIR=$(abspath $(DATA_DIR)) EDGE_HANDS_DIR=$(abspath $(HANDS_DIR)) EDGE_DEVICE_PYTHON=$(abspath $(DEVICE_VENV_PY)) $(PY) -m pytest --run-slow $(PYTEST_ARGS)

# On a GPU box: cuda-python layer, TensorRT engines (build, self-test, latency) and PyTorch GPU baselines;
# says what it skipped. Uses the venv when there is one, else the machine's python3.
DEVICE_PY ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
device-check:
	$(DEVICE_PY) -m benchmarks.device_check --artifacts $(OUT)

# On the GPU test machine, one call (docs/tensorrt.md): the gpu tests, ONNX Runtime's CUDA path (run, IOBinding,
# CUDA graphs) against CPU FP32, stage tables and PyTorch baselines at batch 1 and 64, one report in $$OUT.
# onnxruntime-gpu comes from the four parts under .gpu-ort/ (`bash benchmarks/gpu_ort_check.sh prepare` here).
# Its CPU half runs in `make test` (tests/benchmarks/test_gpu_proof.py).
gpu-proof:
	PYTHON=$(PYTHON) bash benchmarks/gpu_ort_check.sh proof

clean:
	rm -rf $(OUT) .pytest_cache $(DEVICE_VENV)
