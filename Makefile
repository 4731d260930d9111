# Two set-up commands on a fresh machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps test-deps demo test test-slow fuzz lint bench bench-results docs sample-data schemas clean

# ffmpeg: datasets decodes Audio columns through torchcodec+ffmpeg, and m4a/aac/opus inputs need it.
system-deps:
	@command -v ffmpeg >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq ffmpeg >/dev/null; }

# torch first and pinned: the CPU build lies on this machine's disk; an unpinned torch pulls a CUDA build.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all]"
	touch $@

setup: system-deps $(BIN)/.installed

# The tests also render the HTML report in a real browser (headless Chromium).
test-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The peers' own data-checking code, which the tests hold our formats against: installed without
# their training stacks (--no-deps), plus the few small modules their dataset code imports.
PEERS      := llamafactory==0.9.5 ms-swift==4.6.0
PEER_DEPS  := modelscope json_repair aiohttp omegaconf
$(BIN)/.peers: $(BIN)/.installed Makefile
	$(BIN)/pip install -q --no-deps $(PEERS)
	$(if $(strip $(PEER_DEPS)),$(BIN)/pip install -q $(PEER_DEPS))
	touch $@

demo: setup
	mkdir -p out
	$(BIN)/audiodata lint sample_data --model-family qwen2-audio --report-html out/lint.html --report-json out/lint.json || [ $$? -eq 1 ]
	$(BIN)/audiodata convert sample_data -o out/sample --overwrite || [ $$? -eq 1 ]
	$(BIN)/audiodata info out/sample

test: setup test-deps $(BIN)/.peers
	$(BIN)/ruff check audiodata trainer tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The slow tests (kills at many random points, racing processes, tiny-model training, two-process runs):
# minutes, not seconds. CI runs `make test` then `make test-slow`.
test-slow: setup test-deps $(BIN)/.peers
	$(BIN)/python -m pytest -m slow

# The property tests (hypothesis) under FUZZ_SEEDS fresh seeds each: CI draws the same examples every run, this
# draws new ones (a failure prints a @reproduce_failure blob to pin it).
FUZZ_SEEDS ?= 10
fuzz: setup test-deps
	for i in $$(seq $(FUZZ_SEEDS)); do HYPOTHESIS_PROFILE=dev $(BIN)/python -m pytest -m hypothesis -p no:cacheprovider || exit 1; done

bench: setup
	$(BIN)/python benchmarks/convert_bench.py
	$(BIN)/python benchmarks/lint_bench.py
	$(BIN)/python benchmarks/train_bench.py
	$(BIN)/python benchmarks/loader_bench.py
	$(BIN)/python benchmarks/dedup_quality.py
	$(BIN)/python benchmarks/dedup_bench.py
	$(BIN)/python benchmarks/dedup_scale_bench.py
	$(BIN)/python benchmarks/verify_bench.py --serial
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/export_bench.py

# the README's performance table: the headline figures saved in benchmarks/results/, then the table rebuilt from them
bench-results: setup
	$(BIN)/python benchmarks/cli_startup.py --repeats 5 --json benchmarks/results/cli_startup.json
	$(BIN)/python benchmarks/export_bench.py --repeats 3 --json benchmarks/results/export.json
	$(BIN)/python benchmarks/loader_bench.py --records 60 --repeats 2 --json benchmarks/results/loader.json
	$(BIN)/python benchmarks/dedup_bench.py --clips 1000 --json benchmarks/results/dedup.json
	$(BIN)/python benchmarks/lint_bench.py --records 100000 --clips 200 --workers 2 --json benchmarks/results/lint.json
	$(BIN)/python benchmarks/segments_bench.py --json benchmarks/results/segments.json
	$(BIN)/python benchmarks/memory_bench.py --records 200 --factor 10 --json benchmarks/results/memory.json
	$(BIN)/python benchmarks/memory_bench.py --clips 2000,20000 --json benchmarks/results/memory_clips.json
	$(BIN)/python benchmarks/convert_bench.py --clips 10000 --json benchmarks/results/convert.json
	$(BIN)/python benchmarks/lint_memory_bench.py --parts lint --sizes 20000,100000 --json benchmarks/results/lint_memory.json
	$(BIN)/python benchmarks/dedup_scale_bench.py --clips 5000,50000 --sample-data --json benchmarks/results/dedup_scale.json
	$(BIN)/python benchmarks/verify_bench.py --clips 2000 --serial --repeats 2 --json benchmarks/results/verify.json
	$(BIN)/python benchmarks/audio_memory_bench.py --seconds 600 --json benchmarks/results/audio_memory.json
	$(BIN)/python benchmarks/train_bench.py --records 80 --steps 10 --repeats 1 --no-processes --json benchmarks/results/train.json
	$(BIN)/python benchmarks/readme_table.py

docs: setup
	$(BIN)/audiodata rules --markdown > docs/rules.md

# Regenerate sample_data/ (needs espeak-ng, sox, ffmpeg) and schemas/output.schema.json.
sample-data:
	$(BIN)/python scripts/make_sample_data.py

schemas: setup
	$(BIN)/python -c "from audiodata.writer.schema import dump_output_schema as d; open('schemas/output.schema.json','w').write(d())"

clean:
	rm -rf out .pytest_cache .mypy_cache
