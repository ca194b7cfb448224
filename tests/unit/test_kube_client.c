/*
 * test_kube_client.c - the kube client's requests without a cluster,
 * against a small HTTP/1.1 server on loopback (plain http:// without
 * credentials, which the client allows): the status mapping and message
 * wording, retries, Secret decoding, paged lists and an expired continue
 * token, watch events (ERROR, size bound, stop), the verbs' methods,
 * content types and queries, name checks, RFC 3339 parsing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kube/kube.h"
#include "kube/kube_int.h"
#include "unit.h"

#define TOKEN "s3cr3t-t0ken-abcdef0123456789"

/* base64 of s into a static buffer (one at a time per slot). */
static const char *b64(int slot, const char *s)
{
	static char out[4][1024];
	kt_buf b;
	kt_buf_init(&b, KT_BUF_UNLIMITED);
	kt_base64_encode(s, strlen(s), &b, NULL);
	snprintf(out[slot], sizeof(out[slot]), "%s", b.data);
	kt_buf_release(&b);
	return out[slot];
}

/* ---- the client against a one-shot HTTP/1.1 server ---- */

typedef struct mini_server {
	int fd;
	int port;
	const char *reply;
	int repeat;        /* connections to answer (retries make more than one) */
	char request[4096];
	size_t request_len;
	char all[16384];   /* every request's head, in order */
	size_t all_len;
	pthread_t thread;
} mini_server;

/* When set, connection i is answered with mini_replies[i] (the last one
 * repeats) instead of the single reply. */
static const char *mini_replies[8];
static int mini_n_replies;

static void *mini_serve(void *arg)
{
	mini_server *m = arg;
	for (int i = 0; i < m->repeat; i++) {
	int c = accept(m->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	m->request_len = 0;
	for (;;) {
		ssize_t k = read(c, m->request + m->request_len, sizeof(m->request) - 1 - m->request_len);
		if (k <= 0)
			break;
		m->request_len += (size_t)k;
		m->request[m->request_len] = '\0';
		if (strstr(m->request, "\r\n\r\n"))
			break;
	}
	size_t room = sizeof(m->all) - 1 - m->all_len;
	size_t take = m->request_len < room ? m->request_len : room;
	memcpy(m->all + m->all_len, m->request, take);
	m->all_len += take;
	m->all[m->all_len] = '\0';
	const char *rep = m->reply;
	if (mini_n_replies)
		rep = mini_replies[i < mini_n_replies ? i : mini_n_replies - 1];
	size_t n = strlen(rep);
	if (write(c, rep, n) != (ssize_t)n)
		m->reply = "";
	close(c);
	}
	return NULL;
}

static int mini_repeat = 1;

static int mini_start(mini_server *m, const char *reply)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	memset(m, 0, sizeof(*m));
	m->reply = reply;
	m->repeat = mini_repeat;
	m->fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&a, sizeof(a)) || listen(m->fd, 1) ||
	    getsockname(m->fd, (struct sockaddr *)&a, &alen))
		return -1;
	m->port = ntohs(a.sin_port);
	return pthread_create(&m->thread, NULL, mini_serve, m);
}

static void mini_stop(mini_server *m)
{
	pthread_join(m->thread, NULL);
	close(m->fd);
}

static char replybuf[1 << 17];

/* A reply in its own buffer (for mini_replies); freed at the end of main. */
static char *dups[64];
static size_t n_dups;

