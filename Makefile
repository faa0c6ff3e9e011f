# Two set-up commands: `make demo` and `make test` (both create .venv and install first).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= all

.PHONY: install demo test test-long test-slurm overfit bench lint dryrun-paper clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel on this kind of machine (a bare `torch` pulls CUDA).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(STAMP)

demo: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --report results/report.html

# The test suite, then the examples in the package's docstrings (every module under src/dplm2 is
# imported; ~10 s).
test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -m "not long" --durations=15 tests
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q --doctest-modules src/dplm2

# Model-quality proofs that take minutes (the LM memorisation under the reference's loss,
# ~5 min on 2 cores); .ci/run calls it after make test.
test-long: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -m long tests

# ruff (configured in pyproject.toml) over the code, then Snakemake's own lint of the workflow.
lint: install
	$(BIN)/ruff check src tests bench tools
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint

dryrun-paper: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake -n --configfile config/paper.yaml

clean:
	rm -rf results .snakemake

# Tokenizer overfit benchmark (not in CI; 800 steps, capped at 24 min on 2 cores): 6 real chains,
# target median CA-RMSD < 2 A with >= 32 codes.
overfit: install
	$(BIN)/python bench/tokenizer_overfit.py --steps 800 --minutes 24

# Real SLURM test (~4-5 min; root + apt-get or an installed slurm-wlm): brings up a one-node
# cluster (workflow/scripts/slurm_up.sh), runs a slice of the demo through
# --profile workflow/profiles/slurm, stops the cluster again if it started it. `make test`
# skips it; .ci/run calls both.
test-slurm: install
	PATH="$(abspath $(BIN)):$$PATH" DPLM2_TEST_SLURM=1 $(BIN)/python -m pytest -q -m slurm tests/cluster
