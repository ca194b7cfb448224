/*
 * test_etcd_kv.c - the etcd protobuf messages beyond the snapshot stream:
 * Authenticate (request and response), KV.Range (request encoding, prefix
 * ends, decoding, truncation, wire types, limits) and Cluster.MemberList.
 * The calls themselves run against a real etcd in
 * tests/integration/test_etcd_kv.py.
 */
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd.h"
#include "pb_build.h"
#include "unit.h"

static void test_auth_request_encoding(void)
{
	kt_buf b;
	kt_error err;
	kt_buf_init(&b, 1024);
	CHECK_EQ_U(kt_etcd_encode_auth_request(&b, "root", "pw", &err), KT_OK);
	static const uint8_t want[] = { 0x0a, 4, 'r', 'o', 'o', 't', 0x12, 2, 'p', 'w' };
	CHECK_EQ_U(b.len, sizeof(want));
	CHECK(!memcmp(b.data, want, sizeof(want)));

	/* A 200-byte password needs a two-byte length. */
	char pw[201];
	memset(pw, 'p', 200);
	pw[200] = '\0';
	kt_buf_reset(&b);
	CHECK_EQ_U(kt_etcd_encode_auth_request(&b, "u", pw, &err), KT_OK);
	CHECK_EQ_U(b.len, 3 + 3 + 200);
	CHECK_EQ_U((uint8_t)b.data[4], 0xc8);
	CHECK_EQ_U((uint8_t)b.data[5], 0x01);

	/* Bounded output. */
	kt_buf small;
	kt_buf_init(&small, 4);
	CHECK_EQ_U(kt_etcd_encode_auth_request(&small, "root", "pw", &err), KT_ELIMIT);
	kt_buf_release(&small);
	kt_buf_release(&b);
}