static const char *reply_dup(long status, const char *body)
{
	size_t n = strlen(body) + 256;
	char *b = malloc(n);
	if (n_dups < sizeof(dups) / sizeof(*dups))
		dups[n_dups++] = b;
	snprintf(b, n, "HTTP/1.1 %ld X\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status, strlen(body), body);
	return b;
}

static const char *reply(long status, const char *body)
{
	snprintf(replybuf, sizeof(replybuf), "HTTP/1.1 %ld X\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status, strlen(body), body);
	return replybuf;
}

/* Run one call against a server answering with r; the call is picked by
 * what: "get" (path), "uid" (namespace), "secret" (ns/name). */
typedef struct call_result {
	kt_code rc;
	kt_error err;
	json_t *json;
	char *uid;
	kt_kube_secret *secret;
	char request[4096];
} call_result;

static void call(call_result *out, const char *r, const char *what, const char *a,
                 const char *b, size_t max_response)
{
	mini_server m;
	kt_kube_config cfg;
	kt_kube *c = NULL;
	char server[64];
	memset(out, 0, sizeof(*out));
	if (mini_start(&m, r) != 0) {
		CHECK(!"cannot start the mini server");
		return;
	}
	snprintf(server, sizeof(server), "http://127.0.0.1:%d", m.port);
	kt_kube_config_init(&cfg);
	cfg.server = server;
	kt_kube_opts opts = { .timeout_ms = 10000, .max_response = max_response };
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, &opts, &out->err), KT_OK);
	if (!strcmp(what, "get"))
		out->rc = kt_kube_get(c, a, &out->json, &out->err);
	else if (!strcmp(what, "uid"))
		out->rc = kt_kube_namespace_uid(c, a, &out->uid, &out->err);
	else
		out->rc = kt_kube_get_secret(c, a, b, &out->secret, &out->err);
	kt_kube_client_free(c);
	if (out->rc == KT_EUSAGE) {
		/* No request was made: connect once so the server thread ends. */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)m.port),
		                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			CHECK(write(s, "\r\n\r\n", 4) == 4);
		if (s >= 0)
			close(s);
	}
	mini_stop(&m);
	memcpy(out->request, m.request, sizeof(out->request));
}

static void call_release(call_result *r)
{
	json_decref(r->json);
	free(r->uid);
	kt_kube_secret_free(r->secret);
}

