# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# bpfmesh build. `make` builds build/bpfmesh (BPF objects embedded as skeletons).
# `make demo` / `make test` / `make bench` install missing Debian packages first.
# V=1 shows every command.

BUILD    ?= build
CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= gcc
ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

WARN     := -Wall -Wextra -Werror
CFLAGS   ?= -O2 -g
# snprintf truncation is handled where it matters (paths are checked); the -O2 heuristic is noise
CFLAGS   += $(WARN) -Wno-format-truncation -std=gnu11 -D_GNU_SOURCE -Iheaders -Iuser -Iloader -I$(BUILD)
LDLIBS   := -lbpf -lelf -lz -lyaml -lssl -lcrypto -lm -lpthread
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) $(WARN) -Wno-unused-function \
	-Wno-unused-parameter \
	-Iheaders -Ibpf -I$(BUILD)

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
TBPF_SRCS := $(wildcard tests/bpf/*.bpf.c)
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
TSKELS    := $(patsubst tests/bpf/%.bpf.c,$(BUILD)/%.skel.h,$(TBPF_SRCS))
LIB_SRCS  := $(filter-out user/main.c,$(wildcard user/*.c loader/*.c))
LIB_OBJS  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
HDRS      := $(wildcard headers/*.h user/*.h loader/*.h bpf/*.h)

# Unit tests are built twice over: once plain, once with ASan+UBSan (what `make test` runs).
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
SAN_OBJS  := $(patsubst %.c,$(BUILD)/san/%.o,$(LIB_SRCS))
BPFT_SRCS := $(wildcard tests/bpf/test_*.c)
BPFT_BINS := $(patsubst tests/bpf/%.c,$(BUILD)/bpftest/%,$(BPFT_SRCS))

# Fuzz targets (libFuzzer, clang): the library rebuilt with ASan+UBSan and coverage.
FUZZ_CC   ?= clang
FUZZ_SAN  := -fsanitize=address,undefined -fno-omit-frame-pointer -g -O1
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_OBJS := $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(LIB_SRCS))
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Iheaders -Iuser -Iloader -I$(BUILD) -Itests/unit
FUZZ_SECS ?= 600

.SECONDARY:
.PHONY: all deps test unit bpftest fuzz-build fuzz integration conformance demo bench clean format
all: $(BUILD)/bpfmesh

deps:
	$(Q)scripts/deps.sh

$(BUILD)/vmlinux.h:
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(BUILD)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(HDRS)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.bpf.o: tests/bpf/%.bpf.c $(BUILD)/vmlinux.h $(HDRS)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: %.c $(HDRS) $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c $(HDRS) $(SKELS)
	$(call msg,CC-SAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(SAN) -c $< -o $@

$(BUILD)/bpfmesh: $(BUILD)/obj/user/main.o $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c $(SAN_OBJS) tests/unit/check.h
	$(call msg,UNIT,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(SAN) -Itests/unit $< $(SAN_OBJS) -o $@ $(LDLIBS)

$(BUILD)/bpftest/%: tests/bpf/%.c $(LIB_OBJS) $(TSKELS) tests/unit/check.h
	$(call msg,BPFTEST,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit $< $(LIB_OBJS) -o $@ $(LDLIBS)

$(BUILD)/fuzzobj/%.o: %.c $(HDRS) $(SKELS)
	$(call msg,CC-FUZZ,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS) $(TSKELS)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ $(LDLIBS)

unit: $(UNIT_BINS)
bpftest: $(BPFT_BINS) $(BUILD)/bpfmesh
fuzz-build: $(FUZZ_BINS)

# Long fuzzing runs: FUZZ_SECS per target (default 10 minutes).
fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)tests/fuzz/run.sh $(FUZZ_SECS)

# The test entry point: installs deps, builds, runs every suite, prints "N passed, N failed".
test: deps
	$(Q)$(MAKE) --no-print-directory all unit bpftest fuzz-build
	$(Q)tests/run-all.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench.sh

format:
	clang-format -i $(wildcard bpf/*.c bpf/*.h headers/*.h user/*.c user/*.h loader/*.c loader/*.h tests/unit/*.c tests/unit/*.h tests/bpf/*.c)

clean:
	rm -rf $(BUILD)
