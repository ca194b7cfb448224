/*
 * staticpod.c - read the etcd static pod manifest of a kubeadm-style
 * control plane node (/etc/kubernetes/manifests/etcd.yaml): one
 * container's command line, and the flags etcd reads from it.  Writing a
 * changed copy is staticpod_rewrite.c, built on the scan below.
 *
 * The reader works on libyaml's event stream, never on a loaded document:
 * one pass with a small stack of frames (one per open collection) that
 * knows only the path it reads, root -> spec -> containers[i] -> {name,
 * image, command, args} -> items.  It keeps every container's strings and
 * the event number (ordinal) of each command/args item and of each list's
 * end, which is what the rewrite needs to find them again.
 *
 * Invariants:
 *   1. Input is bounded before anything is kept: at most
 *      KT_KUBE_STATICPOD_MAX bytes, nesting at most KT_KUBE_MAX_DEPTH,
 *      KT_KUBE_STATICPOD_MAX_CONTAINERS containers, and per container
 *      KT_KUBE_STATICPOD_MAX_ARGS items of KT_KUBE_STATICPOD_MAX_ARG bytes.
 *      Memory is thus proportional to the input.
 *   2. Aliases are refused (anchors alone are harmless and kept), so there
 *      is no expansion to bound and no shared node that a rewrite could
 *      change in two places.  Exactly one document is accepted.
 *   3. A command/args entry is accepted only if Kubernetes reads it as a
 *      string, so what we read is what kubelet passes to etcd.
 *   4. Messages start with "static pod manifest['PATH']: line L column C:"
 *      and then name the field: spec.containers[0].command[3].
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "staticpod_int.h"

/* ------------------------------------------------------------------ */
/* Flags on an etcd command line (Go's flag package rules) */

/* etcd's boolean flags (3.4 to 3.6): "--flag" alone means true and the
 * next element is never its value.  Any other flag written without '='
 * takes the next element as its value unless that starts with '-'. */
static const char *const bool_flags[] = {
	"auto-tls", "client-cert-auth", "debug", "disable-log-sampling",
	"discovery-insecure-skip-tls-verify", "discovery-insecure-transport",
	"enable-distributed-tracing", "enable-grpc-gateway", "enable-log-rotation", "enable-pprof",
	"enable-v2", "experimental-compact-hash-check-enabled",
	"experimental-enable-distributed-tracing", "experimental-enable-lease-checkpoint",
	"experimental-enable-lease-checkpoint-persist", "experimental-initial-corrupt-check",
	"experimental-memory-mlock", "experimental-peer-skip-client-san-verification",
	"experimental-set-member-localaddr", "experimental-stop-grpc-service-on-defrag",
	"experimental-txn-mode-write-with-shared-buffer", "force-new-cluster", "h", "help",
	"initial-election-tick-advance", "memory-mlock", "peer-auto-tls", "peer-client-cert-auth",
	"peer-skip-client-san-verification", "pre-vote", "socket-reuse-address",
	"socket-reuse-port", "strict-reconfig-check", "unsafe-no-fsync", "version",
};

static int is_bool_flag(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(bool_flags) / sizeof(*bool_flags); i++)
		if (strlen(bool_flags[i]) == n && !memcmp(bool_flags[i], name, n))
			return 1;
	return 0;
}

/*
 * The next flag in argv[*pos..n) into *f, advancing *pos past it; 0 when
 * there is none.  "--" ends the flags (Go stops there).  Elements that are
 * not flags ("-", "x", "---x", "--=x") are skipped: etcd refuses stray
 * arguments, so reading on is the useful choice for a manifest kubelet
 * would not run anyway.
 */