static void test_client_get_and_status_mapping(void)
{
	call_result r;

	call(&r, reply(200, "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"kube-system\","
	                    "\"uid\":\"6f1e-uid\"}}"), "uid", "kube-system", NULL, 0);
	CHECK_EQ_U(r.rc, KT_OK);
	CHECK_STR(r.uid, "6f1e-uid");
	CHECK_CONTAINS(r.request, "GET /api/v1/namespaces/kube-system HTTP/1.1\r\n");
	CHECK_CONTAINS(r.request, "Accept: application/json\r\n");
	CHECK(strcasestr(r.request, "authorization") == NULL);
	call_release(&r);

	call(&r, reply(200, "{\"kind\":\"ConfigMap\",\"data\":{\"a\":\"b\"}}"), "get",
	     "/api/v1/namespaces/x/configmaps/y", NULL, 0);
	CHECK_EQ_U(r.rc, KT_OK);
	CHECK_STR(json_string_value(json_object_get(json_object_get(r.json, "data"), "a")), "b");
	call_release(&r);

	call(&r, reply(404, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	                    "\"message\":\"namespaces \\\"nope\\\" not found\",\"reason\":"
	                    "\"NotFound\",\"code\":404}"), "uid", "nope", NULL, 0);
	CHECK_EQ_U(r.rc, KT_ENOTFOUND);
	CHECK_EQ_U(r.err.status, 404);
	CHECK_CONTAINS(r.err.msg, "kube-apiserver http://127.0.0.1:");
	CHECK_CONTAINS(r.err.msg, ": GET /api/v1/namespaces/nope: 404 (NotFound): namespaces "
	               "\"nope\" not found");
	CHECK(r.uid == NULL);
	call_release(&r);

	call(&r, reply(403, "{\"kind\":\"Status\",\"message\":\"secrets is forbidden: User "
	                    "\\\"x\\\" cannot get\\nresource\",\"reason\":\"Forbidden\"}"),
	     "secret", "kube-system", "s", 0);
	CHECK_EQ_U(r.rc, KT_EAUTH);
	CHECK_EQ_U(r.err.status, 403);
	CHECK_CONTAINS(r.err.msg, "403 (Forbidden): secrets is forbidden: User \"x\" cannot get "
	               "resource");
	CHECK_CONTAINS(r.err.msg, "lacks RBAC permission");
	call_release(&r);

	call(&r, reply(401, "{\"kind\":\"Status\",\"message\":\"Unauthorized\"}"), "get", "/api",
	     NULL, 0);
	CHECK_EQ_U(r.rc, KT_EAUTH);
	CHECK_CONTAINS(r.err.msg, "401: Unauthorized (the server did not accept the credentials");
	call_release(&r);

	/* 503 and 429 are retried (5 attempts in all), then reported. */
	mini_repeat = 5;
	call(&r, reply(503, "service unavailable"), "get", "/api/v1/x?labelSelector=a", NULL, 0);
	CHECK_EQ_U(r.rc, KT_ETRANSIENT);
	CHECK_CONTAINS(r.err.msg, "GET /api/v1/x: 503: no Status message");
	call_release(&r);

	call(&r, reply(429, "{}"), "get", "/api", NULL, 0);
	CHECK_EQ_U(r.rc, KT_ETRANSIENT);
	call_release(&r);
	mini_repeat = 1;

	call(&r, reply(409, "{\"kind\":\"Status\",\"message\":\"conflict\"}"), "get", "/api", NULL,
	     0);
	CHECK_EQ_U(r.rc, KT_EEXIST);
	CHECK_CONTAINS(r.err.msg, "read it again and retry");
	call_release(&r);

	call(&r, reply(200, "<html>proxy login</html>"), "get", "/api", NULL, 0);
	CHECK_EQ_U(r.rc, KT_EPROTO);
	CHECK_CONTAINS(r.err.msg, "answer is not a JSON object");
	call_release(&r);

	call(&r, reply(200, "[1,2]"), "get", "/api", NULL, 0);
	CHECK_EQ_U(r.rc, KT_EPROTO);
	call_release(&r);

	call(&r, reply(200, "{\"kind\":\"Namespace\",\"metadata\":{}}"), "uid", "x", NULL, 0);
	CHECK_EQ_U(r.rc, KT_EPROTO);
	CHECK_CONTAINS(r.err.msg, "namespace 'x' has no metadata.uid");
	call_release(&r);

	/* The response size limit. */
	char big[3000];
	memset(big, ' ', sizeof(big) - 3);
	big[0] = '{';
	big[sizeof(big) - 3] = '}';
	big[sizeof(big) - 2] = '\0';
	call(&r, reply(200, big), "get", "/api", NULL, 1024);
	CHECK_EQ_U(r.rc, KT_ELIMIT);
	CHECK_CONTAINS(r.err.msg, "the response to GET /api is larger than 1024 bytes");
	call_release(&r);

	/* Bad input is refused before any request. */
	call(&r, reply(200, "{}"), "get", "api/v1", NULL, 0);
	CHECK_EQ_U(r.rc, KT_EUSAGE);
	call_release(&r);
	call(&r, reply(200, "{}"), "get", "/api/v1/a b", NULL, 0);
	CHECK_EQ_U(r.rc, KT_EUSAGE);
	call_release(&r);
	call(&r, reply(200, "{}"), "uid", "../etc", NULL, 0);
	CHECK_EQ_U(r.rc, KT_EUSAGE);
	CHECK_CONTAINS(r.err.msg, "'../etc' is not a valid namespace name");
	call_release(&r);
	call(&r, reply(200, "{}"), "secret", "ns", "a/b", 0);
	CHECK_EQ_U(r.rc, KT_EUSAGE);
	CHECK_CONTAINS(r.err.msg, "'a/b' is not a valid Secret name");
	call_release(&r);
}

