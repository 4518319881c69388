/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * duration.h: durations as Istio's resources write them (Go's time.ParseDuration), for the
 * config model, the agent's and the lab's flags (--cert-ttl) and the CA's.
 */
#ifndef BM_DURATION_H
#define BM_DURATION_H

#include <stdint.h>

/* "10s", "1.5s", "100ms", "1h30m", "0" -> nanoseconds: 0, or -1 if malformed or out of range. */
int parse_duration_ns(const char *s, int64_t *ns);

#endif /* BM_DURATION_H */
