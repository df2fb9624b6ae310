# Two commands on a fresh machine: `make demo` and `make test`. Both run `make setup` first.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
STAMP     := $(VENV)/.installed
DEBS      := libportaudio2 ffmpeg espeak-ng sox chromium

.PHONY: setup debs demo test bench gpu-windows gpu-check lint doctor clean

setup: debs $(STAMP)

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Missing Debian packages:$$missing"; \
	    echo "Run: sudo apt-get install -y$$missing   (then re-run make)"; exit 1; \
	  fi; \
	fi

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

demo: setup
	$(PY) app.py

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m benchmarks.pipeline --source assets/demo.mp4
	$(PY) -m benchmarks.ui_refresh
	$(PY) -m benchmarks.kernel
	$(PY) -m benchmarks.check_gpu

# GPU checks (a lent H100/H200): `make gpu-windows` here records real windows into .gpu/,
# then on the GPU machine (its python3 holds torch and triton; carry .gpu/)
# `make gpu-check` writes the kernel, whole-model and many-streams results, GPU named.
GPU_PY      ?= python3
GPU_WINDOWS ?= .gpu/windows_demo.npz

gpu-windows: setup
	$(PY) -m benchmarks.streams --streams 1 --seconds 1 --save-windows $(GPU_WINDOWS) \
	  --json .gpu/streams_record.json

gpu-check:
	$(GPU_PY) -m benchmarks.kernel
	$(GPU_PY) -m benchmarks.check_gpu
	$(GPU_PY) -m benchmarks.streams --device cuda --windows $(GPU_WINDOWS) \
	  --streams 250,500,1000,2000,4000 --seconds 10 --max-batch 1024 --max-wait-ms 5

lint: $(STAMP)
	$(VENV)/bin/ruff check .

doctor: setup
	$(PY) -m realtime.doctor

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