static void test_client_secret(void)
{
	call_result r;
	char body[2048];
	snprintf(body, sizeof(body),
	         "{\"kind\":\"Secret\",\"type\":\"Opaque\",\"metadata\":{\"name\":\"s\"},"
	         "\"data\":{\"backup_bucket\":\"%s\",\"backup_region\":\"%s\",\"bin\":\"AP8A\","
	         "\"empty\":\"\"}}", b64(0, "my-bucket"), b64(1, "us-east-1"));
	call(&r, reply(200, body), "secret", "kube-system", "zadara-backup-export", 0);
	CHECK_EQ_U(r.rc, KT_OK);
	CHECK_CONTAINS(r.request, "GET /api/v1/namespaces/kube-system/secrets/zadara-backup-export ");
	if (r.secret) {
		CHECK_EQ_U(r.secret->n_items, 4);
		CHECK_STR(r.secret->type, "Opaque");
		CHECK_STR(r.secret->name, "zadara-backup-export");
		CHECK_STR(kt_kube_secret_find(r.secret, "backup_bucket")->value, "my-bucket");
		CHECK_STR(kt_kube_secret_find(r.secret, "backup_region")->value, "us-east-1");
		const kt_kube_secret_item *bin = kt_kube_secret_find(r.secret, "bin");
		CHECK(bin && bin->len == 3 && bin->value[0] == 0 && bin->value[2] == 0);
		CHECK_EQ_U(kt_kube_secret_find(r.secret, "empty")->len, 0);
		CHECK(kt_kube_secret_find(r.secret, "missing") == NULL);
	}
	call_release(&r);

	/* A Secret without data is an empty map, not an error. */
	call(&r, reply(200, "{\"kind\":\"Secret\",\"type\":\"Opaque\"}"), "secret", "a", "b", 0);
	CHECK_EQ_U(r.rc, KT_OK);
	CHECK(r.secret && r.secret->n_items == 0);
	call_release(&r);

	call(&r, reply(200, "{\"kind\":\"Secret\",\"data\":{\"k\":\"!!\"}}"), "secret", "a", "b", 0);
	CHECK_EQ_U(r.rc, KT_EPROTO);
	CHECK_STR(r.err.msg, "Secret a/b: data.k is not valid base64");
	CHECK(r.secret == NULL);
	call_release(&r);

	call(&r, reply(200, "{\"kind\":\"Secret\",\"data\":{\"k\":1}}"), "secret", "a", "b", 0);
	CHECK_EQ_U(r.rc, KT_EPROTO);
	call_release(&r);

	call(&r, reply(200, "{\"kind\":\"ConfigMap\",\"data\":{}}"), "secret", "a", "b", 0);
	CHECK_EQ_U(r.rc, KT_EPROTO);
	CHECK_CONTAINS(r.err.msg, "answered a ConfigMap, not a Secret");
	call_release(&r);
}

/* A client for a mini server answering replies[0..n) in turn. */
static kt_kube *mini_client(mini_server *m, const char *const *replies, int n)
{
	kt_kube_config cfg;
	kt_kube *c = NULL;
	kt_error err;
	char server[64];
	mini_n_replies = n;
	for (int i = 0; i < n; i++)
		mini_replies[i] = replies[i];
	mini_repeat = n;
	if (mini_start(m, "") != 0) {
		CHECK(!"cannot start the mini server");
		return NULL;
	}
	mini_repeat = 1;
	snprintf(server, sizeof(server), "http://127.0.0.1:%d", m->port);
	kt_kube_config_init(&cfg);
	cfg.server = server;
	kt_kube_opts opts = { .timeout_ms = 10000 };
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, &opts, &err), KT_OK);
	return c;
}

static void mini_done(mini_server *m, kt_kube *c)
{
	kt_kube_client_free(c);
	mini_stop(m);
	mini_n_replies = 0;
}

typedef struct seen {
	char names[8][32];
	char kinds[8][32];
	int n;
} seen;

static kt_code collect(void *ctx, json_t *obj, kt_error *err)
{
	seen *s = ctx;
	(void)err;
	if (s->n < 8) {
		snprintf(s->names[s->n], 32, "%s", json_string_value(json_object_get(
			json_object_get(obj, "metadata"), "name")));
		snprintf(s->kinds[s->n], 32, "%s", json_string_value(json_object_get(obj, "kind")));
	}
	s->n++;
	return KT_OK;
}

