// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// regex.cc: see regex.h. The one C++ file of the library: a thin shim over RE2.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <re2/re2.h>

#include "regex.h"

struct bm_regex {
	RE2 *re;
};

extern "C" struct bm_regex *bm_regex_new(const char *pattern, bool ignore_case, char *err,
					 size_t errlen)
{
	RE2::Options o;

	o.set_log_errors(false);
	o.set_case_sensitive(!ignore_case);
	RE2 *re = new (std::nothrow) RE2(pattern, o);
	if (!re) {
		snprintf(err, errlen, "out of memory");
		return nullptr;
	}
	if (!re->ok()) {
		snprintf(err, errlen, "%s", re->error().c_str());
		delete re;
		return nullptr;
	}
	struct bm_regex *r = static_cast<struct bm_regex *>(calloc(1, sizeof(*r)));
	if (!r) {
		delete re;
		snprintf(err, errlen, "out of memory");
		return nullptr;
	}
	r->re = re;
	return r;
}

extern "C" void bm_regex_free(struct bm_regex *re)
{
	if (!re)
		return;
	delete re->re;
	free(re);
}

extern "C" bool bm_regex_full(const struct bm_regex *re, const char *s, size_t len)
{
	return RE2::FullMatch(re2::StringPiece(s, len), *re->re);
}

extern "C" char *bm_regex_replace(const struct bm_regex *re, const char *s, const char *rewrite)
{
	try {
		std::string out(s);

		RE2::GlobalReplace(&out, *re->re, re2::StringPiece(rewrite));
		return strdup(out.c_str());
	} catch (...) {
		return nullptr;
	}
}
