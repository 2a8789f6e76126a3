# tickwire — the commands a user runs. `make demo` and `make test` install what
# they need first (scripts/setup.sh, idempotent), so they work on a fresh clone.

VENV    := .venv
PY      := $(VENV)/bin/python
BUILD   := build
CLANG   ?= clang
ARCH_INC := /usr/include/$(shell uname -m)-linux-gnu
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -I$(ARCH_INC) -Ixdp/include -Idpdk/include
BPF_SRCS := $(wildcard xdp/*.bpf.c)
BPF_OBJS := $(patsubst xdp/%.bpf.c,$(BUILD)/xdp/%.bpf.o,$(BPF_SRCS))
# the worker includes xdp/include's parsing.h (rx.c) and tw_meta.h: a change there rebuilds it
EXT_DEPS := $(wildcard dpdk/src/*.c dpdk/src/*.h dpdk/include/*.h xdp/include/*.h) dpdk/build_ext.py xdp/build_ext.py
EXT_STAMP := $(BUILD)/.ext-stamp
ASAN_STAMP := $(BUILD)/.ext-asan-stamp
# the lab and diagnostics C (dpdk._lab), kept out of the production extension
LAB_DEPS := $(wildcard dpdk/lab/*.c dpdk/lab/*.h) xdp/include/lab_impair.h dpdk/build_ext.py xdp/build_ext.py
LAB_STAMP := $(BUILD)/.ext-lab-stamp
# xdp's own libbpf binding (xdp._libbpf)
XDP_EXT_DEPS := xdp/include/libbpf.cdef xdp/include/tw_meta.h xdp/include/tw_rules.h xdp/build_ext.py
XDP_EXT_STAMP := $(BUILD)/.ext-xdp-stamp

.PHONY: help setup build demo test test-unit test-integration bench lint lock clean

help:          ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -e 's/:.*## /\t/' | expand -t 18

setup:         ## install Debian packages, the venv and build (idempotent)
	@scripts/setup.sh

demo: setup    ## bring up the lab, send a multicast feed exch -> app, show it, tear down
	$(VENV)/bin/tickwire demo

test: setup    ## the whole suite (unit + integration); ends with pytest's summary
	$(PY) -m pytest tests

test-unit: setup  ## unit tests only (no privileges needed once set up)
	$(PY) -m pytest tests/unit

test-integration: setup  ## integration tests (root: lab, BPF)
	$(PY) -m pytest tests/integration

bench: setup   ## every benchmark in bench/, each printing its ratio to a baseline
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: setup    ## ruff over the Python sources, and the wings' import contracts (pyproject.toml, lint-imports)
	$(VENV)/bin/ruff check common appliance xdp dpdk tuning tests bench
	$(VENV)/bin/lint-imports --no-logo

# the feed filter built a second time, for NICs with hardware receive timestamps
BPF_OBJS += $(BUILD)/xdp/feed_filter_hwts.bpf.o

build: $(BPF_OBJS) $(XDP_EXT_STAMP) $(EXT_STAMP) $(ASAN_STAMP) $(LAB_STAMP)  ## compile the BPF objects and the cffi extensions (xdp's libbpf binding; dpdk's production one, its ASan twin, lab)

$(BUILD)/xdp/%.bpf.o: xdp/%.bpf.c $(wildcard xdp/include/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/xdp/feed_filter_hwts.bpf.o: xdp/feed_filter.bpf.c $(wildcard xdp/include/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -DTW_HW_RX_TS -c $< -o $@

$(XDP_EXT_STAMP): $(XDP_EXT_DEPS)
	@mkdir -p $(BUILD)
	$(PY) -m xdp.build_ext
	@touch $@

$(EXT_STAMP): $(EXT_DEPS)
	@mkdir -p $(BUILD)
	$(PY) -m dpdk.build_ext
	@touch $@

$(ASAN_STAMP): $(EXT_DEPS)
	@mkdir -p $(BUILD)
	$(PY) -m dpdk.build_ext --asan
	@touch $@

$(LAB_STAMP): $(LAB_DEPS)
	@mkdir -p $(BUILD)
	$(PY) -m dpdk.build_ext --lab
	@touch $@

lock:          ## re-resolve requirements.lock (everything) and requirements-runtime.lock (a box's) from pyproject.toml
	rm -rf $(BUILD)/lockvenv && /usr/bin/python3 -m venv $(BUILD)/lockvenv
	$(BUILD)/lockvenv/bin/pip install -q '.[test,provision]' 'setuptools>=68'
	{ sed -n '1,2p' requirements.lock; $(BUILD)/lockvenv/bin/pip freeze --all --exclude-editable \
	  | grep -v -E '^(pip|wheel|tickwire)[= ]'; } > requirements.lock.new && mv requirements.lock.new requirements.lock
	rm -rf $(BUILD)/lockvenv && /usr/bin/python3 -m venv $(BUILD)/lockvenv
	$(BUILD)/lockvenv/bin/pip install -q . 'setuptools>=68' -c requirements.lock
	{ sed -n '1,2p' requirements-runtime.lock; $(BUILD)/lockvenv/bin/pip freeze --all \
	  | grep -v -E '^(pip|wheel|tickwire)[= ]'; } > requirements-runtime.lock.new \
	  && mv requirements-runtime.lock.new requirements-runtime.lock
	rm -rf $(BUILD)/lockvenv

clean:         ## remove build products (not the venv)
	rm -rf $(BUILD) dpdk/_native*.so dpdk/_native.c dpdk/_native.o dpdk/_lab*.so xdp/_libbpf*.so