static void test_client_list_pages(void)
{
	mini_server m;
	kt_error err;
	seen s;
	kt_kube_list_result res;
	kt_kube_target t = { .version = "v1", .resource = "configmaps", .namespace = "ns" };
	kt_kube_list_opts lo = { .limit = 2, .label_selector = "app=a b" };
	const char *pages[] = {
		reply_dup(200, "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":"
		               "{\"continue\":\"tok/1=\",\"resourceVersion\":\"5\"},\"items\":"
		               "[{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{\"name\":\"b\"}}]}"),
		reply_dup(200, "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":"
		               "{\"resourceVersion\":\"6\"},\"items\":[{\"metadata\":{\"name\":\"c\"}}]}"),
	};
	kt_kube *c = mini_client(&m, pages, 2);
	memset(&s, 0, sizeof(s));
	CHECK_EQ_U(kt_kube_list(c, &t, &lo, collect, &s, &res, &err), KT_OK);
	mini_done(&m, c);
	CHECK_EQ_U(s.n, 3);
	CHECK_STR(s.names[0], "a");
	CHECK_STR(s.names[2], "c");
	CHECK_STR(s.kinds[1], "ConfigMap");
	CHECK_EQ_U(res.n_items, 3);
	CHECK_EQ_U(res.n_pages, 2);
	CHECK_STR(res.resource_version, "6");
	CHECK_CONTAINS(m.all, "GET /api/v1/namespaces/ns/configmaps?limit=2&labelSelector=app%3Da%20b "
	               "HTTP/1.1");
	CHECK_CONTAINS(m.all, "&continue=tok%2F1%3D HTTP/1.1");

	/* The continue token expired between pages. */
	const char *expired[] = {
		pages[0],
		reply_dup(410, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"code\":410,\"message\":"
		               "\"The provided continue parameter is too old\"}"),
	};
	c = mini_client(&m, expired, 2);
	memset(&s, 0, sizeof(s));
	CHECK_EQ_U(kt_kube_list(c, &t, &lo, collect, &s, &res, &err), KT_EREMOTE);
	mini_done(&m, c);
	CHECK_EQ_U(err.status, 410);
	CHECK_CONTAINS(err.msg, "cannot list configmaps in namespace ns: the continue token of page 2 "
	               "expired");
	CHECK_CONTAINS(err.msg, "list again from the start");
	CHECK_EQ_U(s.n, 2);

	/* A page over the byte limit says to lower the limit. */
	const char *one[] = { pages[0] };
	c = mini_client(&m, one, 1);
	lo.max_page = 64;
	CHECK_EQ_U(kt_kube_list(c, &t, &lo, collect, &s, &res, &err), KT_ELIMIT);
	mini_done(&m, c);
	CHECK_CONTAINS(err.msg, "larger than 64 bytes (list with a smaller page limit)");
}

typedef struct wseen {
	int n;
	char last[64];
	int stop_after;
} wseen;

static kt_code on_event(void *ctx, const char *type, json_t *obj, int *stop, kt_error *err)
{
	wseen *w = ctx;
	(void)err;
	snprintf(w->last, sizeof(w->last), "%s %s", type, json_string_value(json_object_get(
		json_object_get(obj, "metadata"), "name")));
	if (++w->n == w->stop_after)
		*stop = 1;
	return KT_OK;
}

static void test_client_watch(void)
{
	mini_server m;
	kt_error err;
	char rv[128];
	kt_kube_target t = { .version = "v1", .resource = "configmaps", .namespace = "ns" };
	kt_kube_watch_opts wo = { .resource_version = "7", .bookmarks = 1, .timeout_s = 9 };
	const char *stream[] = {
		reply_dup(200, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
		               "\"resourceVersion\":\"8\"}}}\n"
		               "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"name\":\"\","
		               "\"resourceVersion\":\"9\"}}}\n"
		               "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
		               "\"reason\":\"Expired\",\"message\":\"too old resource version: 7 (20)\"}}\n"),
	};
	wseen w = { 0 };
	kt_kube *c = mini_client(&m, stream, 1);
	CHECK_EQ_U(kt_kube_watch(c, &t, &wo, on_event, &w, rv, &err), KT_EREMOTE);
	mini_done(&m, c);
	CHECK_EQ_U(w.n, 2);
	CHECK_STR(rv, "9");
	CHECK_EQ_U(err.status, 410);
	CHECK_CONTAINS(err.msg, "cannot watch configmaps in namespace ns: 410 (Expired): too old "
	               "resource version");
	CHECK_CONTAINS(err.msg, "list again");
	CHECK_CONTAINS(m.all, "GET /api/v1/namespaces/ns/configmaps?watch=1&timeoutSeconds=9&"
	               "allowWatchBookmarks=true&resourceVersion=7 HTTP/1.1");

	/* The caller stops after the first event: KT_OK. */
	memset(&w, 0, sizeof(w));
	w.stop_after = 1;
	c = mini_client(&m, stream, 1);
	CHECK_EQ_U(kt_kube_watch(c, &t, &wo, on_event, &w, rv, &err), KT_OK);
	mini_done(&m, c);
	CHECK_EQ_U(w.n, 1);
	CHECK_STR(w.last, "ADDED a");

	/* One event larger than max_event. */
	memset(&w, 0, sizeof(w));
	wo.max_event = 40;
	c = mini_client(&m, stream, 1);
	CHECK_EQ_U(kt_kube_watch(c, &t, &wo, on_event, &w, rv, &err), KT_ELIMIT);
	mini_done(&m, c);
	CHECK_CONTAINS(err.msg, "a watch event of configmaps is larger than 40 bytes");
	CHECK_EQ_U(w.n, 0);
}

