# tiny-llm in Go. `make help` lists the targets.
#
# Learners:      make check-w1d1 … check-w3d7, make check-week1, make progress
# Everyone:      make test (what must pass on a fresh clone)
# Maintainers:   make check-ref, make refgen, make refgen-check, make book

SHELL   := /bin/bash
GO      ?= go
PYTHON  ?= python3
VENV    := .venv-refgen
VPY     := $(VENV)/bin/python

.PHONY: run fidelity-w1d5 quantize-check help test vet check-ref check-ref-% check-week% check-w% progress refgen refgen-check book venv

help:
	@echo "make run            the reference engine answers a question with the model that ships in models/"
	@echo "make test           everything that must pass on a fresh clone (solutions, infrastructure, API parity, fixture manifest)"
	@echo "make test-arm64     the arm64 (NEON) kernels against the portable ones, under qemu-aarch64"
	@echo "make check-w1d1     grade your Week 1 Day 1 (any of w1d1 … w3d7)"
	@echo "make check-week1    grade every day of your Week 1"
	@echo "make progress       a table of your days: passed, failing, not started, checks not run here"
	@echo "make check-ref      run the day tests against the reference solutions (check-ref-w1d1 for one day)"
	@echo "make refgen         regenerate testdata/ with the pinned Python references (maintainers)"
	@echo "make refgen-check   regenerate into a temporary folder and diff with testdata/"
	@echo "make book           build the guide with mdBook (installs the pinned mdBook with cargo if needed)"
	@echo "make serve          the OpenAI API, metrics and a chat page on http://127.0.0.1:8000 (tinyllm serve)"
	@echo "make check-clients  the official OpenAI Python and Node clients against tinyllm serve (installs them pinned)"
	@echo "make bench-compare  the Go engine beside transformers and mlx-lm on a random Qwen2-0.5B (maintainers)"
	@echo "make gpu-check      build the GPU test binaries and print how to run them on a GPU machine (maintainers)"
	@echo "make bench-gpu      the GPU engine beside transformers on random 0.5B and 7B checkpoints (maintainers, NVIDIA GPU)"
	@echo "make fidelity-w1d5  full-size Qwen2-0.5B-shape log-prob check against Hugging Face (maintainers)"
	@echo "make quantize-check mlx-lm loads what tinyllm quantize writes and matches its own conversion (maintainers)"

# The engine, end to end, on the shipped model: an answer anyone can check.
RUN_PROMPT ?= What is 348 + 275?
run:
	$(GO) run ./cmd/tinyllm generate --prompt "$(RUN_PROMPT)"

# The day folder of a target stem: 1d1 -> week1/day1.
daydir = week$(word 1,$(subst d, ,$(1)))/day$(word 2,$(subst d, ,$(1)))
# Fails with a clear line when the day is not in this checkout yet.
need_dir = @test -d $(1) || { echo "$(1) is not in the course yet (no such folder in this checkout)"; exit 1; }
# Runs the tests of packages $(1) and prints testreport's summary: a check
# that cannot run here (one that needs a GPU) is listed by name under "Not
# run on this machine", where plain `go test` would print ok and hide it.
report = set -o pipefail; $(GO) test -count=1 -json $(1) | $(GO) run ./internal/testreport

.PHONY: serve check-clients load-serve
serve:
	$(GO) run ./cmd/tinyllm serve

check-clients:
	bash scripts/openai-clients/run.sh

# The server's load test at full length: 64 streaming clients for 10 minutes
# on loopback (make test runs it for 15 seconds).
load-serve:
	$(GO) test -count=1 -run TestServeLoad -timeout 20m -v ./cmd/tinyllm -serve-load 10m

# Everything a fresh clone must pass. The learner tree is compiled (vet) but not
# graded: its stubs panic until the learner fills them in. Checks that cannot run
# here (a GPU, a full-size checkpoint) are listed by name at the end.
test: vet
	@$(call report,./internal/... ./kernels/... ./solutions/... ./cmd/... ./models/...)

# The arm64 assembly (NEON) cannot run on an amd64 machine; with qemu-user
# installed (Debian: qemu-user), its tests run under emulation: every fast
# kernel against the portable Go one.
.PHONY: test-arm64
test-arm64:
	@command -v qemu-aarch64 >/dev/null || { echo "test-arm64 needs qemu-aarch64 (apt-get install qemu-user)"; exit 1; }
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64 -run 'Fast|Packed|Portable|Matmul' ./internal/tensor

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags learner ./cmd/tinyllm