static void test_auth_response_decoding(void)
{
	bytes h = { .n = 0 };
	put_tag(&h, 3, 0);
	put_varint(&h, 5);
	bytes m = { .n = 0 };
	put_len(&m, 1, h.d, h.n);
	put_len(&m, 2, "abcdef.12", 9);
	kt_etcd_auth_msg out;
	kt_error err;
	CHECK_EQ_U(kt_etcd_decode_auth_response(m.d, m.n, &out, &err), KT_OK);
	CHECK(out.has_header);
	CHECK_EQ_U(out.header.revision, 5);
	CHECK_EQ_U(out.token_len, 9);
	CHECK(!memcmp(out.token, "abcdef.12", 9));

	/* Token over the limit. */
	static uint8_t big[KT_ETCD_MAX_TOKEN + 16];
	size_t n = 0;
	big[n++] = 0x12;
	uint64_t len = KT_ETCD_MAX_TOKEN + 1;
	while (len >= 0x80) {
		big[n++] = (uint8_t)(len | 0x80);
		len >>= 7;
	}
	big[n++] = (uint8_t)len;
	n += KT_ETCD_MAX_TOKEN + 1;
	CHECK_EQ_U(kt_etcd_decode_auth_response(big, n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "token of 4097 bytes");

	/* Wrong wire type for token. */
	m.n = 0;
	put_tag(&m, 2, 0);
	put_varint(&m, 1);
	CHECK_EQ_U(kt_etcd_decode_auth_response(m.d, m.n, &out, &err), KT_EPROTO);
}

/* ---- status mapping and helpers ---- */

/* ---- KV.Range ---- */

static void test_range_request_encoding(void)
{
	kt_buf b;
	kt_error err;
	kt_buf_init(&b, 1024);
	kt_etcd_range_req req = { .key = (const uint8_t *)"/a", .key_len = 2,
	                          .range_end = (const uint8_t *)"/b", .range_end_len = 2,
	                          .limit = 300, .revision = 7, .serializable = 1,
	                          .keys_only = 1, .count_only = 1 };
	CHECK_EQ_U(kt_etcd_encode_range_request(&b, &req, &err), KT_OK);
	static const uint8_t want[] = { 0x0a, 2, '/', 'a', 0x12, 2, '/', 'b', 0x18, 0xac, 0x02,
	                                0x20, 7, 0x38, 1, 0x40, 1, 0x48, 1 };
	CHECK_EQ_U(b.len, sizeof(want));
	CHECK(!memcmp(b.data, want, sizeof(want)));

	/* "All keys": key and range end are one zero byte each, and the
	 * defaults (no limit, newest revision, flags off) are not sent. */
	kt_etcd_range_req all = { .key = (const uint8_t *)"", .key_len = 1,
	                          .range_end = (const uint8_t *)"", .range_end_len = 1 };
	kt_buf_reset(&b);
	CHECK_EQ_U(kt_etcd_encode_range_request(&b, &all, &err), KT_OK);
	static const uint8_t want_all[] = { 0x0a, 1, 0, 0x12, 1, 0 };
	CHECK_EQ_U(b.len, sizeof(want_all));
	CHECK(!memcmp(b.data, want_all, sizeof(want_all)));

	/* Bounded output. */
	kt_buf small;
	kt_buf_init(&small, 5);
	CHECK_EQ_U(kt_etcd_encode_range_request(&small, &req, &err), KT_ELIMIT);
	kt_buf_release(&small);

	kt_buf_reset(&b);
	CHECK_EQ_U(kt_etcd_encode_member_list_request(&b, 0, &err), KT_OK);
	CHECK_EQ_U(b.len, 0);
	CHECK_EQ_U(kt_etcd_encode_member_list_request(&b, 1, &err), KT_OK);
	CHECK_EQ_U(b.len, 2);
	CHECK(!memcmp(b.data, "\x08\x01", 2));
	kt_buf_release(&b);
}

static void check_prefix_end(const char *prefix, size_t n, const char *want, size_t want_n)
{
	kt_buf b;
	kt_error err;
	kt_buf_init(&b, 64);
	kt_buf_add(&b, "X", 1, &err); /* appends, never overwrites */
	CHECK_EQ_U(kt_etcd_prefix_end(&b, (const uint8_t *)prefix, n, &err), KT_OK);
	CHECK_EQ_U(b.len, want_n + 1);
	CHECK(b.data[0] == 'X' && !memcmp(b.data + 1, want, want_n));
	kt_buf_release(&b);
}

static void test_prefix_end(void)
{
	check_prefix_end("/registry/", 10, "/registry0", 10);
	check_prefix_end("a\xff\xff", 3, "b", 1);
	check_prefix_end("a\xfe", 2, "a\xff", 2);
	check_prefix_end("\xff\xff", 2, "", 1);  /* no upper bound: "\0" */
	check_prefix_end("", 0, "", 1);
	kt_buf small;
	kt_error err;
	kt_buf_init(&small, 2);
	CHECK_EQ_U(kt_etcd_prefix_end(&small, (const uint8_t *)"abc", 3, &err), KT_ELIMIT);
	kt_buf_release(&small);
}

/* A KeyValue as etcd sends it. */
static void kv_msg(bytes *kv, const char *key, const char *value, int64_t mod, int64_t lease)
{
	kv->n = 0;
	put_len(kv, 1, key, strlen(key));
	put_tag(kv, 2, 0);
	put_varint(kv, 2);
	put_tag(kv, 3, 0);
	put_varint(kv, (uint64_t)mod);
	put_tag(kv, 4, 0);
	put_varint(kv, 1);
	if (value)
		put_len(kv, 5, value, strlen(value));
	if (lease) {
		put_tag(kv, 6, 0);
		put_varint(kv, (uint64_t)lease);
	}
}

/* A RangeResponse: header (revision 9), two keys, more, count 5. */
static void range_msg(bytes *m)
{
	bytes h = { .n = 0 }, kv;
	put_tag(&h, 1, 0);
	put_varint(&h, 0xabcdef);
	put_tag(&h, 3, 0);
	put_varint(&h, 9);
	m->n = 0;
	put_len(m, 1, h.d, h.n);
	kv_msg(&kv, "/registry/a", "alpha", 4, 0);
	put_len(m, 2, kv.d, kv.n);
	kv_msg(&kv, "/registry/b", NULL, 5, 0x694d7c1e5a3b0001ll);
	put_len(m, 2, kv.d, kv.n);
	put_tag(m, 3, 0);
	put_varint(m, 1);
	put_tag(m, 4, 0);
	put_varint(m, 5);
}

static void test_decode_range(void)
{
	bytes m;
	kt_etcd_range_resp out;
	kt_error err;
	range_msg(&m);
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_OK);
	/* The result owns copies: wiping the message changes nothing. */
	memset(m.d, 0xee, m.n);
	CHECK(out.has_header);
	CHECK_EQ_U(out.header.cluster_id, 0xabcdef);
	CHECK_EQ_U(out.header.revision, 9);
	CHECK_EQ_U(out.n_kvs, 2);
	CHECK(out.more);
	CHECK_EQ_U(out.count, 5);
	CHECK_EQ_U(out.kvs[0].key_len, 11);
	CHECK_STR((const char *)out.kvs[0].key, "/registry/a");
	CHECK_EQ_U(out.kvs[0].value_len, 5);
	CHECK_STR((const char *)out.kvs[0].value, "alpha");
	CHECK_EQ_U(out.kvs[0].create_revision, 2);
	CHECK_EQ_U(out.kvs[0].mod_revision, 4);
	CHECK_EQ_U(out.kvs[0].version, 1);
	CHECK_EQ_U(out.kvs[0].lease, 0);
	/* keys_only: no value, yet never a NULL pointer. */
	CHECK_STR((const char *)out.kvs[1].key, "/registry/b");
	CHECK_EQ_U(out.kvs[1].value_len, 0);
	CHECK(out.kvs[1].value && out.kvs[1].value[0] == 0);
	CHECK_EQ_U(out.kvs[1].mod_revision, 5);
	CHECK_EQ_U(out.kvs[1].lease, 0x694d7c1e5a3b0001ll);
	kt_etcd_range_resp_release(&out);
	CHECK(out.kvs == NULL && out.n_kvs == 0);
	kt_etcd_range_resp_release(&out); /* twice is harmless */

	/* count_only: a header and a count, nothing allocated. */
	m.n = 0;
	put_tag(&m, 4, 0);
	put_varint(&m, 123456);
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_OK);
	CHECK_EQ_U(out.count, 123456);
	CHECK(out.kvs == NULL && out.n_kvs == 0 && !out.more && !out.has_header);

	/* Binary keys and values travel intact, embedded zeros included; a
	 * repeated field inside a KeyValue: the last one wins (protobuf). */
	bytes kv = { .n = 0 };
	put_len(&kv, 1, "first", 5);
	put_len(&kv, 1, "k\0\xff", 3);
	put_len(&kv, 5, "\0\0v", 3);
	put_tag(&kv, 99, 0); /* unknown */
	put_varint(&kv, 1);
	m.n = 0;
	put_len(&m, 2, kv.d, kv.n);
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_OK);
	CHECK_EQ_U(out.n_kvs, 1);
	CHECK(out.kvs[0].key_len == 3 && !memcmp(out.kvs[0].key, "k\0\xff", 3));
	CHECK(out.kvs[0].value_len == 3 && !memcmp(out.kvs[0].value, "\0\0v", 3));
	kt_etcd_range_resp_release(&out);

	/* An empty message is an empty answer. */
	CHECK_EQ_U(kt_etcd_decode_range(m.d, 0, &out, &err), KT_OK);
	CHECK(out.n_kvs == 0 && out.kvs == NULL);
}