int kube_sp_next_flag(char *const *argv, size_t n, size_t *pos, sp_flag *f)
{
	for (size_t i = *pos; i < n; i++) {
		const char *s = argv[i];
		if (!strcmp(s, "--"))
			break;
		if (s[0] != '-' || s[1] == '\0')
			continue;
		const char *nm = s + (s[1] == '-' ? 2 : 1);
		if (nm[0] == '\0' || nm[0] == '-' || nm[0] == '=')
			continue;
		const char *eq = strchr(nm, '=');
		f->name = nm;
		f->at = i;
		f->span = 1;
		if (eq) {
			f->name_len = (size_t)(eq - nm);
			f->value = eq + 1;
		} else {
			f->name_len = strlen(nm);
			f->value = "true";
			if (!is_bool_flag(nm, f->name_len) && i + 1 < n && argv[i + 1][0] != '-') {
				f->value = argv[i + 1];
				f->span = 2;
			}
		}
		*pos = i + f->span;
		return 1;
	}
	*pos = n;
	return 0;
}

const char *kube_sp_lookup(char *const *argv, size_t n, size_t first, const char *name,
                           size_t name_len)
{
	const char *found = NULL;
	size_t pos = first;
	sp_flag f;
	while (kube_sp_next_flag(argv, n, &pos, &f))
		if (f.name_len == name_len && !memcmp(f.name, name, name_len))
			found = f.value;
	return found;
}

const char *kt_kube_staticpod_flag(const kt_kube_staticpod *p, const char *name)
{
	if (!p || !p->argv || !name)
		return NULL;
	if (name[0] == '-')
		name += name[1] == '-' ? 2 : 1;
	if (!name[0])
		return NULL;
	return kube_sp_lookup(p->argv, p->n_argv, p->first_flag, name, strlen(name));
}

/* A flag name as the caller gives it: a letter, then letters, digits and
 * "-_.".  (Go allows more, etcd uses no more.) */
int kube_sp_valid_name(const char *s, size_t n)
{
	if (n == 0 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z'))
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* How Kubernetes reads a scalar (sigs.k8s.io/yaml, YAML 1.1 rules) */

static int eq_any(const char *s, size_t n, const char *const *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (strlen(list[i]) == n && !memcmp(list[i], s, n))
			return 1;
	return 0;
}

static int all_in(const char *s, size_t n, const char *set)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr(set, s[i]) || s[i] == '\0')
			return 0;
	return 1;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, the float form. */
static int is_decimal(const char *s, size_t n)
{
	size_t i = 0, d = 0;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, d++;
	if (i < n && s[i] == '.') {
		size_t frac = 0;
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, frac++;
		if (!d && !frac)
			return 0;
	} else if (!d) {
		return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, e++;
		if (!e)
			return 0;
	}
	return i == n;
}

/* The type an untagged plain scalar resolves to. */
int kube_sp_plain_type(const char *s, size_t n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	static const char *const bools[] = {
		"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
		"false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
	};
	static const char *const floats[] = {
		".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
		".nan", ".NaN", ".NAN",
	};
	if (eq_any(s, n, nulls, sizeof(nulls) / sizeof(*nulls)))
		return T_NULL;
	if (eq_any(s, n, bools, sizeof(bools) / sizeof(*bools)))
		return T_BOOL;
	if (eq_any(s, n, floats, sizeof(floats) / sizeof(*floats)))
		return T_NUM;
	if (s[0] == '\0' || !strchr("+-.0123456789", s[0]))
		return T_STR;
	/* Numbers: Go's ParseInt(s, 0, 64) after dropping '_', or the float form. */
	char small[128];
	char *t = n < sizeof(small) ? small : kt_xmalloc(n + 1);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '_')
			t[m++] = s[i];
	t[m] = '\0';
	const char *u = t + (t[0] == '-' || t[0] == '+');
	size_t un = m - (size_t)(u - t);
	int num = is_decimal(t, m);
	if (!num && un > 2 && u[0] == '0')
		num = ((u[1] == 'x' || u[1] == 'X') && all_in(u + 2, un - 2, "0123456789abcdefABCDEF")) ||
		      ((u[1] == 'o' || u[1] == 'O') && all_in(u + 2, un - 2, "01234567")) ||
		      ((u[1] == 'b' || u[1] == 'B') && all_in(u + 2, un - 2, "01"));
	if (t != small)
		free(t);
	return num ? T_NUM : T_STR;
}

static int scalar_type(const yaml_event_t *ev)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	if (tag && strcmp(tag, "!") && strcmp(tag, YAML_STR_TAG))
		return T_TAGGED;
	if (tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return T_STR;
	return kube_sp_plain_type((const char *)ev->data.scalar.value, ev->data.scalar.length);
}

