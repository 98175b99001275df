# Two entry points do all the set-up on a fresh machine:
#   make repro   -- create .venv, install, run `dvc repro` (default profile)
#   make test    -- create .venv, install, run the test suite
#
# torch is installed first and pinned, so the package's own `torch>=2.2`
# requirement is already met and pip never pulls a different (CUDA) build on a
# CPU-only machine. GPU users pick their build explicitly, e.g.
#   make setup TORCH_SPEC=torch==2.13.0 TORCH_PIP_ARGS="--index-url <PyTorch CUDA wheel index>"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
BIN := $(VENV)/bin

.PHONY: setup repro test clean-venv mlflow-server mlflow-server-stop push pull
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[dev,server]"   # server: the tracking-server test runs too
	touch $@

# Stage commands (`vaebench ...`) run in a shell that dvc starts; the venv's bin/
# goes first on PATH so they resolve without activating the venv by hand.
RUN := PATH="$(abspath $(BIN)):$$PATH"

repro: setup
	$(RUN) $(BIN)/dvc repro

test: setup
	$(RUN) $(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)

# The cached outputs dvc.lock names, to / from the default DVC remote (README,
# "Sharing results between machines"; `dvc remote add -d ...` first).
push: setup
	$(BIN)/dvc push

pull: setup
	$(BIN)/dvc pull

# A local tracking server on PostgreSQL (see README, "Shared tracking server").
mlflow-server: setup
	MLFLOW=$(abspath $(BIN))/mlflow bash scripts/mlflow_server.sh start

mlflow-server-stop:
	bash scripts/mlflow_server.sh stop