check-week%:
	$(call need_dir,week$*)
	@$(call report,./week$*/...)

check-w%:
	$(call need_dir,$(call daydir,$*))
	@$(call report,./$(call daydir,$*))

check-ref:
	@$(call report,./solutions/...)

check-ref-w%:
	$(call need_dir,solutions/$(call daydir,$*))
	@$(call report,./solutions/$(call daydir,$*))

progress:
	@$(GO) run ./cmd/tinyllm progress

# The reference generator's virtual environment, rebuilt when the pins change.
$(VPY): refgen/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r refgen/requirements.txt
	@touch $(VPY)

venv: $(VPY)

refgen: $(VPY)
	$(VPY) refgen/generate.py --out testdata

# tinyllm quantize's output, checked from the other side: mlx_lm.convert of the
# same model must give the same tensors and config, and mlx_lm.load the same logits.
QUANTIZE_MODEL ?= models/tinyqwen-chat
quantize-check: $(VPY)
	@tmp=$$(mktemp -d) && \
	  $(GO) run ./cmd/tinyllm quantize --bits 4 --group-size 64 $(QUANTIZE_MODEL) $$tmp/q4 && \
	  $(VPY) refgen/check_quantized.py --original $(QUANTIZE_MODEL) --quantized $$tmp/q4; \
	  rc=$$?; rm -rf $$tmp; exit $$rc

refgen-check: $(VPY)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(VPY) refgen/generate.py --out "$$tmp" >/dev/null && \
	  diff -r testdata "$$tmp" && echo "refgen-check: testdata/ is reproduced exactly"

book:
	bash .ci/mdbook.sh

# Full-size fidelity of the Week 1 model (maintainers, on a machine with PyTorch
# and transformers, such as a GPU machine): a random Qwen2 of the real 0.5B shape,
# Hugging Face log-probs against the Go reference model.
FIDELITY_DIR ?= /tmp/tinyllm-fidelity
fidelity-w1d5:
	$(PYTHON) refgen/fidelity/qwen2_full_size.py --out $(FIDELITY_DIR)
	TINYLLM_FIDELITY_DIR=$(FIDELITY_DIR) $(GO) test -count=1 -run W1D5Fidelity -v ./solutions/week1/day5

# GPU checks (maintainers): build the GPU test binaries into bin/gpu/ here and
# print the command that runs them on a machine with an NVIDIA GPU (no Go
# needed there); see book/src/maintainers-gpu.md. On a machine with both Go and
# a GPU, gpu-check-local builds and runs them in one step.
.PHONY: gpu-check gpu-check-local
gpu-check:
	bash scripts/gpu-check.sh build

gpu-check-local: gpu-check
	bash scripts/gpu-check.sh run

# bench-gpu (maintainers, Linux with an NVIDIA GPU and CUDA PyTorch): the W2D7
# GPU engine beside Hugging Face transformers (eager; static cache and
# torch.compile) on random Qwen2-0.5B and 7B checkpoints, bf16 and 4-bit;
# BENCH_LLAMA=1 adds llama.cpp. See scripts/bench-gpu.sh.
.PHONY: bench-gpu
bench-gpu: gpu-check
	bash scripts/bench-gpu.sh

# bench-compare: on one random Qwen2-0.5B checkpoint (written by `tinyllm mkmodel`,
# cached in BENCH_DIR), the Go engine beside Hugging Face transformers (PyTorch,
# CPU) and mlx-lm (MLX, CPU), with the same prompt and output lengths and thread
# count, plus this machine's ceilings (memory bandwidth, matmul and matrix-vector
# rates); and the Week 2 engine (KV cache) beside llama.cpp on GGUF files of the
# same weights (BENCH_GGUF types; BENCH_LONG: the prompt length of the decode
# far into the context, empty to skip); and the Week 2 engine on 4-bit weights
# (`tinyllm quantize` of the same checkpoint) beside llama.cpp Q4_0 and
# mlx-lm. See book/src/appendix-benchmarking.md.
BENCH_DIR     ?= /tmp/tinyllm-bench
BENCH_PROMPT  ?= 128
BENCH_GEN     ?= 32
BENCH_REPEATS ?= 3
BENCH_WARMUP  ?= 1
BENCH_THREADS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 1)
BENCH_LONG    ?= 2048
BENCH_GGUF    ?= f16 q8_0 q4_0
# llama.cpp is compiled for this CPU (-march=native) but without its AMX
# matrix kernels: on virtual machines that report AMX, they can fault with
# an illegal instruction on the Q4_0 and Q8_0 paths. GCC's explicit -mno-*
# options win over what -march=native turns on.
LLAMA_NO_AMX  := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$(LLAMA_NO_AMX)' -DCMAKE_CXX_FLAGS='$(LLAMA_NO_AMX)'