static void test_client_verbs(void)
{
	mini_server m;
	kt_error err;
	json_t *out = NULL;
	kt_kube_target t = { .group = "apps", .version = "v1", .resource = "deployments",
	                     .namespace = "ns", .name = "web" };
	const char *okr[] = { reply_dup(200, "{\"kind\":\"Deployment\"}") };

	kt_kube *c = mini_client(&m, okr, 1);
	json_t *obj = json_pack("{s:{s:s}}", "metadata", "name", "web");
	CHECK_EQ_U(kt_kube_create(c, &t, obj, &out, &err), KT_OK);
	mini_done(&m, c);
	CHECK_STR(json_string_value(json_object_get(out, "kind")), "Deployment");
	json_decref(out);
	CHECK_CONTAINS(m.all, "POST /apis/apps/v1/namespaces/ns/deployments HTTP/1.1");
	CHECK_CONTAINS(m.all, "Content-Type: application/json\r\n");

	c = mini_client(&m, okr, 1);
	kt_kube_patch_opts po = { .field_manager = "kt", .force = 1 };
	const char *y = "apiVersion: apps/v1\nkind: Deployment\n";
	CHECK_EQ_U(kt_kube_patch(c, &t, KT_KUBE_PATCH_APPLY, y, strlen(y), &po, NULL, &err), KT_OK);
	mini_done(&m, c);
	CHECK_CONTAINS(m.all, "PATCH /apis/apps/v1/namespaces/ns/deployments/web?fieldManager=kt&"
	               "force=true HTTP/1.1");
	CHECK_CONTAINS(m.all, "Content-Type: application/apply-patch+yaml\r\n");

	c = mini_client(&m, okr, 1);
	CHECK_EQ_U(kt_kube_patch(c, &t, KT_KUBE_PATCH_JSON, "[]", 2, NULL, NULL, &err), KT_OK);
	mini_done(&m, c);
	CHECK_CONTAINS(m.all, "Content-Type: application/json-patch+json\r\n");

	c = mini_client(&m, okr, 1);
	kt_kube_delete_opts d = { .propagation = "Foreground", .uid = "u-1" };
	CHECK_EQ_U(kt_kube_delete(c, &t, &d, &err), KT_OK);
	mini_done(&m, c);
	CHECK_CONTAINS(m.all, "DELETE /apis/apps/v1/namespaces/ns/deployments/web HTTP/1.1");

	/* Errors name the verb, the object and the namespace. */
	const char *forbidden[] = { reply_dup(403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\","
	                                           "\"message\":\"deployments.apps is forbidden\"}") };
	c = mini_client(&m, forbidden, 1);
	CHECK_EQ_U(kt_kube_create(c, &t, obj, NULL, &err), KT_EAUTH);
	mini_done(&m, c);
	CHECK_CONTAINS(err.msg, "cannot create deployments.apps \"web\" in namespace \"ns\": 403 "
	               "(Forbidden): deployments.apps is forbidden (user '(service account)'");
	CHECK_CONTAINS(err.msg, "lacks RBAC permission to create");
	/* A create is not retried after a 5xx (it may have happened)... */
	const char *unavailable[] = { reply_dup(503, "{}"), okr[0] };
	c = mini_client(&m, unavailable, 1);
	CHECK_EQ_U(kt_kube_create(c, &t, obj, NULL, &err), KT_ETRANSIENT);
	mini_done(&m, c);
	/* 429 is retried for every verb, after Retry-After seconds. */
	const char *busy[] = { "HTTP/1.1 429 Too Many\r\nRetry-After: 1\r\nContent-Length: 2\r\n"
	                       "Connection: close\r\n\r\n{}", okr[0] };
	c = mini_client(&m, busy, 2);
	int64_t t0 = kt_now_ms();
	CHECK_EQ_U(kt_kube_create(c, &t, obj, NULL, &err), KT_OK);
	CHECK(kt_now_ms() - t0 >= 900);
	mini_done(&m, c);
	/* ...a get is, and succeeds on the second attempt. */
	c = mini_client(&m, unavailable, 2);
	CHECK_EQ_U(kt_kube_get_object(c, &t, &out, &err), KT_OK);
	mini_done(&m, c);
	json_decref(out);
	/* Names that would change the path are refused before any request. */
	kt_kube_config cfg;
	kt_kube *c2 = NULL;
	kt_kube_config_init(&cfg);
	cfg.server = "http://127.0.0.1:9";
	CHECK_EQ_U(kt_kube_client_new(&c2, &cfg, NULL, &err), KT_OK);
	static const char *const bad[] = { "../x", "a/b", "%2F", "..", "a?b", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		t.name = bad[i];
		CHECK_EQ_U(kt_kube_get_object(c2, &t, &out, &err), KT_EUSAGE);
	}
	t.name = "web";
	t.namespace = "Not_A_Namespace";
	CHECK_EQ_U(kt_kube_get_object(c2, &t, &out, &err), KT_EUSAGE);
	t.namespace = "ns";
	t.resource = "Deployments";
	CHECK_EQ_U(kt_kube_get_object(c2, &t, &out, &err), KT_EUSAGE);
	kt_kube_client_free(c2);
	json_decref(obj);
}

