# Set-up and checks. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
# torch/torchvision pins for a CPU machine; GPU users: install your CUDA torch into the venv first and
# run with TORCH_SPEC= (empty) so pip keeps it.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.foresplat-installed

.PHONY: venv system-deps demo test test-fast lint bench-raster clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip wheel setuptools
	$(BIN)/python -m pip install $(TORCH_SPEC) -e '.[test]'
	touch $(STAMP)

venv: $(STAMP) system-deps

# System libraries nerfstudio's tools need: libusb-1.0 (open3d, imported by ns-export and for point
# clouds) and ffmpeg (ns-render). Installed where we can (root with apt), else we say what to install.
system-deps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || missing="$$missing libusb-1.0-0"; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "ForeSplat-NS needs the system packages:$$missing (Debian/Ubuntu: sudo apt-get install$$missing)" >&2; exit 1; \
	fi

demo: venv
	$(BIN)/foresplat-demo

test: venv
	$(BIN)/python -m pytest -q tests

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: venv
	$(BIN)/ruff check foresplat_ns tests
	$(BIN)/ruff format --check foresplat_ns tests

bench-raster: venv
	$(BIN)/foresplat-bench raster

clean:
	rm -rf $(VENV) build *.egg-info