static const char *type_name(int t)
{
	switch (t) {
	case T_NULL: return "null";
	case T_BOOL: return "a boolean";
	case T_NUM: return "a number";
	default: return "tagged";
	}
}

/* ------------------------------------------------------------------ */
/* The scan: what the manifest says, with event ordinals */

enum role { R_OTHER, R_ROOT, R_SPEC, R_CONTAINERS, R_CONTAINER, R_COMMAND, R_ARGS };
enum key { K_NONE, K_OTHER, K_API, K_KIND, K_SPEC, K_CONTAINERS, K_NAME, K_IMAGE, K_COMMAND,
           K_ARGS };

static const struct {
	unsigned char role, key;
	const char *name;
} known_keys[] = {
	{ R_ROOT, K_API, "apiVersion" }, { R_ROOT, K_KIND, "kind" }, { R_ROOT, K_SPEC, "spec" },
	{ R_SPEC, K_CONTAINERS, "containers" }, { R_CONTAINER, K_NAME, "name" },
	{ R_CONTAINER, K_IMAGE, "image" }, { R_CONTAINER, K_COMMAND, "command" },
	{ R_CONTAINER, K_ARGS, "args" },
};

kt_code kube_sp_vfail(sp_scan *s, kt_code code, const yaml_mark_t *m, const char *fmt,
                      va_list ap)
{
	char msg[KT_ERROR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m)
		return kt_error_set(s->err, code, "%s: line %zu column %zu: %s", s->what, m->line + 1,
		                    m->column + 1, msg);
	return kt_error_set(s->err, code, "%s: %s", s->what, msg);
}

static kt_code fail(sp_scan *s, kt_code code, const yaml_mark_t *m, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static kt_code fail(sp_scan *s, kt_code code, const yaml_mark_t *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kt_code rc = kube_sp_vfail(s, code, m, fmt, ap);
	va_end(ap);
	return rc;
}

static void list_free(sp_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].s);
	free(l->items);
}

void kube_sp_release(sp_scan *s)
{
	for (size_t i = 0; i < s->n_c; i++) {
		free(s->c[i].name);
		free(s->c[i].image);
		list_free(&s->c[i].cmd);
		list_free(&s->c[i].args);
	}
	free(s->c);
	free(s->kind);
	free(s->api);
	s->c = NULL;
	s->n_c = 0;
	s->kind = s->api = NULL;
}

static const char *ev_kind(yaml_event_type_t t)
{
	switch (t) {
	case YAML_SEQUENCE_START_EVENT: return "a list";
	case YAML_MAPPING_START_EVENT: return "a mapping";
	default: return "a scalar";
	}
}

static const char *key_name(int key)
{
	for (size_t i = 0; i < sizeof(known_keys) / sizeof(*known_keys); i++)
		if (known_keys[i].key == key)
			return known_keys[i].name;
	return "?";
}

/* "spec.containers[2].name" style path of f's current key (for messages). */
static void key_path(const sp_frame *f, char *out, size_t n)
{
	switch (f->role) {
	case R_SPEC:
		snprintf(out, n, "spec.%s", key_name(f->key));
		break;
	case R_CONTAINER:
		snprintf(out, n, "spec.containers[%zu].%s", f->c, key_name(f->key));
		break;
	default:
		snprintf(out, n, "%s", key_name(f->key));
		break;
	}
}

/* A string value: *out is a copy, or NULL for null.  Anything that
 * Kubernetes would not read as a string is an error naming path. */
