# make train   set up (venv, Fashion-MNIST) and train the default LeNet-5;  ARGS="optimizer.lr=0.01" adds overrides
# make test    the whole test suite (offline, small generated data, a throwaway PostgreSQL; under 5 minutes on 2 cores)
# make test-fast   the quick loop: runs and a search in this process, no servers (under a minute)
# make lint    ruff (lint, import order), ruff format --check, mypy on src/; make format rewrites the formatting
# make search [WORKERS=N]   the Optuna search (hparams_search=lenet5_optuna), N workers sharing one study
# make bench   the speed benchmark against the tutorial's loop; writes bench/RESULTS.md
# make bench-search   pruned vs. unpruned search, 1 vs. 2 workers; writes bench/SEARCH.md (about 30 minutes)
# make bench-data   digits, ResNet-20 with augmentation, CIFAR-shaped throughput, the default run before/after; bench/DATA.md
# make bench-slurm  a search, a preempted and a cancelled trial on a single-node test cluster (root); bench/SLURM.md
# make confirm [DIR=multirun/lenet5_optuna]   train the search's top 3 trials again with 3 new seeds; ARGS="--top 5"
# make compare DIR=multirun/lenet5_optuna    leaderboard and plot of the runs under DIR
# make tensorboard [DIR=outputs]   and   make dashboard [STORAGE=...]   listen on 127.0.0.1 (HOST=0.0.0.0 opens them)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEBIAN_DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
HOST ?= 127.0.0.1
WORKERS ?= 1
STUDY ?= lenet5_optuna
STORAGE ?= multirun/$(STUDY)/optuna.journal

.PHONY: install data train test test-fast lint format search confirm bench bench-search bench-data bench-slurm compare tensorboard dashboard clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Fashion-MNIST: nothing to do if it is in data/ or the Debian package is installed; else install that
# package where apt-get can (root, or sudo); else torchvision downloads it on the first run.
data:
	@if [ -f data/FashionMNIST/raw/train-images-idx3-ubyte ] || [ -f $(DEBIAN_DATA) ]; then \
		echo "Fashion-MNIST: found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST: not found here; torchvision will download it on the first run"; \
	fi

train: install data
	$(PY) src/train.py $(ARGS)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# N workers on one study: each asks the study for trials until it holds n_trials; Ctrl-C stops them all.
search: install data
	@pids=""; trap 'kill -INT $$pids 2>/dev/null; wait' INT TERM; \
	for i in $$(seq 1 $(WORKERS)); do \
		$(PY) src/train.py -m hparams_search=$(STUDY) $(ARGS) & pids="$$pids $$!"; \
	done; \
	status=0; for p in $$pids; do wait $$p || status=$$?; done; exit $$status

confirm: install data
	$(PY) src/confirm.py $(or $(DIR),multirun/$(STUDY)) $(ARGS)

bench: install data
	$(PY) bench/bench.py $(ARGS)

bench-search: install data
	$(PY) bench/search_bench.py $(ARGS)

bench-data: install data
	$(PY) bench/data_bench.py $(ARGS)

bench-slurm: install
	$(PY) bench/slurm_bench.py $(ARGS)

compare: install
	$(PY) src/compare.py $(DIR)

tensorboard: install
	$(VENV)/bin/tensorboard --logdir $(or $(DIR),outputs) --host $(HOST)

dashboard: install
	$(VENV)/bin/optuna-dashboard --host $(HOST) $(STORAGE)

clean:
	rm -rf outputs multirun .pytest_cache
