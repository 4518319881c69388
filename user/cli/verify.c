// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * verify.c: `bpfmesh verify -f EXPECT.yaml`, the guide's security stage as a command a CI job
 * calls: mTLS is on where it must be, authorization policies work, no unauthorized service
 * talks to another. The expectation file:
 *
 *     apiVersion: bpfmesh.io/v1alpha1
 *     kind: Verify
 *     metadata: {name: demo}
 *     spec:
 *       strict: [microservices]            # namespaces that must be STRICT
 *       pairs:
 *       - {from: microservices/frontend, to: "orders-service.microservices:8080",
 *          expect: allow, mtls: required}
 *       - {from: outside/sleep, to: "orders-service.microservices:8080", expect: deny}
 *       - {from: istio-system/istio-ingressgateway, to: "frontend.microservices:80",
 *          expect: allow, probe: false}  # expected traffic, not probed
 *
 * Static checks read the config in force: every workload of a strict namespace is STRICT on
 * every port (as PeerAuthentication resolves for it). Active checks connect from inside the
 * `from` workload (a lab: its first pod, through `lab exec`; a node: the given cgroup) to the
 * Service's address, send one request, and call what comes back allowed (an HTTP answer other
 * than 403) or denied (refused, reset, 403), with the reason the node recorded: the policy in
 * the HTTP path's access log, or the kernel counter that moved (plaintext to STRICT,
 * AuthorizationPolicy). Passive checks ask Prometheus (when there is one) over --window: any
 * traffic into a strict namespace that was not mutual TLS (same-node mesh traffic is attested
 * by the kernel and says so, and so is the ingress gateway's, the node's agent itself), any pair
 * with traffic the expectations do not allow, denials of pairs expected to be allowed.
 *
 * Exit: 0 every check passed, 1 any failed, 2 usage or config error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <json-c/json.h>
#include "args.h"
#include "bpfmesh.h"
#include "cli.h"
#include "duration.h"
#include "emit.h"
#include "model.h"
#include "promq.h"
#include "report.h"
#include "resolve.h"
#include "rollout.h"
#include "security.h"
#include "selfrun.h"
#include "yamltree.h"

#define VERIFY_MAX_PAIRS   256
#define VERIFY_MAX_STRICT  64
#define VERIFY_MAX_CGROUPS 64
#define VERIFY_PROBE_MS	   3000 /* connect and answer, each */
#define VERIFY_SETTLE_MS   2500 /* after the probes, before asking Prometheus (lab: 1 s scrapes) */

static const char verify_usage[] =
    "usage: bpfmesh verify -f EXPECT.yaml (--lab NAME | --config-dir DIR [--node NODE...]\n"
    "                      [--cgroup NS/WORKLOAD=CGROUP_DIR...]) [--prometheus URL]\n"
    "                      [--window DURATION] [--root-namespace NS] [--json] [--junit FILE]\n"
    "  checks that the namespaces in spec.strict are STRICT, probes each pair of spec.pairs\n"
    "  (from: NS/WORKLOAD, to: HOST:PORT, expect: allow|deny, mtls: required, principal:\n"
    "  SPIFFE-ID) from inside the workload, and reads Prometheus (the lab's, or --prometheus)\n"
    "  for traffic the expectations do not allow over --window (default 10m).\n"
    "  exit 0 all passed, 1 a check failed, 2 usage or config error\n";

struct pair {
	char *from_ns, *from_wl; /* from: NS/WORKLOAD */
	char *host;		 /* to: HOST (as written) */
	int port;
	bool allow;
	bool mtls;	 /* mtls: required */
	char *principal; /* principal: the source identity the destination must see */
	bool probe;	 /* probe: false: expected traffic, judged from Prometheus only */
	int line;
	/* resolved */
	const struct svc_obj *svc;
	char addr[64];
};

struct expect {
	const char *file;
	char *strict[VERIFY_MAX_STRICT];
	int nstrict;
	struct pair p[VERIFY_MAX_PAIRS];
	int np;
};

struct cgmap {
	char *ns, *wl, *dir;
};

struct vargs {
	struct stage_args s;
	const char *root_ns;
	int64_t window_ns;
	struct cgmap cg[VERIFY_MAX_CGROUPS];
	int ncg;
};

/* ---------------- the expectation file ---------------- */

static int ferr(const char *file, int line, const char *field, const char *what)
{
	fprintf(stderr, "%s:%d: %s: %s\n", file, line, field, what);
	return -1;
}

