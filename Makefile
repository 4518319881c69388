# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# bpfmesh build. `make` builds build/bpfmesh (BPF objects embedded as skeletons).
# `make demo` / `make test` / `make bench` / `make fuzz` install missing Debian packages first.
# V=1 shows every command. CFLAGS, CC, CLANG, BPFTOOL may be set on the command line: the flags
# the build needs (include paths, warnings, dependency files) are kept apart, as
# libbpf-bootstrap's Makefile does, so `make CFLAGS=-O0` still builds.
#
# Layers, and what each may include (enforced by the include paths below):
#   headers/   shared by kernel and user side            <- everything
#   bpf/       the programs                               -> headers
#   user/lib/  the library: config model, validation, analysis, policy, pins' read side
#                                                         -> headers
#   user/cli/  the CLI commands                           -> user/lib
#   user/lab/  the lab and its echo server                -> user/lib
#   loader/    the node agent                             -> user/lib, its BPF skeletons
#   cmd/       the binary's entry point: dispatch only     -> all of them

BUILD    ?= build
CLANG    ?= clang
BPFTOOL  ?= bpftool
ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

CFLAGS   ?= -O2 -g
# snprintf truncation is handled where it matters (paths are checked); the -O2 heuristic is noise
WARN     := -Wall -Wextra -Werror -Wno-format-truncation
BASE     := -std=gnu11 -D_GNU_SOURCE -MMD -MP
INC_LIB  := -Iheaders -Iuser/lib
INC_CLI  := $(INC_LIB) -Iuser/cli
INC_LAB  := $(INC_LIB) -Iuser/lab
INC_LDR  := $(INC_LIB) -Iloader -I$(BUILD)
INC_CMD  := $(INC_LDR) -Iuser/cli -Iuser/lab
LDLIBS   := -lbpf -lelf -lz -lyaml -ljson-c -lcurl -lhiredis -lprotobuf-c -lnghttp2 -lhttp_parser -lre2 -lssl -lcrypto -lm \
	-lpthread -lstdc++
