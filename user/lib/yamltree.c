// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * yamltree.c: libyaml documents -> small trees with line numbers and kubectl's scalar typing
 * (see yamltree.h). Called by config.c for every file it loads and by validate.c through the
 * accessors. Also copies and re-emits single objects for config_split_file().
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yamltree.h"

/* Bounds on what one document may expand to, so that alias bombs ("billion laughs") and
 * pathological nesting fail cleanly instead of exhausting memory or the stack. */
#define YT_MAX_DEPTH 128
#define YT_MAX_NODES (1 << 20)

struct ybuild {
	yaml_document_t *doc;
	struct yerror *err;
	int nodes;
};

static void yerr_set(struct yerror *err, int line, const char *fmt, const char *arg)
{
	err->line = line;
	snprintf(err->msg, sizeof(err->msg), fmt, arg);
}

/* ---------------- scalar typing ---------------- */

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static const char *const yaml_nulls[] = {"", "~", "null", "Null", "NULL", NULL};
/* YAML 1.1 booleans, as go-yaml v2 (and so kubectl) resolves them. */
static const char *const yaml_bools[] = {
    "y",    "Y",     "yes",   "Yes",   "YES", "n",  "N",  "no",	 "No",	"NO",  "true", "True",
    "TRUE", "false", "False", "FALSE", "on",  "On", "ON", "off", "Off", "OFF", NULL};
static const char *const yaml_trues[] = {"y",	 "Y",	 "yes", "Yes", "YES", "true",
					 "True", "TRUE", "on",	"On",  "ON",  NULL};

/* Integer text: optional sign, then decimal, 0x hex, 0 octal or 0b binary; '_' allowed. */
static bool parse_int(const char *s, int64_t *out)
{
	char buf[80], *end;
	size_t j = 0;
	bool neg = false;
	int base = 10;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s || *s == '_')
		return false;
	for (; *s && j + 1 < sizeof(buf); s++)
		if (*s != '_')
			buf[j++] = *s;
	if (*s)
		return false;
	buf[j] = 0;
	s = buf;
	if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
		base = 2, s += 2;
	else if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16, s += 2;
	else if (s[0] == '0' && s[1])
		base = 8, s += 1;
	if (!*s || *s == '+' || *s == '-' || *s == ' ')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (*end || errno == ERANGE || v > (unsigned long long)INT64_MAX + neg)
		return false;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static bool is_float_text(const char *s)
{
	static const char *const specials[] = {".inf", ".Inf", ".INF", ".nan",
					       ".NaN", ".NAN", NULL};
	bool digits = false;

	if (*s == '+' || *s == '-')
		s++;
	if (in_list(s, specials))
		return true;
	for (; *s >= '0' && *s <= '9'; s++)
		digits = true;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			digits = true;
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (*s < '0' || *s > '9')
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == 0;
}

static enum yscalar resolve_plain(const char *s)
{
	int64_t v;

	if (in_list(s, yaml_nulls))
		return YS_NULL;
	if (in_list(s, yaml_bools))
		return YS_BOOL;
	if (parse_int(s, &v))
		return YS_INT;
	if (is_float_text(s))
		return YS_FLOAT;
	return YS_STR;
}

/* A scalar's type from its tag (!!int ...), else its style (quoted: a string), else its text. */
static enum yscalar resolve_tagged(const char *tag, yaml_scalar_style_t style, const char *text)
{
	if (tag && strcmp(tag, YAML_INT_TAG) == 0)
		return YS_INT;
	if (tag && strcmp(tag, YAML_FLOAT_TAG) == 0)
		return YS_FLOAT;
	if (tag && strcmp(tag, YAML_BOOL_TAG) == 0)
		return YS_BOOL;
	if (tag && strcmp(tag, YAML_NULL_TAG) == 0)
		return YS_NULL;
	if (style != YAML_PLAIN_SCALAR_STYLE)
		return YS_STR;
	return resolve_plain(text);
}

static enum yscalar resolve_scalar(const yaml_node_t *node, const char *text)
{
	return resolve_tagged((const char *)node->tag, node->data.scalar.style, text);
}

/* ---------------- tree building ---------------- */

static struct ynode *build_node(struct ybuild *b, yaml_node_t *node, int depth);

static struct ynode *build_scalar(struct ynode *n, yaml_node_t *node, struct ybuild *b)
{
	const char *text = (const char *)node->data.scalar.value;