static int parse_expect(struct expect *e, const char *file)
{
	struct yfile yf = {0};
	struct yerror ye = {0};
	const struct ynode *root, *spec, *strict, *pairs;
	int rc = -1;

	e->file = file;
	if (yfile_load(file, &yf, &ye)) {
		fprintf(stderr, "%s:%d: %s\n", file, ye.line, ye.msg);
		return -1;
	}
	if (yf.ndocs != 1 || !ynode_is_map(yf.docs[0].root)) {
		fprintf(stderr, "%s: want one expectation document\n", file);
		goto out;
	}
	root = yf.docs[0].root;
	if (ymap_str(root, "apiVersion") &&
	    strcmp(ymap_str(root, "apiVersion"), "bpfmesh.io/v1alpha1")) {
		ferr(file, root->line, "apiVersion", "want bpfmesh.io/v1alpha1");
		goto out;
	}
	/* the fields under spec, or at the top of a bare file */
	spec = ymap_get(root, "spec") ? ymap_get(root, "spec") : root;
	strict = ymap_get(spec, "strict") ? ymap_get(spec, "strict")
					  : ymap_get(spec, "strictNamespaces");
	pairs = ymap_get(spec, "pairs");
	if (strict && (!ynode_is_seq(strict) || strict->n > VERIFY_MAX_STRICT)) {
		ferr(file, strict->line, "spec.strict", "want a list of namespaces");
		goto out;
	}
	for (int i = 0; strict && i < strict->n; i++) {
		const char *s = ynode_str(strict->items[i]);

		if (!s || !*s) {
			ferr(file, strict->items[i]->line, "spec.strict", "want namespace names");
			goto out;
		}
		e->strict[e->nstrict++] = strdup(s);
	}
	if (pairs && (!ynode_is_seq(pairs) || pairs->n > VERIFY_MAX_PAIRS)) {
		ferr(file, pairs->line, "spec.pairs", "want a list of at most 256 pairs");
		goto out;
	}
	for (int i = 0; pairs && i < pairs->n; i++) {
		const struct ynode *n = pairs->items[i];
		const char *from = ymap_str(n, "from"), *to = ymap_str(n, "to");
		const char *ex = ymap_str(n, "expect"), *mt = ymap_str(n, "mtls");
		struct pair *p = &e->p[e->np];
		const char *slash = from ? strchr(from, '/') : NULL;
		const char *colon = to ? strrchr(to, ':') : NULL;
		char field[64];

		snprintf(field, sizeof(field), "spec.pairs[%d]", i);
		p->line = n ? n->line : 0;
		if (!slash || slash == from || !slash[1]) {
			ferr(file, p->line, field, "from: want NAMESPACE/WORKLOAD");
			goto out;
		}
		if (!colon || colon == to || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535) {
			ferr(file, p->line, field, "to: want HOST:PORT");
			goto out;
		}
		if (!ex || (strcmp(ex, "allow") && strcmp(ex, "deny"))) {
			ferr(file, p->line, field, "expect: want allow or deny");
			goto out;
		}
		if (mt && strcmp(mt, "required") && strcmp(mt, "optional")) {
			ferr(file, p->line, field, "mtls: want required (or optional)");
			goto out;
		}
		p->from_ns = strndup(from, slash - from);
		p->from_wl = strdup(slash + 1);
		p->host = strndup(to, colon - to);
		p->port = atoi(colon + 1);
		p->allow = !strcmp(ex, "allow");
		p->mtls = mt && !strcmp(mt, "required");
		p->probe = ymap_bool(n, "probe", true);
		if (!p->probe && !p->allow) {
			ferr(
			    file, p->line, field,
			    "probe: false is for expected traffic (expect: allow): a denial has no "
			    "traffic to judge");
			goto out;
		}
		if (ymap_str(n, "principal"))
			p->principal = strdup(ymap_str(n, "principal"));
		e->np++;
	}
	if (!e->nstrict && !e->np) {
		fprintf(stderr, "%s: nothing to verify: give spec.strict or spec.pairs\n", file);
		goto out;
	}
	rc = 0;
out:
	yfile_free(&yf);
	return rc;
}

static void free_expect(struct expect *e)
{
	for (int i = 0; i < e->nstrict; i++)
		free(e->strict[i]);
	for (int i = 0; i < e->np; i++) {
		free(e->p[i].from_ns);
		free(e->p[i].from_wl);
		free(e->p[i].host);
		free(e->p[i].principal);
	}
}

/* ---------------- config lookups ---------------- */

/* The workload's pods (or the Deployment itself when the config holds no pod of it). */
static int pods_of(const struct mesh_config *c, const char *ns, const char *wl,
		   const struct workload_obj **out, int max)
{
	int n = 0;

	for (int pass = 0; pass < 2 && !n; pass++)
		for (int i = 0; i < c->nworkloads && n < max; i++) {
			const struct workload_obj *w = &c->workloads[i];
			char name[256];

			if (strcmp(w->ns, ns) || (pass == 0) != (w->kind != WL_DEPLOYMENT))
				continue;
			config_workload_name(w, name, sizeof(name));
			if (!strcmp(name, wl))
				out[n++] = w;
		}
	return n;
}

static const char *node_of(const struct workload_obj *w)
{
	return w->node_name ? w->node_name : "";
}