static void test_range_truncated(void)
{
	bytes m;
	kt_etcd_range_resp out;
	kt_error err;
	range_msg(&m);
	/* Every cut that does not fall on a field boundary of the outer message
	 * is refused, leaves nothing allocated (ASan checks) and never reads
	 * past the cut (the decoder gets an exact-size copy). */
	size_t n_ok = 0, n_bad = 0;
	for (size_t cut = 0; cut < m.n; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, m.d, cut);
		kt_code rc = kt_etcd_decode_range(copy, cut, &out, &err);
		CHECK(rc == KT_OK || rc == KT_EPROTO);
		if (rc == KT_OK) {
			n_ok++;
			kt_etcd_range_resp_release(&out);
		} else {
			n_bad++;
			CHECK(out.kvs == NULL && out.n_kvs == 0);
		}
		free(copy);
	}
	CHECK_EQ_U(n_ok, 5); /* 0, after the header, each KeyValue and more */
	CHECK(n_bad > 40);

	/* A KeyValue whose key length runs past the KeyValue's own end. */
	bytes kv = { .n = 0 };
	put_tag(&kv, 1, 2);
	put_varint(&kv, 50);
	put(&kv, "short", 5);
	m.n = 0;
	put_len(&m, 2, kv.d, kv.n);
	put_len(&m, 99, "padding-after-the-kv-to-make-it-long-enough-for-50", 50);
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "KeyValue");
	CHECK_CONTAINS(err.msg, "past the end");
}

