/*
 * etcdtool.c - test driver for the etcd KV.Range and Cluster.MemberList
 * calls of src/etcd: runs one call, printing one JSON object on stdout.
 * Used by tests/integration/test_etcd_kv.py.
 *
 *   etcdtool [CONN] range ENDPOINT KEY [--prefix] [--range-end END]
 *                   [--count-only] [--keys-only] [--limit N] [--revision N]
 *                   [--serializable]
 *       KEY "" with --prefix means all keys (key and range end "\0"), as
 *       `etcdctl get "" --prefix` does.
 *   etcdtool [CONN] members ENDPOINT [--linearizable]
 *   CONN: --cacert FILE --cert FILE --key FILE --user NAME:PASSWORD
 *         --timeout-ms N (each optional, anywhere on the line)
 *
 * Success: {"ok": true, "result": ...}, exit 0.  Keys and values appear
 * twice: as text ("key", null when not UTF-8) and base64 ("key_b64", as
 * etcdctl -w json prints them); uint64 ids are decimal strings.  Failure:
 * {"ok": false, "code": "limit", "status": 0, "message": "..."}, exit 1;
 * bad usage exits 2.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "etcd/etcd.h"

static int usage(void)
{
	fprintf(stderr, "usage: etcdtool [--cacert F] [--cert F] [--key F] [--user U:P] "
	                "[--timeout-ms N]\n"
	                "         range ENDPOINT KEY [--prefix] [--range-end END] [--count-only] "
	                "[--keys-only] [--limit N] [--revision N] [--serializable]\n"
	                "       | members ENDPOINT [--linearizable]\n");
	return 2;
}

static int print(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	printf("%s\n", s ? s : "{}");
	free(s);
	json_decref(o);
	return 0;
}

static int fail(const kt_error *err)
{
	print(json_pack("{s:b, s:s, s:i, s:s}", "ok", 0, "code", kt_code_name(err->code),
	                "status", (int)err->status, "message", err->msg));
	return 1;
}

static int parse_int(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

static json_t *u64(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	return json_string(b);
}

static json_t *b64(const uint8_t *d, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (!out)
		return json_null();
	EVP_EncodeBlock((unsigned char *)out, d, (int)n);
	json_t *s = json_string(out);
	free(out);
	return s;
}

static json_t *text_or_null(const uint8_t *d, size_t n)
{
	json_t *s = json_stringn((const char *)d, n);
	return s ? s : json_null();
}

static json_t *header_json(const kt_etcd_header *h)
{
	return json_pack("{s:o, s:o, s:I, s:o}", "cluster_id", u64(h->cluster_id), "member_id",
	                 u64(h->member_id), "revision", (json_int_t)h->revision, "raft_term",
	                 u64(h->raft_term));
}

static json_t *strings(char **s, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(s[i]));
	return a;
}

int main(int argc, char **argv)
{
	const char *pos[3] = { NULL, NULL, NULL };
	size_t n_pos = 0;
	kt_etcd_conn conn;
	kt_etcd_range_req req;
	const char *range_end = NULL;
	int prefix = 0, linearizable = 0;
	kt_error err;

	memset(&conn, 0, sizeof(conn));
	memset(&req, 0, sizeof(req));
	kt_error_clear(&err);
	kt_log_setup(stderr, KT_LOG_TEXT, KT_LOG_DEBUG);
	conn.timeout_ms = 30000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1;
		if (!strcmp(a, "--prefix"))
			prefix = 1, takes = 0;
		else if (!strcmp(a, "--count-only"))
			req.count_only = 1, takes = 0;
		else if (!strcmp(a, "--keys-only"))
			req.keys_only = 1, takes = 0;
		else if (!strcmp(a, "--serializable"))
			req.serializable = 1, takes = 0;
		else if (!strcmp(a, "--linearizable"))
			linearizable = 1, takes = 0;
		else if (strncmp(a, "--", 2)) {
			if (n_pos == 3)
				return usage();
			pos[n_pos++] = a;
			continue;
		}
		if (!takes)
			continue;
		if (!v)
			return usage();
		i++;
		if (!strcmp(a, "--cacert"))
			conn.cacert = v;
		else if (!strcmp(a, "--cert"))
			conn.cert = v;
		else if (!strcmp(a, "--key"))
			conn.key = v;
		else if (!strcmp(a, "--user"))
			conn.user = v;
		else if (!strcmp(a, "--range-end"))
			range_end = v;
		else if (!strcmp(a, "--limit") ? parse_int(v, &req.limit) :
		         !strcmp(a, "--revision") ? parse_int(v, &req.revision) :
		         !strcmp(a, "--timeout-ms") ? parse_int(v, &conn.timeout_ms) : -1)
			return usage();
	}
	if (n_pos < 2)
		return usage();
	conn.endpoint = pos[1];

	if (!strcmp(pos[0], "members") && n_pos == 2) {
		kt_etcd_member *ms = NULL;
		size_t n = 0;
		kt_etcd_header hdr;
		if (kt_etcd_member_list(&conn, linearizable, &ms, &n, &hdr, &err))
			return fail(&err);
		json_t *list = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(list, json_pack(
				"{s:o, s:s, s:o, s:o, s:b}", "id", u64(ms[i].id), "name", ms[i].name,
				"peer_urls", strings(ms[i].peer_urls, ms[i].n_peer_urls),
				"client_urls", strings(ms[i].client_urls, ms[i].n_client_urls),
				"is_learner", ms[i].is_learner));
		kt_etcd_member_list_free(ms, n);
		return print(json_pack("{s:b, s:{s:o, s:o}}", "ok", 1, "result", "header",
		                       header_json(&hdr), "members", list));
	}
	if (strcmp(pos[0], "range") || n_pos != 3)
		return usage();

	kt_buf end;
	kt_buf_init(&end, KT_GRPC_MAX_MESSAGE);
	const char *key = pos[2];
	req.key = (const uint8_t *)key;
	req.key_len = strlen(key);
	if (prefix && range_end)
		return usage();
	if (prefix && req.key_len == 0) {
		req.key = (const uint8_t *)"";   /* all keys: "\0" .. "\0" */
		req.key_len = 1;
	}
	if (prefix) {
		if (kt_etcd_prefix_end(&end, (const uint8_t *)key, strlen(key), &err))
			return fail(&err);
		req.range_end = (const uint8_t *)end.data;
		req.range_end_len = end.len;
	} else if (range_end) {
		req.range_end = (const uint8_t *)range_end;
		req.range_end_len = strlen(range_end);
	}
	kt_etcd_range_resp r;
	kt_code rc = kt_etcd_range(&conn, &req, &r, &err);
	kt_buf_release(&end);
	if (rc)
		return fail(&err);
	json_t *kvs = json_array();
	for (size_t i = 0; i < r.n_kvs; i++) {
		const kt_etcd_kv *kv = &r.kvs[i];
		json_array_append_new(kvs, json_pack(
			"{s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I}",
			"key", text_or_null(kv->key, kv->key_len), "key_b64", b64(kv->key, kv->key_len),
			"value", text_or_null(kv->value, kv->value_len),
			"value_b64", b64(kv->value, kv->value_len),
			"create_revision", (json_int_t)kv->create_revision,
			"mod_revision", (json_int_t)kv->mod_revision,
			"version", (json_int_t)kv->version, "lease", (json_int_t)kv->lease));
	}
	json_t *out = json_pack("{s:b, s:{s:o, s:I, s:b, s:o}}", "ok", 1, "result", "header",
	                        header_json(&r.header), "count", (json_int_t)r.count, "more",
	                        r.more, "kvs", kvs);
	kt_etcd_range_resp_release(&r);
	return print(out);
}
