/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * check.h: the minimal test harness for C unit tests (tests/unit) and BPF program tests
 * (tests/bpf). A test is `static void test_x(void)` registered with RUN(test_x). CHECK_* macros
 * return bool so a test can stop early: `if (!CHECK_OK(err, "open")) return;`.
 *
 * A test that makes no check fails (it proves nothing). A test that cannot run here (not root,
 * no BTF) calls SKIP("why") and returns: it is reported as skipped, never as passed. A whole
 * binary that cannot run calls CHECK_SKIP_ALL(suite, why).
 * Each binary ends with the line "<suite>: N passed, N failed, N skipped" that tests/run-all.sh
 * adds up, and exits non-zero if anything failed.
 */
#ifndef BM_CHECK_H
#define BM_CHECK_H

#include <stdio.h>
#include <string.h>
#include <stdbool.h>

static int check_passed, check_failed, check_skipped;
static int check_cur_failed, check_cur_checks;
static const char *check_cur, *check_cur_skip;

static inline bool check_report(bool ok, const char *file, int line, const char *what,
				const char *detail)
{
	check_cur_checks++;
	if (!ok) {
		check_cur_failed = 1;
		fprintf(stderr, "%s:%d: %s: FAIL: %s%s%s\n", file, line, check_cur, what,
			detail ? ": " : "", detail ? detail : "");
	}
	return ok;
}

#define CHECK(cond, what) check_report(!!(cond), __FILE__, __LINE__, what, #cond)

#define CHECK_EQ(a, b, what)                                                                       \
	({                                                                                         \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		char _d[96];                                                                       \
		snprintf(_d, sizeof(_d), "%lld != %lld", _a, _b);                                  \
		check_report(_a == _b, __FILE__, __LINE__, what, _d);                              \
	})

#define CHECK_OK(err, what) CHECK_EQ((err), 0, what)

#define CHECK_STR(a, b, what)                                                                      \
	({                                                                                         \
		const char *_a = (a), *_b = (b);                                                   \
		bool _ok = _a && _b && strcmp(_a, _b) == 0;                                        \
		char _d[512];                                                                      \
		snprintf(_d, sizeof(_d), "\"%s\" != \"%s\"", _a ? _a : "(null)",                   \
			 _b ? _b : "(null)");                                                      \
		check_report(_ok, __FILE__, __LINE__, what, _d);                                   \
	})

#define CHECK_CONTAINS(hay, needle, what)                                                          \
	({                                                                                         \
		const char *_h = (hay), *_n = (needle);                                            \
		bool _ok = _h && _n && strstr(_h, _n);                                             \
		char _d[768];                                                                      \
		snprintf(_d, sizeof(_d), "\"%.600s\" lacks \"%s\"", _h ? _h : "(null)",            \
			 _n ? _n : "(null)");                                                      \
		check_report(_ok, __FILE__, __LINE__, what, _d);                                   \
	})

/* Mark the running test skipped (then return from it): why it cannot run here. */
#define SKIP(why) (check_cur_skip = (why))

#define RUN(fn)                                                                                    \
	do {                                                                                       \
		check_cur = #fn;                                                                   \
		check_cur_failed = 0;                                                              \
		check_cur_checks = 0;                                                              \
		check_cur_skip = NULL;                                                             \
		fn();                                                                              \
		if (check_cur_failed) {                                                            \
			check_failed++;                                                            \
			printf("not ok - %s\n", #fn);                                              \
		} else if (check_cur_skip) {                                                       \
			check_skipped++;                                                           \
			printf("ok - %s # SKIP %s\n", #fn, check_cur_skip);                        \
		} else if (check_cur_checks == 0) {                                                \
			check_failed++;                                                            \
			printf("not ok - %s (made no check)\n", #fn);                              \
		} else {                                                                           \
			check_passed++;                                                            \
			printf("ok - %s\n", #fn);                                                  \
		}                                                                                  \
	} while (0)

#define CHECK_DONE(suite)                                                                          \
	({                                                                                         \
		printf("%s: %d passed, %d failed, %d skipped\n", suite, check_passed,             \
		       check_failed, check_skipped);                                               \
		check_failed ? 1 : 0;                                                              \
	})

/* The whole binary cannot run here: one skipped test, exit 0. */
#define CHECK_SKIP_ALL(suite, why)                                                                 \
	({                                                                                         \
		printf("ok - %s # SKIP %s\n", suite, why);                                         \
		printf("%s: 0 passed, 0 failed, 1 skipped\n", suite);                             \
		0;                                                                                 \
	})

#endif /* BM_CHECK_H */