static void test_range_wrong_wire_type(void)
{
	kt_etcd_range_resp out;
	kt_error err;
	bytes m = { .n = 0 }, kv = { .n = 0 };

	put_tag(&m, 2, 0); /* kvs as a varint */
	put_varint(&m, 1);
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "field kvs has wire type 0");

	m.n = 0;
	put_len(&m, 4, "12", 2); /* count as bytes */
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "count");

	put_tag(&kv, 1, 0); /* key as a varint, inside a KeyValue */
	put_varint(&kv, 3);
	m.n = 0;
	put_len(&m, 2, kv.d, kv.n);
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "malformed KeyValue from etcd: field key");

	kv.n = 0;
	put_len(&kv, 3, "x", 1); /* mod_revision as bytes */
	m.n = 0;
	put_len(&m, 2, kv.d, kv.n);
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "mod_revision");

	/* A good KeyValue, then a group: nothing is left allocated. */
	kv_msg(&kv, "k", "v", 1, 0);
	m.n = 0;
	put_len(&m, 2, kv.d, kv.n);
	put_tag(&m, 8, 3);
	CHECK_EQ_U(kt_etcd_decode_range(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK(out.kvs == NULL);
}

/* n empty KeyValues ({0x12, 0x00} each) in a malloc'ed message. */
static uint8_t *empty_kvs(size_t n)
{
	uint8_t *p = malloc(2 * n);
	for (size_t i = 0; i < n; i++) {
		p[2 * i] = 0x12;
		p[2 * i + 1] = 0;
	}
	return p;
}

static void test_range_over_limit(void)
{
	kt_etcd_range_resp out;
	kt_error err;
	/* The cheapest KeyValue costs 2 bytes on the wire and a 64-byte slot:
	 * the count limit keeps the slots within KT_GRPC_MAX_MESSAGE. */
	CHECK(KT_ETCD_RANGE_MAX_KVS * sizeof(kt_etcd_kv) <= KT_GRPC_MAX_MESSAGE);
	uint8_t *p = empty_kvs(KT_ETCD_RANGE_MAX_KVS + 1);
	CHECK_EQ_U(kt_etcd_decode_range(p, 2 * KT_ETCD_RANGE_MAX_KVS, &out, &err), KT_OK);
	CHECK_EQ_U(out.n_kvs, KT_ETCD_RANGE_MAX_KVS);
	CHECK(out.kvs[KT_ETCD_RANGE_MAX_KVS - 1].key_len == 0 &&
	      out.kvs[KT_ETCD_RANGE_MAX_KVS - 1].key[0] == 0);
	kt_etcd_range_resp_release(&out);
	CHECK_EQ_U(kt_etcd_decode_range(p, 2 * (KT_ETCD_RANGE_MAX_KVS + 1), &out, &err),
	           KT_ELIMIT);
	CHECK_CONTAINS(err.msg, "more than 65536 keys");
	CHECK(out.kvs == NULL && out.n_kvs == 0);
	free(p);
}

/* ---- Cluster.MemberList ---- */

static void member_msg(bytes *mm, uint64_t id, const char *name, const char *peer,
                       const char *client1, const char *client2, int learner)
{
	mm->n = 0;
	put_tag(mm, 1, 0);
	put_varint(mm, id);
	if (name)
		put_len(mm, 2, name, strlen(name));
	if (peer)
		put_len(mm, 3, peer, strlen(peer));
	if (client1)
		put_len(mm, 4, client1, strlen(client1));
	if (client2)
		put_len(mm, 4, client2, strlen(client2));
	if (learner) {
		put_tag(mm, 5, 0);
		put_varint(mm, 1);
	}
}

static void header_only(bytes *m)
{
	bytes h = { .n = 0 };
	put_tag(&h, 1, 0);
	put_varint(&h, 77);
	put_tag(&h, 2, 0);
	put_varint(&h, 0x8e9e05c52164694dull);
	m->n = 0;
	put_len(m, 1, h.d, h.n);
}

static void test_decode_member_list(void)
{
	bytes m, mm;
	kt_etcd_member *ms = NULL;
	size_t n = 99;
	kt_etcd_header hdr;
	kt_error err;

	header_only(&m);
	member_msg(&mm, 0x8e9e05c52164694dull, "infra1", "http://10.0.0.1:2380",
	           "http://10.0.0.1:2379", "https://etcd-1.example:2379", 0);
	put_len(&m, 2, mm.d, mm.n);
	/* Added but not started: no name, no client URLs; a learner. */
	member_msg(&mm, 42, NULL, "http://10.0.0.2:2380", NULL, NULL, 1);
	put_tag(&mm, 9, 0); /* unknown */
	put_varint(&mm, 5);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, &hdr, &err), KT_OK);
	memset(m.d, 0xee, m.n); /* owned copies */
	CHECK_EQ_U(n, 2);
	CHECK_EQ_U(hdr.cluster_id, 77);
	CHECK_EQ_U(hdr.member_id, 0x8e9e05c52164694dull);
	CHECK_EQ_U(ms[0].id, 0x8e9e05c52164694dull);
	CHECK_STR(ms[0].name, "infra1");
	CHECK_EQ_U(ms[0].n_peer_urls, 1);
	CHECK_STR(ms[0].peer_urls[0], "http://10.0.0.1:2380");
	CHECK_EQ_U(ms[0].n_client_urls, 2);
	CHECK_STR(ms[0].client_urls[0], "http://10.0.0.1:2379");
	CHECK_STR(ms[0].client_urls[1], "https://etcd-1.example:2379");
	CHECK(!ms[0].is_learner);
	CHECK_EQ_U(ms[1].id, 42);
	CHECK_STR(ms[1].name, "");
	CHECK_EQ_U(ms[1].n_client_urls, 0);
	CHECK(ms[1].client_urls == NULL);
	CHECK(ms[1].is_learner);
	kt_etcd_member_list_free(ms, n);
	kt_etcd_member_list_free(NULL, 0);

	/* A header and no members: an empty list; hdr_out may be NULL. */
	header_only(&m);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_OK);
	CHECK(ms == NULL && n == 0);

	/* No header at all: refused (etcd always sends one). */
	member_msg(&mm, 1, "a", NULL, NULL, NULL, 0);
	m.n = 0;
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, &hdr, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "no response header");
	CHECK(ms == NULL && n == 0);
}