	if (strlen(text) != node->data.scalar.length) {
		yerr_set(b->err, n->line, "%s", "NUL character in a scalar");
		free(n);
		return NULL;
	}
	n->str = strdup(text);
	if (!n->str) {
		free(n);
		return NULL;
	}
	n->skind = resolve_scalar(node, text);
	n->type = n->skind == YS_NULL ? YN_NULL : YN_SCALAR;
	return n;
}

static struct ynode *build_seq(struct ynode *n, yaml_node_t *node, struct ybuild *b, int depth)
{
	yaml_node_item_t *it = node->data.sequence.items.start;
	int count = (int)(node->data.sequence.items.top - it);

	n->type = YN_SEQ;
	n->items = calloc(count ? count : 1, sizeof(*n->items));
	if (!n->items)
		goto fail;
	for (; n->n < count; n->n++) {
		yaml_node_t *child = yaml_document_get_node(b->doc, it[n->n]);

		n->items[n->n] = child ? build_node(b, child, depth + 1) : NULL;
		if (!n->items[n->n])
			goto fail;
	}
	return n;
fail:
	ynode_free(n);
	return NULL;
}

static int build_pair(struct ybuild *b, struct ypair *p, yaml_node_pair_t *src, int depth)
{
	yaml_node_t *k = yaml_document_get_node(b->doc, src->key);
	yaml_node_t *v = yaml_document_get_node(b->doc, src->value);

	if (!k || !v)
		return -1;
	if (k->type != YAML_SCALAR_NODE) {
		yerr_set(b->err, (int)k->start_mark.line + 1, "%s", "map keys must be scalars");
		return -1;
	}
	p->key = strdup((const char *)k->data.scalar.value);
	if (!p->key)
		return -1;
	p->val = build_node(b, v, depth + 1);
	if (!p->val)
		return -1;
	/* Errors about a value point at its key: `hosts:` rather than the list below it. */
	p->val->line = (int)k->start_mark.line + 1;
	return 0;
}

static bool has_key(const struct ynode *map, const char *key)
{
	for (int i = 0; i < map->n; i++)
		if (strcmp(map->pairs[i].key, key) == 0)
			return true;
	return false;
}

static struct ynode *build_map(struct ynode *n, yaml_node_t *node, struct ybuild *b, int depth)
{
	yaml_node_pair_t *pr = node->data.mapping.pairs.start;
	int count = (int)(node->data.mapping.pairs.top - pr);

	n->type = YN_MAP;
	n->pairs = calloc(count ? count : 1, sizeof(*n->pairs));
	if (!n->pairs)
		goto fail;
	for (int i = 0; i < count; i++) {
		struct ypair p = {0};

		if (build_pair(b, &p, &pr[i], depth) < 0) {
			free(p.key);
			ynode_free(p.val);
			goto fail;
		}
		/* The API server rejects duplicate fields; silently keeping one would hide
		 * which of the two the user meant. */
		if (has_key(n, p.key)) {
			yerr_set(b->err, p.val->line, "duplicate key \"%s\"", p.key);
			free(p.key);
			ynode_free(p.val);
			goto fail;
		}
		n->pairs[n->n++] = p;
	}
	return n;
fail:
	ynode_free(n);
	return NULL;
}

static struct ynode *build_node(struct ybuild *b, yaml_node_t *node, int depth)
{
	struct ynode *n;
	int line = (int)node->start_mark.line + 1;

	if (depth > YT_MAX_DEPTH || ++b->nodes > YT_MAX_NODES) {
		yerr_set(b->err, line, "%s",
			 "document nests too deep or expands to too many nodes");
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->line = line;
	switch (node->type) {
	case YAML_SCALAR_NODE:
		return build_scalar(n, node, b);
	case YAML_SEQUENCE_NODE:
		return build_seq(n, node, b, depth);
	case YAML_MAPPING_NODE:
		return build_map(n, node, b, depth);
	default:
		free(n);
		yerr_set(b->err, line, "%s", "unexpected YAML node");
		return NULL;
	}
}

struct ynode *ytree_build(yaml_document_t *doc, yaml_node_t *node, struct yerror *err)
{
	struct ybuild b = {.doc = doc, .err = err};
	struct ynode *n;

