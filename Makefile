# Two commands on a fresh machine: `make demo` and `make test`. Both run `make setup` first.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
STAMP     := $(VENV)/.installed
DEBS      := libportaudio2 ffmpeg espeak-ng sox chromium

.PHONY: setup debs demo test bench lint doctor clean

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

lint: $(STAMP)
	$(VENV)/bin/ruff check .

doctor: setup
	$(PY) -m realtime.doctor

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