static void test_member_list_malformed(void)
{
	bytes m, mm;
	kt_etcd_member *ms;
	size_t n;
	kt_error err;

	/* Truncated anywhere inside: refused, nothing allocated. */
	header_only(&m);
	member_msg(&mm, 5, "infra1", "http://10.0.0.1:2380", "http://10.0.0.1:2379", NULL, 0);
	put_len(&m, 2, mm.d, mm.n);
	size_t header_end = m.n - mm.n - 2;
	for (size_t cut = header_end + 1; cut < m.n; cut++) {
		uint8_t *copy = malloc(cut);
		memcpy(copy, m.d, cut);
		CHECK_EQ_U(kt_etcd_decode_member_list(copy, cut, &ms, &n, NULL, &err), KT_EPROTO);
		CHECK(ms == NULL && n == 0);
		free(copy);
	}

	/* Wrong wire types, inside and outside a Member. */
	header_only(&m);
	put_tag(&m, 2, 0);
	put_varint(&m, 1);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "field members");
	mm.n = 0;
	put_len(&mm, 1, "id", 2);
	header_only(&m);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "malformed Member from etcd: field ID");
	mm.n = 0;
	put_tag(&mm, 4, 0);
	put_varint(&mm, 1);
	header_only(&m);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "clientURLs");

	/* Control bytes and NULs have no place in names and URLs. */
	member_msg(&mm, 1, "in\nfra", NULL, NULL, NULL, 0);
	header_only(&m);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "member name has a control byte 0x0a at offset 2");
	mm.n = 0;
	put_len(&mm, 3, "http://a\0b", 10);
	header_only(&m);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "peer URL");
}

