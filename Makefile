# rampsearch: `make run` searches, `make test` tests. Both set up what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := dataset-fashion-mnist chromium
BUDGET ?= 4.8GFLOPs
RUN_ARGS ?=

# Imagenette, prepared once per machine: from $RAMPSEARCH_IMAGENETTE (an archive, folder or
# URL), else the archive beside the checkout, else the public download. Where none can be had
# the run trains on Fashion-MNIST and its plan says so.
IMAGENETTE ?= $(or $(RAMPSEARCH_IMAGENETTE),$(wildcard ../shared/data/imagenette2-160.tgz))

.PHONY: setup run test bench lint clean debian data

setup: $(STAMP) debian

# Reinstalls only when pyproject.toml changes, so a second `make setup` takes seconds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Debian's Fashion-MNIST (the offline proxy data set) and Chromium (report rendering test).
debian:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "note: Debian packages$$missing are not installed and this is not a root shell with"; \
	  echo "      apt-get; run 'sudo apt-get install$$missing' for the offline Fashion-MNIST data"; \
	  echo "      and the report test, or pass --data with your own prepared data set."; \
	fi

data: setup
	@$(BIN)/rampsearch data get imagenette --quiet $(if $(IMAGENETTE),--from $(IMAGENETTE)) \
	  || echo "note: Imagenette could not be had; the run trains on Fashion-MNIST instead."

run: setup data
	$(BIN)/rampsearch run --budget $(BUDGET) $(RUN_ARGS)

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m benchmarks

lint: setup
	$(BIN)/ruff check iformer search_spaces rampsearch tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