.PHONY: bench-compare
bench-compare: $(VPY)
	@mkdir -p $(BENCH_DIR)
	$(GO) build -o $(BENCH_DIR)/tinyllm ./cmd/tinyllm
	@test -f $(BENCH_DIR)/qwen2-0.5b/config.json || \
	  $(BENCH_DIR)/tinyllm mkmodel --shape qwen2-0.5b --out $(BENCH_DIR)/qwen2-0.5b
	$(BENCH_DIR)/tinyllm bench --probes --threads $(BENCH_THREADS) --repeats 5 --json $(BENCH_DIR)/go-probes.json
	$(BENCH_DIR)/tinyllm bench --device cpu --model $(BENCH_DIR)/qwen2-0.5b --threads $(BENCH_THREADS) \
	  --prompt-len $(BENCH_PROMPT) --gen-len $(BENCH_GEN) --repeats $(BENCH_REPEATS) --warmup $(BENCH_WARMUP) \
	  --json $(BENCH_DIR)/go-model.json
	$(BENCH_DIR)/tinyllm bench --device cpu --week 2 --model $(BENCH_DIR)/qwen2-0.5b --threads $(BENCH_THREADS) \
	  --prompt-len $(BENCH_PROMPT) --gen-len $(BENCH_GEN) --repeats $(BENCH_REPEATS) --warmup $(BENCH_WARMUP) \
	  --json $(BENCH_DIR)/go-week2.json
	$(if $(BENCH_LONG),$(BENCH_DIR)/tinyllm bench --device cpu --week 2 --model $(BENCH_DIR)/qwen2-0.5b --threads $(BENCH_THREADS) \
	  --prompt-len $(BENCH_LONG) --gen-len $(BENCH_GEN) --repeats 1 --warmup 0 --json $(BENCH_DIR)/go-long.json)
	@$(VPY) -c "import llama_cpp, gguf" 2>/dev/null || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(VPY) -m pip install --quiet -r refgen/bench/requirements.txt
	@for t in $(BENCH_GGUF); do test -f $(BENCH_DIR)/model-$$t.gguf || \
	  $(VPY) refgen/bench/to_gguf.py --model $(BENCH_DIR)/qwen2-0.5b --type $$t --out $(BENCH_DIR)/model-$$t.gguf || exit 1; done
	@test -f $(BENCH_DIR)/qwen2-0.5b-q4/config.json || \
	  $(BENCH_DIR)/tinyllm quantize --bits 4 --group-size 64 $(BENCH_DIR)/qwen2-0.5b $(BENCH_DIR)/qwen2-0.5b-q4
	$(VPY) refgen/bench/compare.py --model $(BENCH_DIR)/qwen2-0.5b --tinyllm $(BENCH_DIR)/tinyllm --threads $(BENCH_THREADS) \
	  --prompt-len $(BENCH_PROMPT) --gen-len $(BENCH_GEN) --repeats $(BENCH_REPEATS) --warmup $(BENCH_WARMUP) \
	  --go-model $(BENCH_DIR)/go-model.json --go-probes $(BENCH_DIR)/go-probes.json \
	  --go-week2 $(BENCH_DIR)/go-week2.json $(if $(BENCH_LONG),--go-long $(BENCH_DIR)/go-long.json --long-len $(BENCH_LONG)) \
	  --gguf-dir $(BENCH_DIR) --mlx-q4 $(BENCH_DIR)/qwen2-0.5b-q4 --json $(BENCH_DIR)/compare.json