/* ---------------- the probe (runs inside the workload) ---------------- */

/* One connection and one request: prints "allowed CODE" or "denied WHY". */
static int probe_main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char req[600], resp[64] = "";
	const char *cg = NULL;
	int fd, code = 0, err = 0;
	socklen_t el = sizeof(err);
	struct pollfd pf;
	ssize_t n;

	if (argc >= 3 && !strcmp(argv[1], "--cgroup")) {
		cg = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc != 4 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: bpfmesh verify probe [--cgroup DIR] IPV4 PORT HOST\n");
		return 2;
	}
	sa.sin_port = htons(atoi(argv[2]));
	if (cg) { /* a node's workload: its cgroup is what the kernel judges it by */
		char path[600], pid[32];
		int cfd;

		snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
		snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		cfd = open(path, O_WRONLY | O_CLOEXEC);
		if (cfd < 0 || write(cfd, pid, strlen(pid)) < 0) {
			fprintf(stderr, "verify probe: %s: %s\n", path, strerror(errno));
			return 2;
		}
		close(cfd);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 2;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		printf("denied connect: %s\n", strerror(errno));
		return 0;
	}
	pf = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pf, 1, VERIFY_PROBE_MS) <= 0) {
		printf("denied no connection within %d ms\n", VERIFY_PROBE_MS);
		return 0;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		printf("denied connect: %s\n", strerror(err));
		return 0;
	}
	snprintf(req, sizeof(req),
		 "GET / HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: bpfmesh-verify\r\n"
		 "Connection: close\r\n\r\n",
		 argv[3], argv[2]);
	if (write(fd, req, strlen(req)) < 0) {
		printf("denied write: %s\n", strerror(errno));
		return 0;
	}
	pf.events = POLLIN;
	if (poll(&pf, 1, VERIFY_PROBE_MS) <= 0) {
		printf("denied no answer within %d ms\n", VERIFY_PROBE_MS);
		return 0;
	}
	n = read(fd, resp, sizeof(resp) - 1);
	close(fd);
	if (n < 0) {
		printf("denied %s\n", errno == ECONNRESET ? "reset" : strerror(errno));
		return 0;
	}
	if (n == 0) {
		printf("denied closed without an answer\n");
		return 0;
	}
	if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
		printf("allowed (not HTTP)\n");
		return 0;
	}
	if (code == 403)
		printf("denied 403\n");
	else
		printf("allowed %d\n", code);
	return 0;
}

/* ---------------- reasons the nodes recorded ---------------- */

/* the counters' names as `bpfmesh status -o json` gives them: headers/bpfmesh.h's one list */
static const char *const stat_metric[BM_ST_MAX] = {
#define STAT_METRIC(id, phrase, metric) [BM_ST_##id] = metric,
    BM_STATS(STAT_METRIC)
#undef STAT_METRIC
};

/* Counters that say why a connection was refused, and how verify says it. */
static const struct {
	enum bm_stat id;
	const char *why;
} deny_counters[] = {
    {BM_ST_STRICT_DROP, "STRICT: plaintext dropped by the destination's kernel"},
    {BM_ST_AUTHZ_DENY, "AuthorizationPolicy: dropped by the destination's kernel"},
    {BM_ST_V6_REFUSED, "STRICT: IPv6 to a remote STRICT workload refused"},
    {BM_ST_SPOOF_DROP, "dropped: the pod sent from an address not its own"},
    {BM_ST_NO_BACKEND, "no endpoint for the service"},
};
#define NDENY (sizeof(deny_counters) / sizeof(deny_counters[0]))

static void counters(const struct mesh_target *t, long long out[][NDENY])
{
	for (int i = 0; i < t->nnodes; i++) {
		char *o = NULL;
		int rc = selfrun((char *[]){"status", "--node", t->nodes[i], "-o", "json", NULL},
				 30000, &o, NULL);
		struct json_object *st = rc == 0 ? json_tokener_parse(o) : NULL;
		struct json_object *dp = rj_get(st, "datapath");

		for (size_t k = 0; k < NDENY; k++)
			out[i][k] = dp && rj_get(dp, stat_metric[deny_counters[k].id])
					? json_object_get_int64(rj_get(dp, stat_metric[deny_counters[k].id]))
					: 0;
		json_object_put(st);
		free(o);
	}
}

/* The newest HTTP event of node i's access log from a pod of the workload with a 403, and
 * its response_code_details. */