static void test_member_list_limits(void)
{
	bytes m, mm;
	kt_etcd_member *ms;
	size_t n;
	kt_error err;
	char url[KT_ETCD_MAX_MEMBER_STRING + 2];

	/* URLs of one kind: 16 fit, 17 do not. */
	mm.n = 0;
	for (int i = 0; i < KT_ETCD_MAX_MEMBER_URLS; i++)
		put_len(&mm, 4, "http://h:2379", 13);
	header_only(&m);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_OK);
	CHECK(n == 1 && ms[0].n_client_urls == KT_ETCD_MAX_MEMBER_URLS);
	CHECK_STR(ms[0].client_urls[KT_ETCD_MAX_MEMBER_URLS - 1], "http://h:2379");
	kt_etcd_member_list_free(ms, n);
	put_len(&mm, 4, "http://h:2379", 13);
	header_only(&m);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_ELIMIT);
	CHECK_CONTAINS(err.msg, "more than 16 clientURLs");
	CHECK(ms == NULL && n == 0);

	/* Strings: 1024 bytes fit, 1025 do not. */
	memset(url, 'u', sizeof(url));
	mm.n = 0;
	put_len(&mm, 3, url, KT_ETCD_MAX_MEMBER_STRING);
	header_only(&m);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_OK);
	CHECK_EQ_U(strlen(ms[0].peer_urls[0]), KT_ETCD_MAX_MEMBER_STRING);
	kt_etcd_member_list_free(ms, n);
	mm.n = 0;
	put_len(&mm, 2, url, KT_ETCD_MAX_MEMBER_STRING + 1);
	header_only(&m);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_ELIMIT);
	CHECK_CONTAINS(err.msg, "member name of 1025 bytes");

	/* Members: 64 fit, 65 do not. */
	header_only(&m);
	member_msg(&mm, 3, "m", "http://p:2380", NULL, NULL, 0);
	for (int i = 0; i < KT_ETCD_MAX_MEMBERS; i++)
		put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_OK);
	CHECK_EQ_U(n, KT_ETCD_MAX_MEMBERS);
	CHECK_STR(ms[KT_ETCD_MAX_MEMBERS - 1].peer_urls[0], "http://p:2380");
	kt_etcd_member_list_free(ms, n);
	put_len(&m, 2, mm.d, mm.n);
	CHECK_EQ_U(kt_etcd_decode_member_list(m.d, m.n, &ms, &n, NULL, &err), KT_ELIMIT);
	CHECK_CONTAINS(err.msg, "more than 64 members");
	CHECK(ms == NULL && n == 0);
}

static void test_range_bad_requests(void)
{
	/* Refused before any connection is made (nothing listens there). */
	kt_etcd_conn c = { .endpoint = "http://127.0.0.1:9", .timeout_ms = 2000 };
	kt_etcd_range_req req = { .key = (const uint8_t *)"", .key_len = 0 };
	kt_etcd_range_resp out;
	kt_error err;
	CHECK_EQ_U(kt_etcd_range(&c, &req, &out, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "needs a key");
	req.key_len = 1;
	req.limit = -1;
	CHECK_EQ_U(kt_etcd_range(&c, &req, &out, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "got -1");
	CHECK(out.kvs == NULL);
	c.endpoint = "etcd:2379";
	req.limit = 0;
	CHECK_EQ_U(kt_etcd_range(&c, &req, &out, &err), KT_EUSAGE);
	kt_etcd_member *ms = (kt_etcd_member *)&c;
	size_t n = 5;
	CHECK_EQ_U(kt_etcd_member_list(&c, 0, &ms, &n, NULL, &err), KT_EUSAGE);
	CHECK(ms == NULL && n == 0);
}

int main(void)
{
	RUN(test_auth_request_encoding);
	RUN(test_auth_response_decoding);
	RUN(test_range_request_encoding);
	RUN(test_prefix_end);
	RUN(test_decode_range);
	RUN(test_range_truncated);
	RUN(test_range_wrong_wire_type);
	RUN(test_range_over_limit);
	RUN(test_decode_member_list);
	RUN(test_member_list_malformed);
	RUN(test_member_list_limits);
	RUN(test_range_bad_requests);
	return unit_done();
}
