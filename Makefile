# Every target creates .venv when it is missing and installs what it needs; nothing else is assumed
# but Python 3.10+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch first, pinned, so the project's torch range is already met and pip does not
# reach for a multi-GB CUDA build. Override for a GPU machine: make demo TORCH=torch==2.13.0+cu126
TORCH ?= torch==2.13.0
EXTRAS ?= cpu,hf,dev
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
	$(BIN)/modelpress compare $(DEMO_DIR)/repository --markdown $(DEMO_DIR)/report.md --plot $(DEMO_DIR)/report.png
	$(BIN)/modelpress serve --repository $(DEMO_DIR)/repository --host $(HOST) --port $(PORT)

# Tools some tests drive besides Python packages: promtool (checks our metric names) comes from
# Debian's prometheus package. Installed only where missing and only when we may (root with apt-get);
# elsewhere the test that needs it says it is skipped and why.
tools:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing promtool (Debian package prometheus)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null \
	      || echo "warning: could not install promtool; its test will be skipped"; \
	  else echo "note: promtool not found; its test will be skipped (apt-get install prometheus)"; fi; }

test: install tools
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Quick mode (a few minutes); the full mode and its figures are in docs/benchmarks.md.
bench: install
	test -d $(DEMO_DIR)/repository || $(BIN)/modelpress pipeline --recipe recipes/digits.yaml \
	  --repository $(DEMO_DIR)/repository --workdir $(DEMO_DIR)/work
	$(BIN)/modelpress bench $(DEMO_DIR)/repository --quick --out benchmarks/results

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
