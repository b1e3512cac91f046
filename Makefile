# make train   set up (venv, Fashion-MNIST) and train the default LeNet-5;  ARGS="optimizer.lr=0.01" adds overrides
# make test    the test suite (offline, small generated data, about 2 minutes on 2 cores)
# make bench   the speed benchmark against the tutorial's loop; writes bench/RESULTS.md
# make compare DIR=multirun/<date>/<time>    leaderboard and plot of the runs under DIR
# make tensorboard [DIR=outputs]
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEBIAN_DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: install data train test bench compare tensorboard clean

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

bench: install data
	$(PY) bench/bench.py $(ARGS)

compare: install
	$(PY) src/compare.py $(DIR)

tensorboard: install
	$(VENV)/bin/tensorboard --logdir $(or $(DIR),outputs)

clean:
	rm -rf outputs multirun .pytest_cache