static void test_client_discovery(void)
{
	mini_server m;
	kt_error err;
	const kt_kube_resource *all, *r;
	size_t n;
	/* A server without aggregated discovery: /api, /api/v1, /apis, /apis/apps/v1. */
	const char *legacy[] = {
		reply_dup(200, "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"]}"),
		reply_dup(200, "{\"kind\":\"APIResourceList\",\"groupVersion\":\"v1\",\"resources\":["
		               "{\"name\":\"pods\",\"kind\":\"Pod\",\"namespaced\":true,"
		               "\"verbs\":[\"get\",\"list\",\"watch\"]},"
		               "{\"name\":\"pods/log\",\"kind\":\"Pod\",\"namespaced\":true,\"verbs\":[]},"
		               "{\"name\":\"nodes\",\"kind\":\"Node\",\"namespaced\":false,"
		               "\"verbs\":[\"delete\"]}]}"),
		reply_dup(200, "{\"kind\":\"APIGroupList\",\"groups\":[{\"name\":\"apps\",\"versions\":"
		               "[{\"groupVersion\":\"apps/v1\",\"version\":\"v1\"}],\"preferredVersion\":"
		               "{\"groupVersion\":\"apps/v1\",\"version\":\"v1\"}}]}"),
		reply_dup(200, "{\"kind\":\"APIResourceList\",\"resources\":[{\"name\":\"deployments\","
		               "\"kind\":\"Deployment\",\"namespaced\":true,\"verbs\":[\"patch\"]}]}"),
	};
	kt_kube *c = mini_client(&m, legacy, 4);
	CHECK_EQ_U(kt_kube_discover(c, &all, &n, &err), KT_OK);
	CHECK_EQ_U(n, 3);
	CHECK_EQ_U(kt_kube_resource_find(c, "Deployment.apps", &r, &err), KT_OK);
	CHECK_STR(r->resource, "deployments");
	CHECK(r->namespaced && r->preferred && r->verbs == KT_KUBE_VERB_PATCH);
	CHECK_EQ_U(kt_kube_resource_find(c, "nodes", &r, &err), KT_OK);
	CHECK(!r->namespaced && r->verbs == KT_KUBE_VERB_DELETE);
	CHECK_EQ_U(kt_kube_resource_find(c, "pods/log", &r, &err), KT_ENOTFOUND);
	/* Cached: no more requests (the server would answer nothing). */
	CHECK_EQ_U(kt_kube_discover(c, &all, &n, &err), KT_OK);
	mini_done(&m, c);
	CHECK_CONTAINS(m.all, "GET /apis/apps/v1 HTTP/1.1");
	CHECK_CONTAINS(m.all, "Accept: application/json;g=apidiscovery.k8s.io;v=v2;"
	               "as=APIGroupDiscoveryList,application/json\r\n");

	/* Aggregated: two requests; a Stale version is skipped; the first
	 * version is the preferred one. */
	const char *agg[] = {
		reply_dup(200, "{\"kind\":\"APIGroupDiscoveryList\",\"items\":[{\"metadata\":{},"
		               "\"versions\":[{\"version\":\"v1\",\"resources\":[{\"resource\":"
		               "\"configmaps\",\"responseKind\":{\"kind\":\"ConfigMap\"},\"scope\":"
		               "\"Namespaced\",\"verbs\":[\"list\"]}]}]}]}"),
		reply_dup(200, "{\"kind\":\"APIGroupDiscoveryList\",\"items\":[{\"metadata\":{\"name\":"
		               "\"example.com\"},\"versions\":[{\"version\":\"v2\",\"resources\":[{"
		               "\"resource\":\"widgets\",\"responseKind\":{\"kind\":\"Widget\"},"
		               "\"scope\":\"Cluster\",\"verbs\":[\"get\"]}]},{\"version\":\"v1\","
		               "\"resources\":[{\"resource\":\"widgets\",\"responseKind\":{\"kind\":"
		               "\"Widget\"},\"scope\":\"Cluster\",\"verbs\":[\"get\"]}]},{\"version\":"
		               "\"v0\",\"freshness\":\"Stale\",\"resources\":[{\"resource\":\"old\","
		               "\"responseKind\":{\"kind\":\"Old\"}}]}]}]}"),
	};
	c = mini_client(&m, agg, 2);
	CHECK_EQ_U(kt_kube_discover(c, &all, &n, &err), KT_OK);
	CHECK_EQ_U(n, 3);
	CHECK_EQ_U(kt_kube_resource_find(c, "widgets", &r, &err), KT_OK);
	CHECK_STR(r->version, "v2");
	CHECK(!r->namespaced && r->preferred);
	CHECK_EQ_U(kt_kube_resource_find(c, "configmap", &r, &err), KT_OK);
	CHECK_STR(r->group, "");
	CHECK(r->namespaced);
	CHECK_EQ_U(kt_kube_resource_find(c, "old", &r, &err), KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "serves no resource 'old'");
	mini_done(&m, c);
}