static kt_code take_string(sp_scan *s, const yaml_event_t *ev, const char *path, int null_ok,
                           char **out)
{
	*out = NULL;
	if (ev->type != YAML_SCALAR_EVENT)
		return fail(s, KT_EPROTO, &ev->start_mark, "%s is %s, not a string", path,
		            ev_kind(ev->type));
	const char *v = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	int t = scalar_type(ev);
	if (t == T_NULL && null_ok)
		return KT_OK;
	if (t == T_TAGGED)
		return fail(s, KT_EPROTO, &ev->start_mark, "%s has the tag '%.80s', not a string", path,
		            (const char *)ev->data.scalar.tag);
	if (t == T_NULL)
		return fail(s, KT_EPROTO, &ev->start_mark, "%s is null, not a string (write \"\" for "
		            "an empty one)", path);
	if (t != T_STR)
		return fail(s, KT_EPROTO, &ev->start_mark, "%s is %s (%.40s), not a string; quote it",
		            path, type_name(t), v);
	if (memchr(v, '\0', len))
		return fail(s, KT_EPROTO, &ev->start_mark, "%s holds a NUL byte", path);
	if (len > KT_KUBE_STATICPOD_MAX_ARG)
		return fail(s, KT_ELIMIT, &ev->start_mark, "%s is %zu bytes, more than the %u allowed",
		            path, len, KT_KUBE_STATICPOD_MAX_ARG);
	char *c = kt_xmalloc(len + 1);
	memcpy(c, v, len);
	c[len] = '\0';
	*out = c;
	return KT_OK;
}

/* Is ev a null (for "key:" with no value, which means absent)? */
static int is_null_event(const yaml_event_t *ev)
{
	return ev->type == YAML_SCALAR_EVENT && scalar_type(ev) == T_NULL;
}

static kt_code push(sp_scan *s, const yaml_event_t *ev, int role, size_t c)
{
	if (s->depth >= KT_KUBE_MAX_DEPTH)
		return fail(s, KT_ELIMIT, &ev->start_mark, "nests deeper than %d levels",
		            KT_KUBE_MAX_DEPTH);
	sp_frame *f = &s->stack[s->depth++];
	memset(f, 0, sizeof(*f));
	f->role = (unsigned char)role;
	f->is_map = ev->type == YAML_MAPPING_START_EVENT;
	f->want_key = f->is_map;
	f->c = c;
	f->mark = ev->start_mark;
	return KT_OK;
}

/* A node finished inside f: a map alternates key and value, a list counts. */
static void node_done(sp_frame *f)
{
	if (f->is_map) {
		f->want_key = !f->want_key;
		if (f->want_key)
			f->key = K_NONE;
	} else {
		f->index++;
	}
}

