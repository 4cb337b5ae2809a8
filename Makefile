# Every target creates .venv when it is missing and installs what it needs; nothing else is assumed
# but Python 3.10+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch first, pinned, so the project's torch range is already met and pip does not
# reach for a multi-GB CUDA build. Override for a GPU machine: make demo TORCH=torch==2.13.0+cu126
TORCH ?= torch==2.13.0
EXTRAS ?= serve,export,hf,dev
DEMO_DIR ?= demo-output
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install tools demo test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: install
	@# The digits CNN with every compressed variant. --force publishes the variants that miss the recipe's
	@# accuracy tolerance too, so the comparison shows them; their manifests and the table say so.
	$(BIN)/modelpress pipeline --recipe recipes/digits-compress.yaml --repository $(DEMO_DIR)/repository \
	  --workdir $(DEMO_DIR)/work --force
	$(BIN)/modelpress pipeline --recipe recipes/minilm.yaml --repository $(DEMO_DIR)/repository --workdir $(DEMO_DIR)/work
	$(BIN)/modelpress compare $(DEMO_DIR)/repository --markdown $(DEMO_DIR)/report.md --plot $(DEMO_DIR)/report.png \
	  --html $(DEMO_DIR)/report.html
	$(BIN)/modelpress serve --repository $(DEMO_DIR)/repository --host $(HOST) --port $(PORT)

# Tools some tests and the benchmarks drive besides Python packages, each installed only where missing and
# only when we may (root with apt-get); elsewhere what needs it says it is skipped and why.
#   promtool (checks our metric names) from Debian's prometheus package;
#   wrk (the served benchmark's load generator) from Debian's wrk package;
#   a PostgreSQL server (initdb, pg_ctl; the shared tuning study's tests start one on 127.0.0.1) from Debian's
#   postgresql, looked for by its pg_ctlcluster (psql alone may come from the client package).
#   chromium and chromedriver (the report's and the /ui page's browser tests) from chromium, chromium-driver.
#   libb64 (a library the perf_analyzer of the tritonclient wheel links; its test drives it) from libb64-0d.
# Azurite (the Azure Storage emulator the az:// repository tests start) is an npm package: installed with npm into
# the virtualenv ($(BIN)/azurite-blob, gone with `make clean`), needing no root; without npm those tests are skipped.
define apt_tool
	@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(1) (Debian package $(2))"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2)) >/dev/null \
	      || echo "warning: could not install $(1); $(3)"; \
	  else echo "note: $(1) not found; $(3) (apt-get install $(2))"; fi; }
endef

tools: $(BIN)/activate
	$(call apt_tool,promtool,prometheus,its test will be skipped)
	$(call apt_tool,wrk,wrk,the served benchmark and its tests will be skipped)
	$(call apt_tool,pg_ctlcluster,postgresql,the PostgreSQL tuning tests will be skipped)
	$(call apt_tool,chromium,chromium,the browser tests of the HTML report and the /ui page will be skipped)
	$(call apt_tool,chromedriver,chromium-driver,the browser tests of the HTML report and the /ui page will be skipped)
	@ldconfig -p 2>/dev/null | grep -q libb64.so.0d || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing libb64 (Debian package libb64-0d)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libb64-0d) \
	      >/dev/null || echo "warning: could not install libb64; the perf_analyzer test will be skipped"; \
	  else echo "note: libb64 not found; the perf_analyzer test will be skipped (apt-get install libb64-0d)"; fi; }
	@command -v azurite-blob >/dev/null 2>&1 || test -x $(BIN)/azurite-blob || { \
	  if command -v npm >/dev/null 2>&1; then \
	    echo "installing azurite (npm package) into $(VENV)"; \
	    npm install --global --prefix $(VENV) --no-audit --no-fund --loglevel=error azurite >/dev/null \
	      || echo "warning: could not install azurite; the az:// repository tests will be skipped"; \
	  else echo "note: npm not found; the az:// repository tests will be skipped (install Node.js and npm)"; fi; }

test: install tools
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Quick mode (a few minutes); the full mode and its figures are in docs/benchmarks.md.
bench: install tools
	test -d $(DEMO_DIR)/repository || $(BIN)/modelpress pipeline --recipe recipes/digits.yaml \
	  --repository $(DEMO_DIR)/repository --workdir $(DEMO_DIR)/work
	$(BIN)/modelpress bench $(DEMO_DIR)/repository --quick --out benchmarks/results

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache

# constraints/images.txt, the one lock every image installs with: pip resolves constraints/images.in (the package's
# extras plus the onnxruntime and torch builds) for this Python; extra pip arguments go in LOCK_ARGS.
.PHONY: lock
lock: install
	$(BIN)/python constraints/lock.py $(LOCK_ARGS)

# Build the serve image with docker or podman and check it running (readiness, non-root, no torch, V2 + V1, SIGTERM);
# skipped (exit 0) where no engine answers. ENGINE=docker|podman, BUILD_FLAGS="..." for `build`.
.PHONY: image
image: install
	$(BIN)/python scripts/image_check.py --repository $(DEMO_DIR)/repository --workdir $(DEMO_DIR)/work