	err->line = 0;
	err->io = false;
	err->msg[0] = 0;
	n = build_node(&b, node, 0);
	if (!n && !err->msg[0])
		yerr_set(err, (int)node->start_mark.line + 1, "%s", "out of memory");
	return n;
}

void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (int i = 0; n->type == YN_SEQ && i < n->n; i++)
		ynode_free(n->items[i]);
	for (int i = 0; n->type == YN_MAP && i < n->n; i++) {
		free(n->pairs[i].key);
		ynode_free(n->pairs[i].val);
	}
	free(n->items);
	free(n->pairs);
	free(n->str);
	free(n);
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return (h ^ 0xff) * 1099511628211ULL; /* end of string: "ab","c" differs from "a","bc" */
}

uint64_t ynode_hash(const struct ynode *n)
{
	uint64_t h = 1469598103934665603ULL;

	if (!n)
		return h;
	h = (h ^ (uint64_t)n->type) * 1099511628211ULL;
	if (n->type == YN_SCALAR) {
		h = (h ^ (uint64_t)n->skind) * 1099511628211ULL;
		return fnv_str(h, n->str);
	}
	for (int i = 0; i < n->n; i++) {
		if (n->type == YN_MAP) {
			h = fnv_str(h, n->pairs[i].key);
			h = (h ^ ynode_hash(n->pairs[i].val)) * 1099511628211ULL;
		} else if (n->type == YN_SEQ) {
			h = (h ^ ynode_hash(n->items[i])) * 1099511628211ULL;
		}
	}
	return h;
}

/* A deep copy; *budget (when given) is the number of nodes it may make, and is taken from:
 * NULL when out of memory or over budget. */
static struct ynode *clone_bounded(const struct ynode *n, long *budget)
{
	struct ynode *c;
	bool ok;

	if (!n || (budget && --*budget < 0))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	ok = true;
	*c = (struct ynode){.type = n->type, .line = n->line, .skind = n->skind};
	if (n->str)
		ok = (c->str = strdup(n->str)) != NULL;
	if (ok && n->type == YN_SEQ)
		ok = (c->items = calloc(n->n ? n->n : 1, sizeof(*c->items))) != NULL;
	if (ok && n->type == YN_MAP)
		ok = (c->pairs = calloc(n->n ? n->n : 1, sizeof(*c->pairs))) != NULL;
	if (ok)
		c->n = n->n; /* only now may ynode_free() walk the (zeroed) slots */
	for (int i = 0; ok && n->type == YN_SEQ && i < n->n; i++)
		ok = (c->items[i] = clone_bounded(n->items[i], budget)) != NULL || !n->items[i];
	for (int i = 0; ok && n->type == YN_MAP && i < n->n; i++) {
		ok = (c->pairs[i].key = strdup(n->pairs[i].key)) != NULL;
		if (ok && n->pairs[i].val)
			ok = (c->pairs[i].val = clone_bounded(n->pairs[i].val, budget)) != NULL;
	}
	if (!ok) {
		ynode_free(c);
		return NULL;
	}
	return c;
}

struct ynode *ynode_clone(const struct ynode *n)
{
	return clone_bounded(n, NULL);
}

/* ---------------- loading files ---------------- */

static void parser_error(const yaml_parser_t *p, struct yerror *err)
{
	const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->mark;

	err->line = (int)m->line + 1;
	if (p->context)
		snprintf(err->msg, sizeof(err->msg), "%s (%s at line %d)",
			 p->problem ? p->problem : "syntax error", p->context,
			 (int)p->context_mark.line + 1);
	else
		snprintf(err->msg, sizeof(err->msg), "%s",
			 p->problem ? p->problem : "syntax error");
}

static int add_doc(struct yfile *f, struct ynode *root, int line)
{
	struct ydoc *v = realloc(f->docs, (f->ndocs + 1) * sizeof(*v));

	if (!v)
		return -1;
	f->docs = v;
	f->docs[f->ndocs].root = root;
	f->docs[f->ndocs].line = line;
	f->ndocs++;
	return 0;
}

/* Byte offset of a libyaml mark (line and column count characters, not bytes). */
static size_t mark_offset(const char *buf, size_t len, const yaml_mark_t *m)
{
	size_t off = 0;

	for (size_t line = 0; line < m->line && off < len; off++)
		if (buf[off] == '\n')
			line++;
	for (size_t col = 0; col < m->column && off < len; col++)
		for (off++; off < len && ((unsigned char)buf[off] & 0xc0) == 0x80; off++)
			;
	return off;
}