static bool http_denial(const struct mesh_target *t, int i, const struct pair *p, char *why,
			size_t len)
{
	char *out = NULL, src[300], wl[300], svc[300];
	bool found = false;
	int rc;

	snprintf(src, sizeof(src), "%s/%s-", p->from_ns, p->from_wl);
	snprintf(wl, sizeof(wl), "%s/%s", p->from_ns, p->from_wl);
	snprintf(svc, sizeof(svc), "%s/%s", p->svc->ns, p->svc->name);
	rc = selfrun((char *[]){"observe", "--node", t->nodes[i], "--http", "--json", "--since",
				"30s", "--workload", wl, NULL},
		     30000, &out, NULL);
	for (char *line = rc == 0 ? strtok(out, "\n") : NULL; line; line = strtok(NULL, "\n")) {
		struct json_object *e = json_tokener_parse(line);
		const char *s = rj_str(e, "source");

		/* the destination's agent may not know the service: "" then */
		if (e && s && !strncmp(s, src, strlen(src)) && rj_str(e, "service") &&
		    (!*rj_str(e, "service") || !strcmp(rj_str(e, "service"), svc)) &&
		    json_object_get_int(rj_get(e, "response_code")) == 403 &&
		    (!found || rj_str(e, "response_code_details"))) {
			const char *d = rj_str(e, "response_code_details");

			snprintf(why, len, "HTTP 403 from the %s's agent: %s%s",
				 rj_str(e, "reporter") ?: "?", d ?: "AuthorizationPolicy",
				 d && strstr(d, "[none]") ? " (no ALLOW policy matched)" : "");
			found = true;
		}
		json_object_put(e);
	}
	free(out);
	return found;
}

/* ---------------- the run ---------------- */

