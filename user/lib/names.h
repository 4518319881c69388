/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * names.h: the name rules Kubernetes applies, for every module that must check a name before
 * it uses one (validation, the lab before it builds a path or a namespace name, the CA service
 * before it puts a node name in a certificate).
 */
#ifndef BM_NAMES_H
#define BM_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 1123 label: lower case letters, digits and '-', alphanumeric at both ends, <= 63. */
bool names_dns_label(const char *s);
bool names_dns_label_n(const char *s, size_t len, bool upper);
/* DNS-1123 subdomain: labels joined by '.', <= 253 (object names, spec.nodeName). */
bool names_dns_subdomain(const char *s);

#endif /* BM_NAMES_H */