/*
 * libyaml 0.2.5 rejects a ':' followed by a flow indicator inside a plain scalar of a flow
 * collection, as in `addresses: [1.2.3.4, 2001:db8::]`, which go-yaml (and so kubectl and
 * Istio) reads as the string "2001:db8::". When libyaml reports exactly that, the scalar is
 * single-quoted in a copy of the input, on the same line, and the parse is retried. The
 * scalar ends where go-yaml ends it: at ": ", a flow indicator, " #" or the end of the line.
 */
static char *quote_flow_scalar(const char *buf, size_t len, const yaml_mark_t *start,
			       size_t *newlen)
{
	size_t b = mark_offset(buf, len, start), e = b, quotes = 0, o = 0;
	char *out;

	while (e < len && buf[e] != '\n' && buf[e] != '\r' && !strchr(",[]{}", buf[e]) &&
	       !(buf[e] == ':' && (e + 1 == len || strchr(" \t\r\n", buf[e + 1]))) &&
	       !(buf[e] == '#' && e > b && (buf[e - 1] == ' ' || buf[e - 1] == '\t')))
		quotes += buf[e++] == '\'';
	while (e > b && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
		e--;
	if (e == b || buf[b] == '\'' || buf[b] == '"')
		return NULL;
	out = malloc(len + quotes + 3);
	if (!out)
		return NULL;
	memcpy(out, buf, b);
	o = b;
	out[o++] = '\'';
	for (size_t i = b; i < e; i++) {
		out[o++] = buf[i];
		if (buf[i] == '\'')
			out[o++] = '\'';
	}
	out[o++] = '\'';
	memcpy(out + o, buf + e, len - e);
	*newlen = o + len - e;
	out[*newlen] = 0;
	return out;
}

static bool flow_colon_error(const yaml_parser_t *p)
{
	return p->error == YAML_SCANNER_ERROR && p->problem && p->context &&
	       !strcmp(p->problem, "found unexpected ':'") &&
	       !strcmp(p->context, "while scanning a plain scalar");
}

/*
 * The tree is built straight from libyaml's events, with a stack of its own: one pass over
 * the bytes, no libyaml document in between, and a nesting deeper than YT_MAX_DEPTH (or a
 * document of more than YT_MAX_NODES nodes, aliases expanded) stops the parse where it is
 * found, so a pathological file is refused in time linear in the bytes read up to there.
 */
struct yframe {
	struct ynode *n; /* the open sequence or map */
	int cap;	 /* of its items / pairs */
	char *key;	 /* a map's key waiting for its value */
	int key_line;
	char *anchor; /* the collection's own, registered when it closes */
};

struct yanchor {
	char *name;
	struct ynode *n; /* in the tree (valid until the document ends), or its own when owned */
	bool owned;	 /* a copy: the anchored node became a map key, whose node is freed */
};

struct yevb {
	struct yframe st[YT_MAX_DEPTH + 1];
	int depth;
	struct ynode *root;
	bool have_root;
	int nodes, root_line;
	struct yanchor *anchors;
	int nanchors, capanchors;
	struct yerror *err;
};

static enum yscalar resolve_event_scalar(const yaml_event_t *ev, const char *text)
{
	return resolve_tagged((const char *)ev->data.scalar.tag, ev->data.scalar.style, text);
}

static int yevb_limit(struct yevb *b, int line)
{
	if (b->depth > YT_MAX_DEPTH || b->nodes > YT_MAX_NODES) {
		b->err->line = line;
		snprintf(b->err->msg, sizeof(b->err->msg),
			 "document nests deeper than %d levels or has too many nodes",
			 YT_MAX_DEPTH);
		return -1;
	}
	return 0;
}

/* A copy of an anchored node for an alias, counted against YT_MAX_NODES. */
static struct ynode *clone_counted(struct yevb *b, const struct ynode *n, int line)
{
	long budget = YT_MAX_NODES - b->nodes;
	struct ynode *c = clone_bounded(n, &budget);

	if (budget < 0) {
		b->nodes = YT_MAX_NODES + 1;
		yevb_limit(b, line);
		ynode_free(c);
		return NULL;
	}
	b->nodes = YT_MAX_NODES - (int)budget;
	return c;
}

static int yevb_anchor(struct yevb *b, const unsigned char *name, struct ynode *n, bool owned)
{
	if (!name)
		return 0;
	if (b->nanchors == b->capanchors) {
		int cap = b->capanchors ? 2 * b->capanchors : 8;
		struct yanchor *v = realloc(b->anchors, cap * sizeof(*v));

		if (!v)
			return -1;
		b->anchors = v;
		b->capanchors = cap;
	}
	b->anchors[b->nanchors].name = strdup((const char *)name);
	if (!b->anchors[b->nanchors].name)
		return -1;
	b->anchors[b->nanchors].owned = owned;
	b->anchors[b->nanchors++].n = n; /* a later anchor of the same name wins, as in YAML */
	return 0;
}

static void yevb_reset_anchors(struct yevb *b)
{
	for (int i = 0; i < b->nanchors; i++) {
		free(b->anchors[i].name);
		if (b->anchors[i].owned)
			ynode_free(b->anchors[i].n);
	}
	b->nanchors = 0;
}

/* Put a finished node where it belongs: the root, the open sequence, or the open map (as a
 * key, or as the value of the key before it). Takes n over; -1 with err set on a bad tree. */
static int yevb_attach(struct yevb *b, struct ynode *n)
{
	struct yframe *f = b->depth ? &b->st[b->depth - 1] : NULL;

	if (!f) {
		b->root = n;
		b->have_root = true;
		return 0;
	}
	if (f->n->type == YN_SEQ) {
		if (f->n->n == f->cap) {
			int cap = f->cap ? 2 * f->cap : 4;
			struct ynode **v = realloc(f->n->items, cap * sizeof(*v));

			if (!v)
				goto oom;
			f->n->items = v;
			f->cap = cap;
		}
		f->n->items[f->n->n++] = n;
		return 0;
	}
	if (!f->key) { /* a key */
		if (n->type != YN_SCALAR && n->type != YN_NULL) {
			yerr_set(b->err, n->line, "%s", "map keys must be scalars");
			ynode_free(n);
			return -1;
		}
		f->key = n->str;
		f->key_line = n->line;
		n->str = NULL;
		ynode_free(n);
		return 0;
	}
	/* Errors about a value point at its key: `hosts:` rather than the list below it. */
	n->line = f->key_line;
	/* The API server rejects duplicate fields; silently keeping one would hide which of
	 * the two the user meant. */
	if (has_key(f->n, f->key)) {
		yerr_set(b->err, n->line, "duplicate key \"%s\"", f->key);
		ynode_free(n);
		return -1;
	}
	if (f->n->n == f->cap) {
		int cap = f->cap ? 2 * f->cap : 4;
		struct ypair *v = realloc(f->n->pairs, cap * sizeof(*v));

		if (!v)
			goto oom;
		f->n->pairs = v;
		f->cap = cap;
	}
	f->n->pairs[f->n->n].key = f->key;
	f->n->pairs[f->n->n++].val = n;
	f->key = NULL;
	return 0;
oom:
	ynode_free(n);
	yerr_set(b->err, 0, "%s", "out of memory");
	return -1;
}

/* Drop whatever is half built (after an error, or at the end of a document). */
static void yevb_clear(struct yevb *b)
{
	while (b->depth > 0) {
		struct yframe *f = &b->st[--b->depth];

		free(f->key);
		free(f->anchor);
		ynode_free(f->n);
	}
	ynode_free(b->root);
	b->root = NULL;
	b->have_root = false;
	yevb_reset_anchors(b);
}

/* One event; 1 = the stream ended, 0 = go on, -1 = error (err set). */
static int yevb_event(struct yevb *b, yaml_event_t *ev, struct yfile *out)
{
	int line = (int)ev->start_mark.line + 1;
	struct ynode *n;

	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		b->nodes = 0;
		return 0;
	case YAML_DOCUMENT_END_EVENT: {
		/* a document that is null (empty, `~`) has no tree */
		struct ynode *root = b->root && b->root->type != YN_NULL ? b->root : NULL;

		if (root == NULL)
			ynode_free(b->root);
		b->root = NULL;
		b->have_root = false;
		yevb_reset_anchors(b);
		if (add_doc(out, root, b->root_line) < 0) {
			ynode_free(root);
			yerr_set(b->err, line, "%s", "out of memory");
			return -1;
		}
		return 0;
	}
	case YAML_SCALAR_EVENT:
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (!b->depth && !b->have_root)
			b->root_line = line;
		b->nodes++;
		if (ev->type != YAML_SCALAR_EVENT)
			b->depth++;
		if (yevb_limit(b, line)) {
			b->depth -= ev->type != YAML_SCALAR_EVENT;
			return -1;
		}
		n = calloc(1, sizeof(*n));
		if (!n) {
			b->depth -= ev->type != YAML_SCALAR_EVENT;
			yerr_set(b->err, line, "%s", "out of memory");
			return -1;
		}
		n->line = line;
		if (ev->type == YAML_SCALAR_EVENT) {
			const char *text = (const char *)ev->data.scalar.value;

			if (strlen(text) != ev->data.scalar.length) {
				yerr_set(b->err, line, "%s", "NUL character in a scalar");
				free(n);
				return -1;
			}
			n->str = strdup(text);
			if (!n->str) {
				free(n);
				yerr_set(b->err, line, "%s", "out of memory");
				return -1;
			}
			n->skind = resolve_event_scalar(ev, text);
			n->type = n->skind == YS_NULL ? YN_NULL : YN_SCALAR;
			if (ev->data.scalar.anchor) {
				/* a scalar that becomes a map key gives its text up and is freed:
				 * the anchor keeps a copy of its own */
				const struct yframe *f = b->depth ? &b->st[b->depth - 1] : NULL;
				bool key = f && f->n->type == YN_MAP && !f->key;
				struct ynode *an = key ? calloc(1, sizeof(*an)) : n;

				if (an && key) {
					*an = *n;
					an->str = strdup(n->str);
				}
				if (!an || !an->str ||
				    yevb_anchor(b, ev->data.scalar.anchor, an, key)) {
					if (key && an) {
						free(an->str);
						free(an);
					}
					ynode_free(n);
					yerr_set(b->err, line, "%s", "out of memory");
					return -1;
				}
			}
			return yevb_attach(b, n);
		}
		n->type = ev->type == YAML_SEQUENCE_START_EVENT ? YN_SEQ : YN_MAP;
		b->st[b->depth - 1] = (struct yframe){.n = n};
		{
			const unsigned char *anchor = ev->type == YAML_SEQUENCE_START_EVENT
							  ? ev->data.sequence_start.anchor
							  : ev->data.mapping_start.anchor;

			if (anchor && !(b->st[b->depth - 1].anchor = strdup((const char *)anchor))) {
				yerr_set(b->err, line, "%s", "out of memory");
				return -1;
			}
		}
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT: {
		struct yframe f;
		int r;

		if (!b->depth)
			return 0;
		f = b->st[--b->depth];
		free(f.key); /* a key without a value cannot reach here: libyaml gives it a null */
		r = yevb_anchor(b, (const unsigned char *)f.anchor, f.n, false);
		free(f.anchor);
		if (r) {
			ynode_free(f.n);
			yerr_set(b->err, line, "%s", "out of memory");
			return -1;
		}
		return yevb_attach(b, f.n);
	}
	case YAML_ALIAS_EVENT:
		for (int i = b->nanchors - 1; i >= 0; i--)
			if (!strcmp(b->anchors[i].name, (const char *)ev->data.alias.anchor)) {
				n = clone_counted(b, b->anchors[i].n, line);
				if (!n) {
					if (!b->err->msg[0])
						yerr_set(b->err, line, "%s", "out of memory");
					return -1;
				}
				n->line = line;
				return yevb_attach(b, n);
			}
		yerr_set(b->err, line, "%s", "found undefined alias");
		return -1;
	default:
		return 0;
	}
}