static int parse_vargs(int argc, char **argv, struct vargs *a)
{
	static const struct option opts[] = {STAGE_OPTIONS,
					     {"cgroup", required_argument, 0, 'c'},
					     {"window", required_argument, 0, 'w'},
					     {"root-namespace", required_argument, 0, 'r'},
					     {0, 0, 0, 0}};
	int o, r;

	memset(a, 0, sizeof(*a));
	a->window_ns = 600000000000LL;
	a->root_ns = "istio-system";
	optind = 1;
	while ((o = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
		if ((r = stage_option(&a->s, o, optarg)) < 0)
			return -1;
		if (r)
			continue;
		switch (o) {
		case 'c': {
			char *eq = strchr(optarg, '='), *sl = strchr(optarg, '/');

			if (!eq || !sl || sl > eq || a->ncg == VERIFY_MAX_CGROUPS)
				return -1;
			a->cg[a->ncg].ns = strndup(optarg, sl - optarg);
			a->cg[a->ncg].wl = strndup(sl + 1, eq - sl - 1);
			a->cg[a->ncg].dir = eq + 1;
			a->ncg++;
			break;
		}
		case 'p':
			a->s.prometheus = optarg;
			break;
		case 'w':
			if (parse_duration_ns(optarg, &a->window_ns) ||
			    a->window_ns < 1000000000LL) {
				fprintf(stderr,
					"verify: --window %s: want a duration of at least 1s\n",
					optarg);
				return -1;
			}
			break;
		case 'r':
			a->root_ns = optarg;
			break;
		default:
			return -1;
		}
	}
	if (optind != argc || stage_check(&a->s))
		return -1;
	if (a->s.t.lab && (a->s.t.nnodes || a->ncg)) {
		fprintf(stderr, "verify: --node and --cgroup go with --config-dir\n");
		return -1;
	}
	return 0;
}

struct ctx {
	struct vargs *a;
	struct expect *e;
	struct mesh_config *c;
	struct report rep;
	FILE *say;
};

static bool check(struct ctx *x, const char *cls, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static bool check(struct ctx *x, const char *cls, const char *name, bool ok, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(x->say, "%s %s: %s\n", ok ? "PASS" : "FAIL", name, msg);
	return report_add(&x->rep, cls, name, ok, 0, "%s", msg);
}

static void check_strict(struct ctx *x, const char *ns)
{
	char name[200], bad[1024] = "";
	int nwl = 0, nbad = 0;

	snprintf(name, sizeof(name), "namespace %s is STRICT", ns);
	for (int i = 0; i < x->c->nworkloads; i++) {
		const struct workload_obj *w = &x->c->workloads[i];

		if (strcmp(w->ns, ns) || w->kind == WL_DEPLOYMENT)
			continue;
		nwl++;
		for (int k = -1; k < w->nports; k++) {
			int port = k < 0 ? 0 : w->ports[k].port;
			enum mtls_mode m = sec_mtls_mode(x->c, x->a->root_ns, w, port);

			if (m != MTLS_STRICT) {
				size_t o = strlen(bad);

				if (o < sizeof(bad) - 100)
					snprintf(bad + o, sizeof(bad) - o, "%s%s/%s%s%.0d is %s",
						 nbad ? "; " : "", w->ns, w->name,
						 port ? " port " : "", port,
						 m == MTLS_DISABLE ? "DISABLE" : "PERMISSIVE");
				nbad++;
				break;
			}
		}
	}
	if (!nwl)
		check(x, "verify.strict", name, false, "no workload runs in namespace %s", ns);
	else if (nbad)
		check(x, "verify.strict", name, false, "%d of %d workload(s) not STRICT: %s", nbad,
		      nwl, bad);
	else
		check(x, "verify.strict", name, true,
		      "every one of %d workload(s) is STRICT on every port (PeerAuthentication)",
		      nwl);
}

/* Run the probe from inside the pair's source; its one-line verdict into out. */
static int run_probe(struct ctx *x, const struct pair *p, char *out, size_t len)
{
	char self[600], port[16], *o = NULL, *er = NULL, target[300];
	const char *cg = NULL;
	const struct workload_obj *pods[8];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int rc;

	if (n < 0)
		return -1;
	self[n] = 0;
	snprintf(port, sizeof(port), "%d", p->port);
	if (x->a->s.t.lab) {
		bool deploy = false;

		for (int i = 0; i < x->c->nworkloads; i++)
			deploy |= x->c->workloads[i].kind == WL_DEPLOYMENT &&
				  !strcmp(x->c->workloads[i].ns, p->from_ns) &&
				  !strcmp(x->c->workloads[i].name, p->from_wl);
		snprintf(target, sizeof(target), "%s%s", deploy ? "deploy/" : "", p->from_wl);
		if (!deploy && !pods_of(x->c, p->from_ns, p->from_wl, pods, 8)) {
			snprintf(out, len, "no workload %s/%s in the lab", p->from_ns, p->from_wl);
			return -1;
		}
		rc = selfrun((char *[]){"lab", "exec", "--name", (char *)x->a->s.t.lab, "-n",
					p->from_ns, target, "--", self, "verify", "probe",
					(char *)p->addr, port, p->host, NULL},
			     3 * VERIFY_PROBE_MS + 10000, &o, &er);
	} else {
		for (int i = 0; i < x->a->ncg; i++)
			if (!strcmp(x->a->cg[i].ns, p->from_ns) &&
			    !strcmp(x->a->cg[i].wl, p->from_wl))
				cg = x->a->cg[i].dir;
		if (!cg) {
			snprintf(
			    out, len,
			    "no --cgroup %s/%s=DIR given: the probe must run in the workload's "
			    "cgroup",
			    p->from_ns, p->from_wl);
			return -1;
		}
		rc = selfrun((char *[]){"verify", "probe", "--cgroup", (char *)cg, (char *)p->addr,
					port, p->host, NULL},
			     3 * VERIFY_PROBE_MS + 10000, &o, &er);
	}
	snprintf(out, len, "%s",
		 rc == 0 && o ? strtok(o, "\n") ?: ""
		 : er && *er  ? er
			      : "no answer");
	for (char *s = out; *s; s++)
		if (*s == '\n')
			*s = ' ';
	free(o);
	free(er);
	return rc == 0 ? 0 : -1;
}

/* The workload port the Service sends the pair's port to (0 when it is named: the mode of
 * the workload as a whole). */
static int target_port(const struct pair *p)
{
	for (int i = 0; i < p->svc->nports; i++)
		if (p->svc->ports[i].port == p->port)
			return p->svc->ports[i].target_port;
	return 0;
}

static void check_pair(struct ctx *x, struct pair *p)
{
	char name[400], verdict[512], why[700] = "", cls[64] = "verify.pairs";
	long long before[ROLLOUT_MAX_NODES][NDENY], after[ROLLOUT_MAX_NODES][NDENY];
	const struct workload_obj *src[8];
	int nsrc = pods_of(x->c, p->from_ns, p->from_wl, src, 8);
	bool allowed;

	snprintf(name, sizeof(name), "%s/%s -> %s:%d %s", p->from_ns, p->from_wl, p->host, p->port,
		 p->allow ? "allowed" : "denied");
	p->svc = target_service(x->c, p->host, p->from_ns);
	if (!p->svc || resolve_service_vip(x->c, p->svc, BM_FAM_V4, p->addr, sizeof(p->addr))) {
		check(x, cls, name, false, "%s: no Service with an IPv4 address in the config",
		      p->host);
		return;
	}
	if (!p->probe) { /* (the ingress gateway, say: no pod to probe from) */
		check(x, cls, name, true,
		      "not probed (probe: false): its traffic is judged from Prometheus");
		return;
	}
	if (!nsrc) {
		check(x, cls, name, false, "no workload %s/%s in the config", p->from_ns,
		      p->from_wl);
		return;
	}
	counters(&x->a->s.t, before);
	if (run_probe(x, p, verdict, sizeof(verdict))) {
		check(x, cls, name, false, "the probe did not run: %s", verdict);
		return;
	}
	allowed = !strncmp(verdict, "allowed", 7);
	if (p->allow && !strncmp(verdict, "allowed 503", 11)) {
		check(x, cls, name, false,
		      "answered 503: reached the mesh but no workload served it (no healthy "
		      "upstream, or refused on the way)");
		return;
	}
	/* a pair that should get through and timed out: once more, so that one lost SYN or a
	 * listener busy reloading is not reported as a policy (the line says it was asked twice) */
	if (!allowed && p->allow && strstr(verdict, " within ")) {
		char again[512];

		if (run_probe(x, p, again, sizeof(again)) == 0) {
			snprintf(verdict, sizeof(verdict), "%.400s (second probe; first: timeout)",
				 again);
			allowed = !strncmp(verdict, "allowed", 7);
		}
	}
	if (!allowed) {
		counters(&x->a->s.t, after);
		for (int i = 0; i < x->a->s.t.nnodes && !why[0]; i++)
			for (size_t k = 0; k < NDENY && !why[0]; k++)
				if (after[i][k] > before[i][k])
					snprintf(why, sizeof(why), "%s (node %s)",
						 deny_counters[k].why, x->a->s.t.nodes[i]);
		/* the agent that decided names the policy: prefer its record (the access log is
		 * written every 100 ms: look again for a second) */
		for (int t = 0; t < 8 && !why[0] && !strncmp(verdict, "denied 403", 10); t++) {
			char got[700] = "";

			usleep(150 * 1000);
			for (int i = 0; i < x->a->s.t.nnodes && !strstr(got, "rbac_"); i++)
				http_denial(&x->a->s.t, i, p, got, sizeof(got));
			if (got[0] && (strstr(got, "rbac_") || t >= 3))
				snprintf(why, sizeof(why), "%s", got);
		}
		if (!why[0])
			snprintf(why, sizeof(why), "no node recorded why");
	}
	if (allowed != p->allow) {
		check(x, cls, name, false, "expected %s, got %s%s%s", p->allow ? "allow" : "deny",
		      verdict, why[0] ? ": " : "", why);
		return;
	}
	if (!allowed) {
		check(x, cls, name, true, "%s: %s", verdict, why);
		return;
	}
	/* allowed as expected: with the identity and the protection asked for */
	{
		const struct workload_obj *s = src[0];
		char want[400];

		snprintf(want, sizeof(want), "cluster.local/ns/%s/sa/%s", s->ns,
			 s->service_account ? s->service_account : "default");
		if (p->principal) {
			const char *pr = p->principal;

			if (!strncmp(pr, "spiffe://", 9))
				pr += 9;
			if (!config_in_mesh(x->c, s) || strcmp(pr, want)) {
				check(x, cls, name, false,
				      "%s, but the destination sees %s, not %s", verdict,
				      config_in_mesh(x->c, s) ? want : "no principal (plaintext)",
				      p->principal);
				return;
			}
		}
		if (p->mtls) {
			bool strict = true;
			int same = 0, remote = 0;

			for (int i = 0; i < x->c->nworkloads; i++) {
				const struct workload_obj *w = &x->c->workloads[i];

				if (w->kind == WL_DEPLOYMENT || strcmp(w->ns, p->svc->ns) ||
				    !p->svc->has_selector ||
				    !kv_match(&p->svc->selector, &w->labels))
					continue;
				if (!strcmp(node_of(w), node_of(s)))
					same++;
				else
					remote++;
				strict &= sec_mtls_mode(x->c, x->a->root_ns, w, target_port(p)) !=
					  MTLS_DISABLE;
			}
			if (!config_in_mesh(x->c, s) || !strict) {
				check(x, cls, name, false, "%s, but in plaintext: %s", verdict,
				      !strict ? "a destination's mTLS mode is DISABLE"
					      : "the source is not in the mesh");
				return;
			}
			check(x, cls, name, true, "%s as %s: %s%s%s", verdict, want,
			      remote ? "to other nodes mutual TLS through the agents' tunnel" : "",
			      remote && same ? "; " : "",
			      same ? "on its own node attested by the kernel, not encrypted "
				     "(docs/mtls.md)"
				   : "");
			return;
		}
		check(x, cls, name, true, "%s", verdict);
	}
}

/* ---------------- passive checks (Prometheus) ---------------- */

/* Is there an expectation from (ns, wl) to the destination (its Service, or a workload its
 * selector holds: traffic to a pod's own address)? 1 allow, 0 deny, -1 none. */
static int expected(const struct ctx *x, const char *sns, const char *swl, const char *dns,
		    const char *dname, const char *dwns, const char *dwl)
{
	for (int i = 0; i < x->e->np; i++) {
		const struct pair *p = &x->e->p[i];
		const struct workload_obj *d[16];
		int nd = 0;
		bool to = false;

		if (!p->svc || strcmp(p->from_ns, sns) || strcmp(p->from_wl, swl))
			continue;
		to = !strcmp(p->svc->ns, dns) && !strcmp(p->svc->name, dname);
		if (!to && dwl && *dwl && strcmp(dwl, "unknown"))
			nd = pods_of(x->c, dwns, dwl, d, 16);
		for (int k = 0; k < nd && !to; k++)
			to = p->svc->has_selector && !strcmp(d[k]->ns, p->svc->ns) &&
			     kv_match(&p->svc->selector, &d[k]->labels);
		if (to)
			return p->allow;
	}
	return -1;
}

static bool same_node(const struct mesh_config *c, const char *sns, const char *swl,
		      const char *dns, const char *dwl)
{
	const struct workload_obj *a[16], *b[16];
	int na = pods_of(c, sns, swl, a, 16), nb = pods_of(c, dns, dwl, b, 16);

	/* series merge a workload's pods: some of it on one node is the same-node share */
	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++)
			if (!strcmp(node_of(a[i]), node_of(b[j])))
				return true;
	return false;
}

static void passive(struct ctx *x, struct prom *pr)
{
	char q[4096], w[32], name[600];
	struct json_object *v;
	int flows = 0, bad_mtls = 0, unlisted = 0, denials = 0, outside = 0;

	snprintf(w, sizeof(w), "%llds", (long long)(x->a->window_ns / 1000000000LL));
	/* traffic that got through: bytes on TCP, answers other than 403 on HTTP; a series born
	 * within the window counts too (increase() cannot see what its first sample holds) */
	{
		static const char *const sel[] = {
		    "istio_tcp_sent_bytes_total{reporter=\"source\"}",
		    "istio_tcp_received_bytes_total{reporter=\"source\"}",
		    "istio_requests_total{reporter=\"source\",response_code!=\"403\","
		    "response_code!=\"0\"}"};
		static const char *const by =
		    "sum by (source_workload_namespace, source_workload, "
		    "destination_service_namespace, destination_service_name, "
		    "destination_workload_namespace, destination_workload, "
		    "connection_security_policy)";
		size_t o = 0;

		for (int i = 0; i < 3; i++)
			o += snprintf(
			    q + o, sizeof(q) - o,
			    "%s%s (increase(%s[%s])) > 0 or %s (%s unless %s offset %s) > 0",
			    i ? " or " : "", by, sel[i], w, by, sel[i], sel[i], w);
	}
	v = prom_vector(pr, q);
	if (!v) {
		check(x, "verify.prometheus", "prometheus", false, "%s", pr->err);
		return;
	}
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *m = rj_get(json_object_array_get_idx(v, i), "metric");
		const char *sns = rj_str(m, "source_workload_namespace") ?: "";
		const char *swl = rj_str(m, "source_workload") ?: "unknown";
		const char *dns = rj_str(m, "destination_service_namespace") ?: "";
		const char *dsn = rj_str(m, "destination_service_name") ?: "";
		const char *dwns = rj_str(m, "destination_workload_namespace") ?: "";
		const char *dwl = rj_str(m, "destination_workload") ?: "";
		const char *sec = rj_str(m, "connection_security_policy") ?: "none";
		bool into_strict = false;
		int ex;

		flows++;
		for (int k = 0; k < x->e->nstrict; k++)
			into_strict |=
			    !strcmp(dwns, x->e->strict[k]) || !strcmp(dns, x->e->strict[k]);
		/* a request no workload received (a local reply: no healthy upstream, a fault) is
		 * no traffic into the namespace */
		if (into_strict && strcmp(sec, "mutual_tls") && *dwl && strcmp(dwl, "unknown")) {
			const struct workload_obj *s[2];
			/* the ingress gateway is a node's agent: plaintext from it is a delivery
			 * to a pod of its own node (to other nodes it goes through the tunnel) */
			bool gw = !strcmp(sns, GW_NS) && !strcmp(swl, GW_NAME);
			bool attested =
			    gw || (pods_of(x->c, sns, swl, s, 2) && config_in_mesh(x->c, s[0]) &&
				   same_node(x->c, sns, swl, dwns, dwl));

			snprintf(name, sizeof(name), "mutual TLS into %s: %s/%s -> %s/%s", dwns,
				 sns, swl, dns, dsn);
			if (!attested) {
				check(x, "verify.traffic", name, false,
				      "traffic into STRICT namespace %s over the last %s was not "
				      "mutual "
				      "TLS (connection_security_policy=\"%s\")",
				      dwns, w, sec);
				bad_mtls++;
			}
		}
		if (!strcmp(swl, "unknown"))
			continue; /* from outside the mesh's workloads: the STRICT check speaks */
		if ((!*dsn || !strcmp(dsn, "unknown")) && (!*dwl || !strcmp(dwl, "unknown"))) {
			outside++; /* to no Service and no workload of the config: not a pair */
			continue;
		}
		ex = expected(x, sns, swl, dns, dsn, dwns, dwl);
		if (ex != 1) {
			if (strcmp(dsn, "unknown") && *dsn)
				snprintf(name, sizeof(name), "traffic %s/%s -> %s/%s", sns, swl,
					 dns, dsn);
			else
				snprintf(name, sizeof(name), "traffic %s/%s -> workload %s/%s", sns,
					 swl, dwns, dwl);
			check(x, "verify.traffic", name, false,
			      ex == 0
				  ? "traffic over the last %s, but the expectations deny this pair"
				  : "traffic over the last %s that no expectation allows",
			      w);
			unlisted++;
		}
	}
	json_object_put(v);
	/* denials by policy of pairs expected to be allowed */
	snprintf(
	    q, sizeof(q),
	    "sum by (source_workload_namespace, source_workload, destination_service_namespace, "
	    "destination_service_name) (increase(istio_requests_total{response_code=\"403\"}[%s]))"
	    " > 0 or sum by (source_workload_namespace, source_workload, "
	    "destination_service_namespace, destination_service_name) "
	    "(istio_requests_total{response_code=\"403\"} unless "
	    "istio_requests_total{response_code=\"403\"} offset %s) > 0",
	    w, w);
	v = prom_vector(pr, q);
	if (!v)
		check(x, "verify.prometheus", "prometheus: denials by policy", false, "%s", pr->err);
	for (size_t i = 0; v && i < json_object_array_length(v); i++) {
		struct json_object *m = rj_get(json_object_array_get_idx(v, i), "metric");
		const char *sns = rj_str(m, "source_workload_namespace") ?: "";
		const char *swl = rj_str(m, "source_workload") ?: "unknown";
		const char *dns = rj_str(m, "destination_service_namespace") ?: "";
		const char *dsn = rj_str(m, "destination_service_name") ?: "";

		denials++;
		if (expected(x, sns, swl, dns, dsn, NULL, NULL) == 1) {
			snprintf(name, sizeof(name), "denials %s/%s -> %s/%s", sns, swl, dns, dsn);
			check(x, "verify.traffic", name, false,
			      "requests denied (403) over the last %s for a pair expected to be "
			      "allowed",
			      w);
		}
	}
	json_object_put(v);
	check(x, "verify.traffic", "traffic in Prometheus", !bad_mtls && !unlisted,
	      "%d flow(s) over the last %s: %d not mutual TLS into a strict namespace, %d not "
	      "allowed by the expectations, %d to no Service or workload of the config (not "
	      "judged); %d pair(s) with requests denied by policy",
	      flows, w, bad_mtls, unlisted, outside, denials);
}