CXX      ?= g++
CXXBASE  := -std=c++17 -D_GNU_SOURCE -MMD -MP
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Wextra -Werror \
	-Wno-unused-function -Wno-unused-parameter -Iheaders -Ibpf -I$(BUILD)

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
TBPF_SRCS := $(wildcard tests/bpf/*.bpf.c)
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
TSKELS    := $(patsubst tests/bpf/%.bpf.c,$(BUILD)/%.skel.h,$(TBPF_SRCS))
LIB_SRCS  := $(wildcard user/lib/*.c user/lib/*.cc)
CLI_SRCS  := $(wildcard user/cli/*.c)
LAB_SRCS  := $(wildcard user/lab/*.c)
LDR_SRCS  := $(wildcard loader/*.c)
ALL_SRCS  := $(LIB_SRCS) $(CLI_SRCS) $(LAB_SRCS) $(LDR_SRCS)
# protobuf messages the agent writes (protoc-c): build/gen/NAME.pb-c.[ch], linked with the agent
PROTOS    := $(wildcard loader/*.proto)
PROTO_HS  := $(patsubst loader/%.proto,$(BUILD)/gen/%.pb-c.h,$(PROTOS))
PROTO_OBJS := $(patsubst loader/%.proto,$(BUILD)/obj/gen/%.pb-c.o,$(PROTOS))
OBJS      = $(patsubst %.cc,$(BUILD)/$(1)/%.o,$(patsubst %.c,$(BUILD)/$(1)/%.o,$(2)))

# the include path of a source by its folder
inc = $(if $(filter user/lib/%,$(1)),$(INC_LIB),$(if $(filter user/cli/%,$(1)),$(INC_CLI),$(if \
	$(filter user/lab/%,$(1)),$(INC_LAB),$(if $(filter loader/%,$(1)),$(INC_LDR),$(INC_CMD)))))

# Unit tests run with ASan+UBSan; the library's are pure C (no clang, bpftool or BTF needed).
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
BPFT_SRCS := $(wildcard tests/bpf/test_*.c)
BPFT_BINS := $(patsubst tests/bpf/%.c,$(BUILD)/bpftest/%,$(BPFT_SRCS))

# Fuzz targets (libFuzzer, clang): the library rebuilt with ASan+UBSan and coverage.
FUZZ_CC   ?= clang
FUZZ_CXX  ?= clang++
FUZZ_SAN  := -fsanitize=address,undefined -fno-omit-frame-pointer -g -O1
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_SECS ?= 600

.DELETE_ON_ERROR:
# the BPF objects are kept (bpftool reads them); the skeletons are named here, so they are no
# intermediate files and order-only prerequisites on them are built
.SECONDARY: $(patsubst %.skel.h,%.bpf.o,$(SKELS) $(TSKELS))
.PHONY: all deps test unit bpftest fuzz-build fuzz demo bench clean format skels FORCE
all: $(BUILD)/bpfmesh
skels: $(SKELS) $(TSKELS)

deps:
	$(Q)scripts/deps.sh

$(BUILD)/vmlinux.h:
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(BUILD)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.bpf.o: tests/bpf/%.bpf.c $(BUILD)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/gen/%.pb-c.c: loader/%.proto
	$(call msg,PROTOC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)protoc-c --proto_path=loader --c_out=$(BUILD)/gen $<
$(BUILD)/gen/%.pb-c.h: $(BUILD)/gen/%.pb-c.c ;

$(BUILD)/obj/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(INC_LDR) -I$(BUILD)/gen $(CFLAGS) -c $< -o $@

# Objects: each depends on what it includes (-MMD); the loader's and the binary's need the
# skeletons and generated headers to exist first (order-only), the library, CLI and lab never
# include one.
$(BUILD)/obj/loader/%.o: loader/%.c | $(SKELS) $(PROTO_HS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(WARN) $(INC_LDR) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/cmd/%.o: cmd/%.c $(BUILD)/version.h | $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(WARN) $(INC_CMD) $(CFLAGS) -c $< -o $@

# `bpfmesh version`: git describe of the tree built (rewritten only when it changes)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/version.h: FORCE
	$(Q)mkdir -p $(BUILD)
	$(Q)echo '#define BM_VERSION "$(VERSION)"' > $@.tmp
	$(Q)cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(BUILD)/obj/%.o: %.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(WARN) $(call inc,$<) $(CFLAGS) -c $< -o $@

# the one C++ file: the RE2 shim (user/lib/regex.cc)
$(BUILD)/obj/%.o: %.cc
	$(call msg,CXX,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CXX) $(CXXBASE) $(WARN) $(call inc,$<) $(CFLAGS) -c $< -o $@

$(BUILD)/san/loader/%.o: loader/%.c | $(SKELS)
	$(call msg,CC-SAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(WARN) $(INC_LDR) $(CFLAGS) $(SAN) -c $< -o $@

$(BUILD)/san/%.o: %.c
	$(call msg,CC-SAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(WARN) $(call inc,$<) $(CFLAGS) $(SAN) -c $< -o $@

$(BUILD)/san/%.o: %.cc
	$(call msg,CXX-SAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CXX) $(CXXBASE) $(WARN) $(call inc,$<) $(CFLAGS) $(SAN) -c $< -o $@

$(BUILD)/fuzzobj/loader/%.o: loader/%.c | $(SKELS)
	$(call msg,CC-FUZZ,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(BASE) $(INC_LDR) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzzobj/%.o: %.c
	$(call msg,CC-FUZZ,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(BASE) $(call inc,$<) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzzobj/%.o: %.cc
	$(call msg,CXX-FUZZ,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CXX) $(CXXBASE) $(call inc,$<) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/bpfmesh: $(BUILD)/obj/cmd/main.o $(call OBJS,obj,$(ALL_SRCS)) $(PROTO_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# Unit tests: the library and the CLI, and the echo server of the lab; no skeletons.
UNIT_OBJS := $(call OBJS,san,$(LIB_SRCS) $(CLI_SRCS) user/lab/echo.c user/lab/echo_h2.c \
	loader/hbone.c loader/h2tun.c loader/l7table.c loader/l7route.c loader/handover.c \
	loader/gwtls.c loader/trace.c) $(patsubst $(BUILD)/obj/%,$(BUILD)/san/%,$(PROTO_OBJS))
$(BUILD)/san/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(call msg,CC-SAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(INC_LDR) -I$(BUILD)/gen $(CFLAGS) $(SAN) -c $< -o $@
$(BUILD)/san/loader/trace.o: | $(PROTO_HS)
$(BUILD)/unit/%: tests/unit/%.c $(UNIT_OBJS) tests/unit/check.h | $(PROTO_HS)
	$(call msg,UNIT,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(WARN) $(INC_LAB) -Iuser/cli -Iloader -I$(BUILD) -Itests/unit $(CFLAGS) $(SAN) $< $(UNIT_OBJS) \
		-o $@ $(LDLIBS)

$(BUILD)/bpftest/%: tests/bpf/%.c $(call OBJS,obj,$(LIB_SRCS) $(LDR_SRCS)) $(PROTO_OBJS) \
		$(TSKELS) tests/unit/check.h
	$(call msg,BPFTEST,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(WARN) $(INC_LDR) -Itests/unit $(CFLAGS) $< \
		$(call OBJS,obj,$(LIB_SRCS) $(LDR_SRCS)) $(PROTO_OBJS) -o $@ $(LDLIBS)

FUZZ_OBJS := $(call OBJS,fuzzobj,$(LIB_SRCS) loader/hbone.c)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS) $(TSKELS)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)mkdir -p $(BUILD)/fuzzobj/tests/fuzz
	$(Q)$(FUZZ_CC) $(BASE) $(INC_LDR) -Itests/unit $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< \
		-o $(BUILD)/fuzzobj/tests/fuzz/$(notdir $@).o
	$(Q)$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer $(BUILD)/fuzzobj/tests/fuzz/$(notdir $@).o \
		$(FUZZ_OBJS) -o $@ $(LDLIBS)

unit: $(UNIT_BINS)
bpftest: $(BPFT_BINS) $(BUILD)/bpfmesh
fuzz-build: $(FUZZ_BINS)

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

# Long fuzzing runs: FUZZ_SECS per target (default 10 minutes).
fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)tests/fuzz/run.sh $(FUZZ_SECS)

format:
	clang-format -i $(wildcard bpf/*.c bpf/*.h headers/*.h user/*/*.c user/*/*.h loader/*.c \
		loader/*.h cmd/*.c tests/unit/*.c tests/unit/*.h tests/bpf/*.c tests/fuzz/*.c)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