/* One attempt; 1 = retry with *fixed (the flow-colon case above), 0 = done, -1 = error. */
static int load_attempt(const char *buf, size_t len, struct yfile *out, struct yerror *err,
			char **fixed, size_t *fixed_len)
{
	struct yevb *b = calloc(1, sizeof(*b));
	yaml_parser_t parser;
	int rc = 0;

	if (!b || !yaml_parser_initialize(&parser)) {
		free(b);
		yerr_set(err, 0, "%s", "out of memory");
		return -1;
	}
	b->err = err;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	for (;;) {
		yaml_event_t ev;
		int t;

		if (!yaml_parser_parse(&parser, &ev)) {
			parser_error(&parser, err);
			*fixed = flow_colon_error(&parser)
				     ? quote_flow_scalar(buf, len, &parser.context_mark, fixed_len)
				     : NULL;
			rc = *fixed ? 1 : -1;
			break;
		}
		t = yevb_event(b, &ev, out);
		yaml_event_delete(&ev);
		if (t != 0) {
			rc = t < 0 ? -1 : 0;
			break;
		}
	}
	yaml_parser_delete(&parser);
	yevb_clear(b);
	free(b->anchors);
	free(b);
	if (rc != 0)
		yfile_free(out);
	return rc;
}

int yfile_load_mem(const char *buf, size_t len, struct yfile *out, struct yerror *err)
{
	char *copy = NULL;
	size_t clen = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	err->line = 0;
	err->io = false;
	err->msg[0] = 0;
	/* Each retry quotes one more scalar; a bound keeps a pathological file finite. */
	for (int tries = 0; tries < 256; tries++) {
		char *fixed = NULL;
		size_t fixed_len = 0;

		rc = load_attempt(copy ? copy : buf, copy ? clen : len, out, err, &fixed,
				  &fixed_len);
		if (rc != 1)
			break;
		free(copy);
		copy = fixed;
		clen = fixed_len;
	}
	free(copy);
	return rc == 0 ? 0 : -1;
}