/* A key (scalar) in the map f: which known key it is, given once. */
static kt_code on_key(sp_scan *s, sp_frame *f, const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	f->key = K_OTHER;
	if (f->role == R_OTHER)
		return KT_OK;
	if (len == 2 && !memcmp(v, "<<", 2) && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		return fail(s, KT_EPROTO, &ev->start_mark, "uses a YAML merge key ('<<'), which "
		            "kontinuity does not read (write the fields out)");
	for (size_t i = 0; i < sizeof(known_keys) / sizeof(*known_keys); i++) {
		if (known_keys[i].role != f->role || strlen(known_keys[i].name) != len ||
		    memcmp(known_keys[i].name, v, len))
			continue;
		f->key = known_keys[i].key;
		unsigned bit = 1u << f->key;
		if (f->seen & bit) {
			char path[96];
			key_path(f, path, sizeof(path));
			return fail(s, KT_EPROTO, &ev->start_mark, "%s is given twice (keep one)", path);
		}
		f->seen |= bit;
		break;
	}
	return KT_OK;
}

/* An item of a command or args list. */
static kt_code on_item(sp_scan *s, sp_frame *f, const yaml_event_t *ev)
{
	sp_container *c = &s->c[f->c];
	sp_list *l = f->role == R_COMMAND ? &c->cmd : &c->args;
	const char *which = f->role == R_COMMAND ? "command" : "args";
	char path[96];
	snprintf(path, sizeof(path), "spec.containers[%zu].%s[%zu]", f->c, which, f->index);
	if (ev->type != YAML_SCALAR_EVENT)
		return fail(s, KT_EPROTO, &ev->start_mark, "%s is %s, not a string (%s must be a list "
		            "of strings)", path, ev_kind(ev->type), which);
	if (c->cmd.n + c->args.n >= KT_KUBE_STATICPOD_MAX_ARGS)
		return fail(s, KT_ELIMIT, &ev->start_mark, "spec.containers[%zu] has more than %d "
		            "command and args entries", f->c, KT_KUBE_STATICPOD_MAX_ARGS);
	char *str;
	kt_code rc = take_string(s, ev, path, 0, &str);
	if (rc)
		return rc;
	if (l->n % 16 == 0) {
		sp_item *n = realloc(l->items, (l->n + 16) * sizeof(*n));
		if (!n) {
			free(str);
			return fail(s, KT_ENOMEM, NULL, "out of memory");
		}
		l->items = n;
	}
	l->items[l->n].s = str;
	l->items[l->n].ordinal = s->ordinal;
	l->n++;
	return KT_OK;
}

/* A value (scalar or collection start) under key f->key of map f. */
static kt_code on_value(sp_scan *s, sp_frame *f, const yaml_event_t *ev, int *role, size_t *ci)
{
	int coll = ev->type != YAML_SCALAR_EVENT;
	char path[96];
	key_path(f, path, sizeof(path));
	*role = R_OTHER;
	switch (f->key) {
	case K_API:
		return take_string(s, ev, "apiVersion", 1, &s->api);
	case K_KIND:
		return take_string(s, ev, "kind", 1, &s->kind);
	case K_NAME:
		return take_string(s, ev, path, 1, &s->c[f->c].name);
	case K_IMAGE:
		return take_string(s, ev, path, 1, &s->c[f->c].image);
	case K_SPEC:
	case K_CONTAINERS:
	case K_COMMAND:
	case K_ARGS: {
		int want_seq = f->key != K_SPEC;
		if (is_null_event(ev))
			return KT_OK;
		if (!coll || (ev->type == YAML_SEQUENCE_START_EVENT) != want_seq)
			return fail(s, KT_EPROTO, &ev->start_mark, "%s is %s, not %s", path,
			            ev_kind(ev->type), f->key == K_SPEC ? "a mapping" :
			            f->key == K_CONTAINERS ? "a list of containers" : "a list of strings");
		if (f->key == K_SPEC) {
			*role = R_SPEC;
		} else if (f->key == K_CONTAINERS) {
			*role = R_CONTAINERS;
			s->has_containers = 1;
		} else {
			*role = f->key == K_COMMAND ? R_COMMAND : R_ARGS;
			*ci = f->c;
			(f->key == K_COMMAND ? &s->c[f->c].cmd : &s->c[f->c].args)->present = 1;
		}
		return KT_OK;
	}
	default:
		return KT_OK;
	}
}

/* A node starts (scalar, sequence or mapping start). */
static kt_code on_node(sp_scan *s, const yaml_event_t *ev)
{
	int coll = ev->type != YAML_SCALAR_EVENT;
	int role = R_OTHER;
	size_t ci = 0;
	kt_code rc = KT_OK;

	if (s->depth == 0) {
		if (s->root_done) /* cannot happen: one root per document */
			return fail(s, KT_EPROTO, &ev->start_mark, "has a second top-level node");
		s->root_done = 1;
		if (is_null_event(ev))
			return fail(s, KT_EPROTO, NULL, "is empty (expected a Pod)");
		if (ev->type != YAML_MAPPING_START_EVENT)
			return fail(s, KT_EPROTO, &ev->start_mark, "not a Pod: the top level is %s, not a "
			            "mapping", ev_kind(ev->type));
		return push(s, ev, R_ROOT, 0);
	}
	sp_frame *f = &s->stack[s->depth - 1];
	if (f->is_map && f->want_key) {
		if (!coll)
			rc = on_key(s, f, ev);
		else
			f->key = K_OTHER; /* a complex key: walked as data we do not read */
	} else if (f->is_map) {
		rc = on_value(s, f, ev, &role, &ci);
	} else if (f->role == R_CONTAINERS) {
		if (ev->type != YAML_MAPPING_START_EVENT)
			return fail(s, KT_EPROTO, &ev->start_mark, "spec.containers[%zu] is %s, not a "
			            "mapping", f->index, ev_kind(ev->type));
		if (s->n_c >= KT_KUBE_STATICPOD_MAX_CONTAINERS)
			return fail(s, KT_ELIMIT, &ev->start_mark, "has more than %d containers",
			            KT_KUBE_STATICPOD_MAX_CONTAINERS);
		sp_container *n = realloc(s->c, (s->n_c + 1) * sizeof(*n));
		if (!n)
			return fail(s, KT_ENOMEM, NULL, "out of memory");
		s->c = n;
		memset(&s->c[s->n_c], 0, sizeof(*s->c));
		s->c[s->n_c].mark = ev->start_mark;
		role = R_CONTAINER;
		ci = s->n_c++;
	} else if (f->role == R_COMMAND || f->role == R_ARGS) {
		rc = on_item(s, f, ev);
	}
	if (rc)
		return rc;
	if (coll)
		return push(s, ev, role, ci);
	node_done(f);
	return KT_OK;
}

static kt_code on_end(sp_scan *s)
{
	sp_frame *f = &s->stack[--s->depth];
	if (f->role == R_COMMAND || f->role == R_ARGS)
		(f->role == R_COMMAND ? &s->c[f->c].cmd : &s->c[f->c].args)->end_ordinal = s->ordinal;
	if (s->depth > 0)
		node_done(&s->stack[s->depth - 1]);
	return KT_OK;
}

kt_code kube_sp_yaml_fail(sp_scan *s, const yaml_parser_t *parser)
{
	if (parser->error == YAML_MEMORY_ERROR)
		return fail(s, KT_ENOMEM, NULL, "out of memory parsing YAML");
	return fail(s, KT_EPROTO, &parser->problem_mark, "not valid YAML: %s%s%s",
	            parser->problem ? parser->problem : "parse error",
	            parser->context ? " " : "", parser->context ? parser->context : "");
}

/* Read every event of data into s (what must be set, the rest zeroed). */
static kt_code scan(sp_scan *s, const char *data, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	kt_code rc = KT_OK;
	int done = 0;

	if (len > KT_KUBE_STATICPOD_MAX)
		return fail(s, KT_ELIMIT, NULL, "is %zu bytes, more than the %u allowed", len,
		            KT_KUBE_STATICPOD_MAX);
	if (!yaml_parser_initialize(&parser))
		return fail(s, KT_ENOMEM, NULL, "out of memory starting the YAML parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	while (!done && rc == KT_OK) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = kube_sp_yaml_fail(s, &parser);
			break;
		}
		s->ordinal++;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			/* kubelet reads only the first document of a manifest; rewriting
			 * would drop the rest silently, so more than one is refused. */
			if (++s->docs > 1)
				rc = fail(s, KT_EPROTO, &ev.start_mark, "holds more than one YAML document "
				          "(a static pod manifest is one Pod)");
			break;
		case YAML_ALIAS_EVENT:
			rc = fail(s, KT_EPROTO, &ev.start_mark, "uses the YAML alias '*%.60s', which "
			          "kontinuity does not follow (write the value out)",
			          (const char *)ev.data.alias.anchor);
			break;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			rc = on_node(s, &ev);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			rc = on_end(s);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return rc;
}

/* The container to read: name, or NULL for "etcd" else the only one. */
static kt_code pick(sp_scan *s, const char *name, size_t *out)
{
	if (!s->root_done)
		return fail(s, KT_EPROTO, NULL, "is empty (expected a Pod)");
	if (!s->kind)
		return fail(s, KT_EPROTO, NULL, "not a Pod: kind is missing");
	if (strcmp(s->kind, "Pod"))
		return fail(s, KT_EPROTO, NULL, "not a Pod: kind is '%.100s'", s->kind);
	if (!s->api)
		return fail(s, KT_EPROTO, NULL, "not a Pod: apiVersion is missing (expected v1)");
	if (strcmp(s->api, "v1"))
		return fail(s, KT_EPROTO, NULL, "apiVersion is '%.100s', expected 'v1'", s->api);
	if (!s->n_c)
		return fail(s, KT_EPROTO, NULL, "spec.containers is %s", s->has_containers ? "empty" :
		            "missing");
	const char *want = name && name[0] ? name : "etcd";
	size_t found = s->n_c;
	for (size_t i = 0; i < s->n_c; i++) {
		if (!s->c[i].name || strcmp(s->c[i].name, want))
			continue;
		if (found < s->n_c)
			return fail(s, KT_EPROTO, &s->c[i].mark, "spec.containers[%zu] and [%zu] are both "
			            "named '%.100s'", found, i, want);
		found = i;
	}
	if (found == s->n_c && !(name && name[0]) && s->n_c == 1)
		found = 0;
	if (found == s->n_c) {
		char names[256] = "";
		size_t o = 0;
		for (size_t i = 0; i < s->n_c && o < sizeof(names); i++)
			o += (size_t)snprintf(names + o, sizeof(names) - o, "%s'%.60s'", i ? ", " : "",
			                      s->c[i].name ? s->c[i].name : "");
		return fail(s, KT_EPROTO, NULL, "no container '%.100s' in spec.containers (it has %s)",
		            want, names);
	}
	sp_container *c = &s->c[found];
	if (!c->cmd.n && !c->args.n)
		return fail(s, KT_EPROTO, &c->mark, "container '%.100s' (spec.containers[%zu]) has no "
		            "command", c->name ? c->name : "", found);
	*out = found;
	return KT_OK;
}

char *kube_sp_what(char *buf, size_t n, const char *path)
{
	if (path)
		snprintf(buf, n, "static pod manifest '%s'", path);
	else
		snprintf(buf, n, "static pod manifest");
	return buf;
}

/* Parse into s and pick a container: the common start of every entry. */
kt_code kube_sp_read(sp_scan *s, const char *data, size_t len, const char *container,
                     size_t *ci)
{
	kt_code rc = scan(s, data, len);
	if (rc == KT_OK)
		rc = pick(s, container, ci);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Parse and load */

void kt_kube_staticpod_release(kt_kube_staticpod *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_argv; i++)
		free(p->argv[i]);
	free(p->argv);
	free(p->container);
	free(p->image);
	memset(p, 0, sizeof(*p));
}

void kube_sp_fill(kt_kube_staticpod *out, sp_container *c)
{
	size_t n = c->cmd.n + c->args.n, k = 0;
	memset(out, 0, sizeof(*out));
	out->argv = kt_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < c->cmd.n; i++, k++) {
		out->argv[k] = c->cmd.items[i].s;
		c->cmd.items[i].s = NULL;
	}
	for (size_t i = 0; i < c->args.n; i++, k++) {
		out->argv[k] = c->args.items[i].s;
		c->args.items[i].s = NULL;
	}
	out->n_argv = n;
	out->n_command = c->cmd.n;
	out->first_flag = c->cmd.n ? 1 : 0;
	out->container = kt_xstrdup(c->name ? c->name : "");
	out->image = c->image;
	c->image = NULL;
}

