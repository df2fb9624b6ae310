# Two commands on a fresh machine: `make demo` and `make test`. Both run `make setup` first.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
STAMP     := $(VENV)/.installed
DEBS      := libportaudio2 ffmpeg espeak-ng sox chromium

.PHONY: setup debs demo test bench gpu-windows gpu-wheels gpu-check lint doctor clean

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

# GPU checks on a lent H100/H200 (docs/benchmarks.md "On a lent GPU"). Here: `make gpu-windows`
# records into .gpu/ (git-ignored; carried) the windows, face crops and expression weights the
# checks need. There (its python3 holds torch and triton, no media packages, no network):
# `make gpu-check` runs every step in its own process with a time limit, under 8 minutes, and
# writes every result file and gpu_check_summary.json into $OUT (else benchmarks/results).
# `make gpu-wheels` downloads Whisper's packages for that Python (cp312) into .whl/ and says
# whether they fit the device tool's 64 MiB carry limit (they do not: the Whisper step then
# reports "skipped: <why>").
GPU_PY      ?= python3
GPU_DIR     ?= .gpu
GPU_WHEELS  := ctranslate2==4.8.5 av==18.1.0 faster-whisper==1.2.1
CARRY_MIB   := 64

gpu-windows: setup
	mkdir -p $(GPU_DIR)
	$(PY) -m benchmarks.streams --streams 1 --seconds 1 --save-windows $(GPU_DIR)/windows_demo.npz \
	  --json $(GPU_DIR)/streams_record.json
	$(PY) -m benchmarks.expression_gpu --save-crops $(GPU_DIR)/crops.npz --frames 60
	cp "$$($(PY) -c 'from realtime.assets import expression_model_path as p; print(p())')" \
	  $(GPU_DIR)/emotion_model.hdf5
	du -sh $(GPU_DIR)

gpu-wheels: setup
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	@mib=$$(du -sm .whl | cut -f1); echo ".whl: $$mib MiB (carry limit $(CARRY_MIB) MiB for the \
	whole tree, and Whisper's model is another 75 MB)"; if [ $$mib -ge $(CARRY_MIB) ]; then \
	echo "too big to carry: leave .whl out of carry; the Whisper step reports skipped"; fi

gpu-check:
	@if ls .whl/*.whl >/dev/null 2>&1 && $(GPU_PY) -c \
	  'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then \
	  $(GPU_PY) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
	    --target /tmp/gpu-site .whl/*.whl || echo "the wheels did not install"; fi
	PYTHONPATH=/tmp/gpu-site$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_PY) -m benchmarks.gpu_check \
	  --out "$${OUT:-benchmarks/results}" --gpu $(GPU_DIR) --budget-s 450

lint: $(STAMP)
	$(VENV)/bin/ruff check .

doctor: setup
	$(PY) -m realtime.doctor

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