static char *read_all(const char *path, size_t *len, struct yerror *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	err->io = true;
	if (!f) {
		yerr_set(err, 0, "cannot read: %s", strerror(errno));
		return NULL;
	}
	for (;;) {
		if (n == cap) {
			char *nb = realloc(buf, cap ? 2 * cap : 8192);

			if (!nb)
				break;
			buf = nb;
			cap = cap ? 2 * cap : 8192;
		}
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f) || n == cap) {
		yerr_set(err, 0, "cannot read: %s", ferror(f) ? strerror(errno) : "out of memory");
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = 0;
	*len = n;
	err->io = false;
	return buf;
}

int yfile_load(const char *path, struct yfile *out, struct yerror *err)
{
	size_t len = 0;
	char *buf = read_all(path, &len, err);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!buf)
		return -1;
	rc = yfile_load_mem(buf, len, out, err);
	free(buf);
	return rc;
}

void yfile_free(struct yfile *f)
{
	for (int i = 0; i < f->ndocs; i++)
		ynode_free(f->docs[i].root);
	free(f->docs);
	f->docs = NULL;
	f->ndocs = 0;
}

/* ---------------- accessors ---------------- */

const struct ynode *ymap_find(const struct ynode *map, const char *key)
{
	if (!map || map->type != YN_MAP)
		return NULL;
	for (int i = 0; i < map->n; i++)
		if (strcmp(map->pairs[i].key, key) == 0)
			return map->pairs[i].val;
	return NULL;
}