static void test_time_parse(void)
{
	CHECK(kube_parse_time("1970-01-01T00:00:00Z") == 0);
	CHECK(kube_parse_time("2026-11-27T12:00:00Z") == 1795780800000LL);
	CHECK(kube_parse_time("2026-11-27T12:00:00.123456Z") == 1795780800000LL);
	CHECK(kube_parse_time("2026-11-27T14:00:00+02:00") == 1795780800000LL);
	CHECK(kube_parse_time("2026-11-27 12:00:00") == -1);
	CHECK(kube_parse_time("2026-13-27T12:00:00Z") == -1);
	CHECK(kube_parse_time("") == -1);
}

static void test_client_transport_errors_name_the_source(void)
{
	kt_kube_config cfg;
	kt_kube *c = NULL;
	kt_error err;
	json_t *j = NULL;
	/* A port that is bound but never listened on. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	      getsockname(s, (struct sockaddr *)&a, &alen) == 0);
	char server[64];
	snprintf(server, sizeof(server), "http://127.0.0.1:%d", ntohs(a.sin_port));
	kt_kube_config_init(&cfg);
	cfg.server = server;
	cfg.source = "kubeconfig 'x.conf'";
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, NULL, &err), KT_OK);
	CHECK_EQ_U(kt_kube_get(c, "/api", &j, &err), KT_ETRANSIENT);
	CHECK_CONTAINS(err.msg, "kubeconfig 'x.conf': cannot connect to http://127.0.0.1:");
	CHECK(j == NULL);
	kt_kube_client_free(c);
	close(s);

	/* A token over http:// is refused by the client too. */
	cfg.token = TOKEN;
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, NULL, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "refusing to send a token in clear text");
	CHECK(strstr(err.msg, TOKEN) == NULL);
	CHECK_EQ_U(kt_kube_client_new(&c, NULL, NULL, &err), KT_EUSAGE);
}


int main(void)
{
	RUN(test_client_get_and_status_mapping);
	RUN(test_client_list_pages);
	RUN(test_client_watch);
	RUN(test_client_verbs);
	RUN(test_client_discovery);
	RUN(test_time_parse);
	RUN(test_client_secret);
	RUN(test_client_transport_errors_name_the_source);
	for (size_t i = 0; i < n_dups; i++)
		free(dups[i]);
	return unit_done();
}
