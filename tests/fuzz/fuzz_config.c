// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fuzz_config.c: libFuzzer target for the whole config path a file takes in the agent: YAML
 * parse, model, per-object validation, cross-object checks, pod ids, resolution into the
 * service table, and analysis. Any input must come back as diagnostics, never a crash, a leak
 * or undefined behaviour (built with ASan+UBSan). Run by `make fuzz`; `make test` runs it for
 * a short budget on tests/fuzz/corpus/config.
 */
#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mesh_config *c = config_new();
	struct diags d = {0};
	struct rs_table t = {0};

	config_load_mem(c, "fuzz.yaml", (const char *)data, size, &d);
	config_index(c);
	resolve(c, &t, &d); /* as the agent does: invalid objects were left out */
	config_analyze(c, &d);
	rs_free(&t);
	diags_free(&d);
	config_free(c);
	return 0;
}