const struct ynode *ymap_get(const struct ynode *map, const char *key)
{
	const struct ynode *v = ymap_find(map, key);

	return ynode_is_null(v) ? NULL : v;
}

bool ynode_is_map(const struct ynode *n)
{
	return n && n->type == YN_MAP;
}

bool ynode_is_seq(const struct ynode *n)
{
	return n && n->type == YN_SEQ;
}

bool ynode_is_null(const struct ynode *n)
{
	return !n || n->type == YN_NULL;
}

const char *ynode_str(const struct ynode *n)
{
	return n && n->type == YN_SCALAR && n->skind == YS_STR ? n->str : NULL;
}

const char *ynode_text(const struct ynode *n)
{
	return n && n->type == YN_SCALAR ? n->str : NULL;
}

int ynode_int(const struct ynode *n, int64_t *out)
{
	if (!n || n->type != YN_SCALAR || n->skind != YS_INT)
		return -1;
	return parse_int(n->str, out) ? 0 : -1;
}

int ynode_num(const struct ynode *n, double *out)
{
	int64_t v;
	char *end;

	if (ynode_int(n, &v) == 0) {
		*out = (double)v;
		return 0;
	}
	if (!n || n->type != YN_SCALAR || n->skind != YS_FLOAT)
		return -1;
	if (strstr(n->str, "inf") || strstr(n->str, "Inf") || strstr(n->str, "INF")) {
		*out = n->str[0] == '-' ? -INFINITY : INFINITY;
		return 0;
	}
	if (strstr(n->str, "nan") || strstr(n->str, "NaN") || strstr(n->str, "NAN")) {
		*out = NAN;
		return 0;
	}
	*out = strtod(n->str, &end);
	return *end ? -1 : 0;
}