kt_code kube_sp_parse_named(kt_kube_staticpod *out, const char *data, size_t len,
                            const char *container, const char *path, kt_error *err)
{
	char what[KT_ERROR_MSG_MAX / 2];
	sp_scan s = { .what = kube_sp_what(what, sizeof(what), path), .err = err };
	size_t ci;
	memset(out, 0, sizeof(*out));
	kt_code rc = kube_sp_read(&s, data, len, container, &ci);
	if (rc == KT_OK)
		kube_sp_fill(out, &s.c[ci]);
	kube_sp_release(&s);
	return rc;
}

kt_code kt_kube_staticpod_parse(kt_kube_staticpod *out, const char *data, size_t len,
                                const char *container, kt_error *err)
{
	return kube_sp_parse_named(out, data, len, container, NULL, err);
}

kt_code kt_kube_staticpod_load(kt_kube_staticpod *out, const char *path, const char *container,
                               kt_error *err)
{
	kt_buf b;
	memset(out, 0, sizeof(*out));
	kt_buf_init(&b, KT_KUBE_STATICPOD_MAX);
	kt_code rc = kube_read_file(path, KT_KUBE_STATICPOD_MAX, "static pod manifest", &b, err);
	if (rc == KT_OK)
		rc = kube_sp_parse_named(out, b.data, b.len, container, path, err);
	kt_buf_release(&b);
	return rc;
}

