// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * observe.c: `bpfmesh observe --node NAME [--follow] [--json] [--since DURATION] [--workload W]
 * [--service S] [--verdict open|close|fail|eject|deny]`, the flow log, like `hubble observe`.
 * It reads the node's pinned ring buffer (bm_events) directly, so it works while the agent is
 * down; names come from the pinned bm_names map. A ring buffer has one reader: two observers
 * share the events. Without --follow it prints what is buffered and exits. Each text line
 * starts with the event's wall-clock time as hubble prints it ("Dec  1 16:04:53.816"); JSON
 * lines carry it as RFC 3339 ("time") and as the kernel's monotonic nanoseconds ("time_ns").
 *
 * Request events of the HTTP path (the agent's access log, <run dir>/access.log and its one
 * rotated predecessor) follow the flows; --http shows only those. Their text line: time,
 * "http", client -> service -> destination workload, method authority+path, response code,
 * Envoy's response flags, duration, upstream host, attempts, which agent reported it.
 */
#include <getopt.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>
#include "args.h"
#include "cli.h"
#include "duration.h"
#include "emit.h"
#include "pins.h"

struct obs {
	int names_fd;
	bool json;
	const char *workload, *service, *verdict;
	long shown;
	int64_t mono_to_real_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC, taken at start */
	int64_t since_real_ns;	 /* --since, for request events (wall clock) */
	__u64 since_mono_ns;	 /* --since: events older than this are left out */
};

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The event's wall-clock time: "Dec  1 16:04:53.816" (text) or RFC 3339 UTC with
 * nanoseconds (JSON). */
static void event_time(const struct obs *o, __u64 mono_ns, bool rfc3339, char *buf, size_t len)
{
	int64_t real = (int64_t)mono_ns + o->mono_to_real_ns;
	time_t sec = real / 1000000000LL;
	long nsec = real % 1000000000LL;
	struct tm tm;
	char base[64];

	if (rfc3339) {
		gmtime_r(&sec, &tm);
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(buf, len, "%s.%09ldZ", base, nsec);
	} else {
		localtime_r(&sec, &tm);
		strftime(base, sizeof(base), "%b %e %H:%M:%S", &tm);
		snprintf(buf, len, "%s.%03ld", base, nsec / 1000000);
	}
}

/* One JSON line: the event object, with its time added first. */
static void print_json(const struct obs *o, __u64 ts_ns, struct json_object *ev)
{
	char t[64];

	event_time(o, ts_ns, true, t, sizeof(t));
	jset_str(ev, "time", t);
	jset_int(ev, "time_ns", (long long)ts_ns);
	printf("%s\n", json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(ev);
}

static struct json_object *peer_obj(const char *ns, const char *wl, const char *pod)
{
	struct json_object *p = json_object_new_object();

	jset_str(p, "namespace", ns);
	jset_str(p, "workload", wl);
	jset_str(p, "pod", pod);
	return p;
}

static volatile sig_atomic_t obs_stop;

static void obs_sigint(int sig)
{
	(void)sig;
	obs_stop = 1;
}

static const char *verdict_name(__u32 t)
{
	switch (t) {
	case BM_EV_OPEN:
		return "open";
	case BM_EV_CLOSE:
		return "close";
	case BM_EV_FAIL:
		return "fail";
	case BM_EV_EJECT:
		return "eject";
	case BM_EV_DENY:
		return "deny";
	}
	return "unknown";
}

/* Split a bm_names entry "a/b/c[/d]" into parts (unknown when missing). */
static int name_parts(int fd, __u32 kind, __u32 id, char parts[4][BM_NAME_LEN])
{
	struct bm_name_key k = {.kind = kind, .id = id};
	struct bm_name v = {};
	char *save = NULL, *tok;
	int n = 0;

	for (int i = 0; i < 4; i++)
		snprintf(parts[i], BM_NAME_LEN, "unknown");
	if (!id || fd < 0 || bpf_map_lookup_elem(fd, &k, &v))
		return 0;
	v.name[BM_NAME_LEN - 1] = 0;
	for (tok = strtok_r(v.name, "/", &save); tok && n < 4; tok = strtok_r(NULL, "/", &save))
		snprintf(parts[n++], BM_NAME_LEN, "%s", tok);
	return n;
}

/* Something the kernel refused (enum bm_deny): a connection into a local pod (STRICT, a
 * policy, plaintext UDP), or a packet a local pod may not send (a spoofed source, the agent's
 * listeners). backend_id is the local pod either way. */
static int on_deny(struct obs *o, const struct bm_event *e)
{
	char dst[4][BM_NAME_LEN], src[64] = "?", policy[BM_NAME_LEN + 64] = "";
	struct bm_name_key k = {.kind = BM_NAME_POLICY, .id = e->policy_id};
	bool outgoing = e->reason == BM_DENY_SPOOF || e->reason == BM_DENY_AGENT_PORT;
	struct bm_name v;

	if (o->verdict && strcmp(o->verdict, "deny"))
		return 0;
	name_parts(o->names_fd, BM_NAME_POD, e->backend_id, dst);
	if (o->workload && strcmp(o->workload, dst[1]))
		return 0;
	inet_ntop(e->family == BM_FAM_V6 ? AF_INET6 : AF_INET, e->peer_addr, src, sizeof(src));
	switch (e->reason) {
	case BM_DENY_AUTHZ:
		if (o->names_fd >= 0 && bpf_map_lookup_elem(o->names_fd, &k, &v) == 0)
			snprintf(policy, sizeof(policy), "AuthorizationPolicy %.*s",
				 BM_NAME_LEN - 30, v.name);
		else
			snprintf(policy, sizeof(policy), "AuthorizationPolicy (id %u)",
				 e->policy_id);
		break;
	case BM_DENY_STRICT_UDP:
		snprintf(policy, sizeof(policy),
			 "PeerAuthentication STRICT (plaintext UDP, --strict-udp drop)");
		break;
	case BM_DENY_SPOOF:
		snprintf(policy, sizeof(policy),
			 "source address verification (not the pod's own address)");
		break;
	case BM_DENY_AGENT_PORT:
		snprintf(policy, sizeof(policy),
			 "agent port guard (not a connection the kernel sent there)");
		break;
	default:
		snprintf(policy, sizeof(policy), "PeerAuthentication STRICT (plaintext)");
	}
	if (o->json) {
		struct json_object *ev = json_object_new_object(), *who;

		jset_str(ev, "verdict", "deny");
		jset_str(ev, "source_address", src);
		who = peer_obj(dst[0], dst[1], dst[2]);
		if (e->port) /* ARP and ND have none */
			jset_int(who, "port", ntohs(e->port));
		json_object_object_add(ev, outgoing ? "source" : "destination", who);
		jset_str(ev, "by", policy);
		print_json(o, e->ts_ns, ev);
	} else {
		char t[64];

		event_time(o, e->ts_ns, false, t, sizeof(t));
		if (outgoing && e->port)
			printf("%s: deny   %s/%s sent %s -> port %u: by %s\n", t, dst[0], dst[2],
			       src, ntohs(e->port), policy);
		else if (outgoing)
			printf("%s: deny   %s/%s sent %s: by %s\n", t, dst[0], dst[2], src, policy);
		else
			printf("%s: deny   %s -> %s/%s:%u by %s\n", t, src, dst[0], dst[2],
			       ntohs(e->port), policy);
	}
	o->shown++;
	return 0;
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct obs *o = ctx;
	const struct bm_event *e = data;
	char src[4][BM_NAME_LEN], dst[4][BM_NAME_LEN], svc[4][BM_NAME_LEN];

	if (len < sizeof(*e) || e->ts_ns < o->since_mono_ns)
		return 0;
	if (e->type == BM_EV_DENY)
		return on_deny(o, e);
	name_parts(o->names_fd, BM_NAME_POD, e->src_pod, src);
	name_parts(o->names_fd, BM_NAME_BACKEND, e->backend_id, dst);
	name_parts(o->names_fd, BM_NAME_SVC, e->svc_id, svc);
	if (o->verdict && strcmp(o->verdict, verdict_name(e->type)))
		return 0;
	if (o->workload && strcmp(o->workload, src[1]) && strcmp(o->workload, dst[1]))
		return 0;
	if (o->service && strcmp(o->service, svc[1]))
		return 0;
	if (o->json) {
		struct json_object *ev = json_object_new_object(), *d;

		jset_str(ev, "verdict", verdict_name(e->type));
		jset_int(ev, "connection", (long long)e->cookie);
		json_object_object_add(ev, "source", peer_obj(src[0], src[1], src[2]));
		d = peer_obj(dst[0], dst[1], dst[2]);
		jset_str(d, "service", svc[1]);
		jset_str(d, "service_namespace", svc[0]);
		jset_str(d, "version", dst[3]);
		json_object_object_add(ev, "destination", d);
		jset_int(ev, "bytes_sent", (long long)e->bytes_sent);
		jset_int(ev, "bytes_received", (long long)e->bytes_received);
		jset_double(ev, "duration_ms", e->duration_ns / 1e6);
		print_json(o, e->ts_ns, ev);
	} else {
		char t[64];

		event_time(o, e->ts_ns, false, t, sizeof(t));
		printf("%s: %-6s %s/%s (%s) -> %s/%s -> %s/%s v=%s", t, verdict_name(e->type),
		       src[0], src[1], src[2], svc[0], svc[1], dst[0], dst[2], dst[3]);
		if (e->type == BM_EV_CLOSE)
			printf(" sent %llu received %llu in %.1f ms",
			       (unsigned long long)e->bytes_sent,
			       (unsigned long long)e->bytes_received, e->duration_ns / 1e6);
		else if (e->type == BM_EV_FAIL)
			printf(" after %.1f ms", e->duration_ns / 1e6);
		printf("\n");
	}
	o->shown++;
	return 0;
}

/* ---------------- request events (the HTTP path's access log) ---------------- */

static const char *js(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static int64_t ji(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

/* "ns/pod" is of workload w? (w: a pod or workload name, or ns/name; pod web-v1-0 is of
 * workload web-v1) */
static bool wl_is(const char *nsname, const char *w)
{
	const char *slash = strchr(nsname, '/'), *name = slash ? slash + 1 : nsname;
	const char *wslash = strchr(w, '/');
	size_t n;

	if (!strcmp(nsname, w) || !strcmp(name, w))
		return true;
	if (wslash) { /* ns/name: the same namespace, then the name as below */
		if (!slash || (size_t)(slash - nsname) != (size_t)(wslash - w) ||
		    strncmp(nsname, w, wslash - w))
			return false;
		w = wslash + 1;
	}
	n = strlen(w);
	return !strncmp(name, w, n) && name[n] == '-' && strspn(name + n + 1, "0123456789") &&
	       !name[n + 1 + strspn(name + n + 1, "0123456789")];
}

static void on_request(struct obs *o, const char *line)
{
	struct json_object *e = json_tokener_parse(line);
	int64_t t;

	if (!e)
		return;
	t = ji(e, "time_ns");
	if ((o->since_real_ns && t < o->since_real_ns) ||
	    (o->workload && !wl_is(js(e, "source"), o->workload) &&
	     !wl_is(js(e, "destination"), o->workload)) ||
	    (o->service && !wl_is(js(e, "service"), o->service)) || o->verdict) {
		json_object_put(e);
		return;
	}
	if (o->json) {
		char buf[64], base[40];
		time_t sec = t / 1000000000LL;
		struct tm tm;

		gmtime_r(&sec, &tm);
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(buf, sizeof(buf), "%s.%09lldZ", base, (long long)(t % 1000000000LL));
		jset_str(e, "time", buf);
		printf("%s\n", json_object_to_json_string_ext(
				   e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		char tb[64], base[40];
		time_t sec = t / 1000000000LL;
		struct tm tm;
		struct json_object *gs;

		localtime_r(&sec, &tm);
		strftime(base, sizeof(base), "%b %e %H:%M:%S", &tm);
		snprintf(tb, sizeof(tb), "%s.%03lld", base,
			 (long long)(t % 1000000000LL) / 1000000);
		printf("%s: http   %s -> %s -> %s %s %s%s %lld", tb,
		       js(e, "source")[0] ? js(e, "source") : "?", js(e, "service"),
		       js(e, "destination")[0] ? js(e, "destination") : "-", js(e, "method"),
		       js(e, "authority"), js(e, "path"), (long long)ji(e, "response_code"));
		if (json_object_object_get_ex(e, "grpc_status", &gs))
			printf(" grpc %d", json_object_get_int(gs));
		printf(" %s %.1f ms upstream %s attempts %lld (%s)", js(e, "response_flags"),
		       json_object_get_double(json_object_object_get(e, "duration_ms")),
		       js(e, "upstream_host")[0] ? js(e, "upstream_host") : "-",
		       (long long)ji(e, "attempts"), js(e, "reporter"));
		if (js(e, "response_code_details")[0])
			printf(" %s", js(e, "response_code_details"));
		printf("\n");
	}
	o->shown++;
	json_object_put(e);
}

struct alog {
	char path[600];
	FILE *f;
	long off; /* of the next line in the live file */
};

/* Lines of f from where it is, whole lines only (a partial last line waits). */
static void read_lines(struct obs *o, FILE *f, long *off)
{
	char line[16384];

	if (fseek(f, *off, SEEK_SET))
		return;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);

		if (!n || line[n - 1] != '\n')
			break;
		*off += (long)n;
		on_request(o, line);
	}
	clearerr(f);
}

static void alog_open(struct obs *o, struct alog *a, const char *node)
{
	char dir[512], old[620];
	FILE *f;
	long off = 0;

	a->f = NULL;
	if (agent_run_dir(dir, sizeof(dir), node))
		return;
	snprintf(a->path, sizeof(a->path), "%s/access.log", dir);
	snprintf(old, sizeof(old), "%s.1", a->path);
	f = fopen(old, "r");
	if (f) {
		read_lines(o, f, &off);
		fclose(f);
	}
	a->off = 0;
	a->f = fopen(a->path, "r");
	if (a->f)
		read_lines(o, a->f, &a->off);
}

/* --follow: what the agent appended; a rotation starts the new file from its beginning */
static void alog_follow(struct obs *o, struct alog *a)
{
	struct stat st;

	if (a->f && !stat(a->path, &st) && st.st_size < a->off) {
		fclose(a->f);
		a->f = NULL;
	}
	if (!a->f) {
		a->f = fopen(a->path, "r");
		a->off = 0;
	}
	if (a->f)
		read_lines(o, a->f, &a->off);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bpfmesh observe --node NAME [--bpffs DIR] [--follow] [--json] "
		   "[--since DURATION]\n"
		   "                       [--workload W] [--service S] "
		   "[--verdict open|close|fail|eject|deny] [--http]\n"
		   "  the node's flow log and the HTTP path's request events: what is buffered\n"
		   "  (and with --follow, what comes); --http: request events only;\n"
		   "  --since 5m: only events of the last five minutes\n");
}

int cmd_observe(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"node", required_argument, 0, 'n'},     {"bpffs", required_argument, 0, 'b'},
	    {"follow", no_argument, 0, 'f'},	     {"json", no_argument, 0, 'j'},
	    {"workload", required_argument, 0, 'w'}, {"service", required_argument, 0, 's'},
	    {"verdict", required_argument, 0, 'v'},  {"since", required_argument, 0, 'S'},
	    {"http", no_argument, 0, 'H'},	     {0, 0, 0, 0}};
	struct obs o = {.names_fd = -1};
	int64_t since_ns;
	const char *node = NULL, *bpffs = NULL;
	char pin[600], path[700], bbuf[256];
	struct ring_buffer *rb = NULL;
	struct alog al = {0};
	bool follow = false, http = false;
	int fd, opt;

	if (args_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	o.mono_to_real_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'S':
			if (parse_duration_ns(optarg, &since_ns) || since_ns < 0) {
				fprintf(stderr,
					"bpfmesh observe: --since %s: want a duration like 30s or "
					"5m\n",
					optarg);
				return 2;
			}
			o.since_real_ns = clock_ns(CLOCK_REALTIME) - since_ns;
			o.since_mono_ns = clock_ns(CLOCK_MONOTONIC) > since_ns
					      ? (__u64)(clock_ns(CLOCK_MONOTONIC) - since_ns)
					      : 0;
			break;
		case 'n':
			node = optarg;
			break;
		case 'b':
			bpffs = optarg;
			break;
		case 'f':
			follow = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'w':
			o.workload = optarg;
			break;
		case 's':
			o.service = optarg;
			break;
		case 'v':
			o.verdict = optarg;
			break;
		case 'H':
			http = true;
			break;
		default:
			goto usage;
		}
	}
	if (!node || strchr(node, '/'))
		goto usage;
	if (!bpffs)
		bpffs = agent_bpffs(node, bbuf, sizeof(bbuf));
	if (dp_pin_dir(pin, sizeof(pin), bpffs ? bpffs : "/sys/fs/bpf", node))
		goto usage;
	snprintf(path, sizeof(path), "%s/bm_events", pin);
	fd = http ? -1 : bpf_obj_get(path);
	if (fd < 0 && !http) {
		fprintf(stderr, "bpfmesh observe: no flow log for node %s (%s)\n", node, path);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/bm_names", pin);
	o.names_fd = http ? -1 : bpf_obj_get(path);
	if (!http) {
		rb = ring_buffer__new(fd, on_event, &o, NULL);
		if (!rb) {
			fprintf(stderr, "bpfmesh observe: cannot read %s/bm_events\n", pin);
			return 1;
		}
	}
	signal(SIGINT, obs_sigint);
	signal(SIGTERM, obs_sigint);
	if (rb)
		ring_buffer__consume(rb);
	alog_open(&o, &al, node);
	fflush(stdout);
	while (follow && !obs_stop) {
		if (rb)
			ring_buffer__poll(rb, 200);
		else
			usleep(200 * 1000);
		alog_follow(&o, &al);
		fflush(stdout);
	}
	if (al.f)
		fclose(al.f);
	ring_buffer__free(rb);
	if (fd >= 0)
		close(fd);
	if (o.names_fd >= 0)
		close(o.names_fd);
	return 0;
usage:
	usage(stderr);
	return 2;
}