int ynode_bool(const struct ynode *n, bool *out)
{
	if (!n || n->type != YN_SCALAR || n->skind != YS_BOOL)
		return -1;
	*out = in_list(n->str, yaml_trues);
	return 0;
}

const char *ymap_str(const struct ynode *map, const char *key)
{
	return ynode_str(ymap_get(map, key));
}

int64_t ymap_int(const struct ynode *map, const char *key, int64_t def)
{
	int64_t v;

	return ynode_int(ymap_get(map, key), &v) == 0 ? v : def;
}

bool ymap_bool(const struct ynode *map, const char *key, bool def)
{
	bool v;

	return ynode_bool(ymap_get(map, key), &v) == 0 ? v : def;
}

int ymap_len(const struct ynode *map, const char *key)
{
	const struct ynode *v = ymap_get(map, key);

	return ynode_is_seq(v) ? v->n : 0;
}

/* ---------------- libyaml helpers: split and re-emit ---------------- */

yaml_node_t *ydoc_map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

/* Copy src (in sdoc) into ddoc; returns the new node id, 0 on failure. */
static int copy_node(yaml_document_t *sdoc, yaml_node_t *src, yaml_document_t *ddoc, int depth)
{
	int id;

	if (!src || depth > YT_MAX_DEPTH)
		return 0;
	switch (src->type) {
	case YAML_SCALAR_NODE:
		return yaml_document_add_scalar(ddoc, src->tag, src->data.scalar.value,
						(int)src->data.scalar.length,
						src->data.scalar.style);
	case YAML_SEQUENCE_NODE:
		id = yaml_document_add_sequence(ddoc, src->tag, YAML_BLOCK_SEQUENCE_STYLE);
		for (yaml_node_item_t *it = src->data.sequence.items.start;
		     id && it < src->data.sequence.items.top; it++) {
			int c = copy_node(sdoc, yaml_document_get_node(sdoc, *it), ddoc, depth + 1);

			if (!c || !yaml_document_append_sequence_item(ddoc, id, c))
				return 0;
		}
		return id;
	case YAML_MAPPING_NODE:
		id = yaml_document_add_mapping(ddoc, src->tag, YAML_BLOCK_MAPPING_STYLE);
		for (yaml_node_pair_t *p = src->data.mapping.pairs.start;
		     id && p < src->data.mapping.pairs.top; p++) {
			int k =
			    copy_node(sdoc, yaml_document_get_node(sdoc, p->key), ddoc, depth + 1);
			int v = k ? copy_node(sdoc, yaml_document_get_node(sdoc, p->value), ddoc,
					      depth + 1)
				  : 0;

			if (!v || !yaml_document_append_mapping_pair(ddoc, id, k, v))
				return 0;
		}
		return id;
	default:
		return 0;
	}
}

struct membuf {
	char *p;
	size_t len, cap;
};

static int membuf_write(void *data, unsigned char *buf, size_t size)
{
	struct membuf *m = data;

	if (m->len + size + 1 > m->cap) {
		size_t cap = m->cap ? m->cap : 1024;
		char *np;

		while (cap < m->len + size + 1)
			cap *= 2;
		np = realloc(m->p, cap);
		if (!np)
			return 0;
		m->p = np;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, size);
	m->len += size;
	m->p[m->len] = 0;
	return 1;
}

int ydoc_emit_subtree(yaml_document_t *doc, yaml_node_t *node, char **out, size_t *len)
{
	yaml_document_t copy;
	yaml_emitter_t em;
	struct membuf m = {0};
	int ok;

	if (!yaml_document_initialize(&copy, NULL, NULL, NULL, 1, 1))
		return -1;
	if (!copy_node(doc, node, &copy, 0) || !yaml_emitter_initialize(&em)) {
		yaml_document_delete(&copy);
		return -1;
	}
	yaml_emitter_set_output(&em, membuf_write, &m);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	/* yaml_emitter_dump opens the stream itself and frees the copied document whether or
	 * not it succeeds, so it must be the first call. */
	ok = yaml_emitter_dump(&em, &copy) && yaml_emitter_close(&em) && yaml_emitter_flush(&em);
	yaml_emitter_delete(&em);
	if (!ok || !m.p) {
		free(m.p);
		return -1;
	}
	*out = m.p;
	*len = m.len;
	return 0;
}
