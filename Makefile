# Touchpoint: `make run` starts the app, `make test` runs the whole suite. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The launcher (pages/_serve.py) is Streamlit's own command line, after declaring the app
# st.navigation-based (a shared deep link opened first after a restart then runs through app.py's frame),
# and it prepares the default Overview in the background so the first visitor gets a cache hit.
STREAMLIT := $(BIN)/python -m pages._serve

.PHONY: run test bench demo clean-data system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Debian packages the tests need: Chromium for the browser tests and static chart images,
# a Java 17 runtime for the Spark parity test. Installed only when missing.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

run: $(VENV)/.runtime
	$(BIN)/python -m cx init
	$(STREAMLIT) run app.py --server.port $(PORT)

test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest -q

demo: $(VENV)/.runtime
	$(BIN)/python -m cx demo

clean-data:
	rm -f data/touchpoint.duckdb data/touchpoint.duckdb.wal

# Benchmarks (not part of `make test`): data generated once into bench/.cache, results in bench/RESULTS.md
# and bench/results.json; fails when a budget is missed. `make bench BENCH_SIZES=100k,1m` for a quicker run.
BENCH_SIZES ?= 100k,1m,10m
BENCH_PORT  ?= 8599
bench: $(VENV)/.dev system-deps
	nice -n 15 $(BIN)/python -m bench.run --sizes $(BENCH_SIZES) --port $(BENCH_PORT)