static int verify_run(int argc, char **argv)
{
	struct vargs a;
	struct expect e = {0};
	struct ctx x = {.a = &a, .e = &e};
	struct prom pr = {0};
	char err[1024];
	int rc = 2;

	if (args_help(argc, argv)) {
		fputs(verify_usage, stdout);
		return 0;
	}
	if (parse_vargs(argc, argv, &a)) {
		fputs(verify_usage, stderr);
		return 2;
	}
	x.say = a.s.json ? stderr : stdout;
	if (parse_expect(&e, a.s.file))
		goto out;
	if (target_open(&a.s.t, err, sizeof(err))) {
		fprintf(stderr, "verify: %s\n", err);
		goto out;
	}
	x.c = target_config(&a.s.t, err, sizeof(err));
	if (!x.c) {
		fprintf(stderr, "verify: %s\n", err);
		goto out;
	}
	report_init(&x.rep, "bpfmesh verify");
	for (int i = 0; i < e.nstrict; i++)
		check_strict(&x, e.strict[i]);
	for (int i = 0; i < e.np; i++)
		check_pair(&x, &e.p[i]);
	snprintf(pr.url, sizeof(pr.url), "%s", a.s.prometheus ? a.s.prometheus : a.s.t.prometheus);
	if (pr.url[0]) {
		if (e.np)
			usleep(VERIFY_SETTLE_MS *
			       1000); /* the probes' traffic in the next scrape */
		passive(&x, &pr);
	} else
		fprintf(x.say, "(no Prometheus: traffic not checked; give --prometheus URL)\n");
	fprintf(x.say, "%d check(s), %d failed\n", x.rep.n, x.rep.failures);
	rc = x.rep.failures ? 1 : 0;
	if (a.s.json) {
		struct json_object *d = json_object_new_object();

		jset_bool(d, "ok", !x.rep.failures);
		jset_int(d, "checks", x.rep.n);
		jset_int(d, "failed", x.rep.failures);
		json_object_object_add(d, "report", report_json(&x.rep));
		out_write(stdout, d, OUT_JSON);
		json_object_put(d);
	}
	if (a.s.junit && report_junit(&x.rep, a.s.junit)) {
		fprintf(stderr, "verify: --junit %s: %s\n", a.s.junit, strerror(errno));
		rc = rc ? rc : 2;
	}
	report_free(&x.rep);
out:
	if (x.c)
		config_free(x.c);
	target_close(&a.s.t);
	for (int i = 0; i < a.ncg; i++)
		free(a.cg[i].ns), free(a.cg[i].wl);
	free_expect(&e);
	return rc;
}

int cmd_verify(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "probe"))
		return probe_main(argc - 1, argv + 1);
	return verify_run(argc, argv);
}
