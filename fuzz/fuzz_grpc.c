/*
 * fuzz_grpc.c - libFuzzer target for the gRPC frame reader and the etcd
 * protobuf decoders (src/etcd/grpc.c, src/etcd/proto.c).
 *
 * Input: byte 0 picks how the rest is sliced before it is fed to
 * kt_grpc_reader_feed (whole, byte by byte, fixed chunks, pseudo-random
 * chunks); every message is decoded as a SnapshotResponse, a
 * StatusResponse, an AuthenticateResponse, a RangeResponse and a
 * MemberListResponse, and is taken as a key prefix for kt_etcd_prefix_end.
 * The owning decoders must stay within their documented limits and hand
 * back copies (never pointers into the message), and every decoded result
 * is released again, so ASan's leak check covers them.  The same bytes are
 * also fed in one slice, and both runs must agree on the result code, the
 * number of messages and their contents: slicing must never change what the
 * reader sees.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct run {
	uint64_t n_messages;
	uint64_t digest; /* FNV-1a over every message's length and bytes */
} run;

static void mix(run *r, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		r->digest ^= p[i];
		r->digest *= 0x100000001b3ull;
	}
}

/* p lies inside msg[0..n). */
static int inside(const uint8_t *p, const uint8_t *msg, size_t n)
{
	return p >= msg && p < msg + n;
}

static void check_range(run *acc, const uint8_t *msg, size_t n)
{
	kt_etcd_range_resp r;
	kt_error err;
	kt_code rc = kt_etcd_decode_range(msg, n, &r, &err);
	if (rc != KT_OK) {
		if (rc != KT_EPROTO && rc != KT_ELIMIT)
			abort();
		if (r.kvs || r.n_kvs)
			abort(); /* a failure owns nothing */
		return;
	}
	if (r.n_kvs > KT_ETCD_RANGE_MAX_KVS || (r.n_kvs == 0) != (r.kvs == NULL))
		abort();
	size_t total = 0;
	for (size_t i = 0; i < r.n_kvs; i++) {
		const kt_etcd_kv *kv = &r.kvs[i];
		if (!kv->key || !kv->value || kv->key[kv->key_len] || kv->value[kv->value_len])
			abort();
		if (inside(kv->key, msg, n) || inside(kv->value, msg, n))
			abort(); /* copies, not views */
		total += kv->key_len + kv->value_len;
		/* Every copied byte is read (ASan checks the bounds) and goes into
		 * the digest the sliced and the whole run must agree on. */
		mix(acc, kv->key, kv->key_len);
		mix(acc, kv->value, kv->value_len);
	}
	if (total > n)
		abort();
	kt_etcd_range_resp_release(&r);
	if (r.kvs || r.n_kvs)
		abort();
}

static void check_string(const char *s)
{
	if (!s || strlen(s) > KT_ETCD_MAX_MEMBER_STRING)
		abort();
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

static void check_member_list(const uint8_t *msg, size_t n)
{
	kt_etcd_member *ms = (kt_etcd_member *)&ms; /* must be overwritten */
	size_t count = 12345;
	kt_etcd_header hdr;
	kt_error err;
	kt_code rc = kt_etcd_decode_member_list(msg, n, &ms, &count, &hdr, &err);
	if (rc != KT_OK) {
		if ((rc != KT_EPROTO && rc != KT_ELIMIT) || ms || count)
			abort();
		return;
	}
	if (count > KT_ETCD_MAX_MEMBERS || (count == 0) != (ms == NULL))
		abort();
	for (size_t i = 0; i < count; i++) {
		const kt_etcd_member *m = &ms[i];
		check_string(m->name);
		if (m->n_peer_urls > KT_ETCD_MAX_MEMBER_URLS ||
		    m->n_client_urls > KT_ETCD_MAX_MEMBER_URLS ||
		    (m->n_peer_urls == 0) != (m->peer_urls == NULL) ||
		    (m->n_client_urls == 0) != (m->client_urls == NULL))
			abort();
		for (size_t k = 0; k < m->n_peer_urls; k++)
			check_string(m->peer_urls[k]);
		for (size_t k = 0; k < m->n_client_urls; k++)
			check_string(m->client_urls[k]);
	}
	kt_etcd_member_list_free(ms, count);
}

/* The message as a key prefix: the range end must bound exactly the keys
 * that start with it. */
static void check_prefix_end(const uint8_t *p, size_t n)
{
	kt_buf end;
	kt_error err;
	kt_buf_init(&end, KT_GRPC_MAX_MESSAGE + 1);
	if (kt_etcd_prefix_end(&end, p, n, &err) != KT_OK)
		abort();
	const uint8_t *e = (const uint8_t *)end.data;
	size_t k = n;
	while (k > 0 && p[k - 1] == 0xff)
		k--;
	if (k == 0) {
		if (end.len != 1 || e[0] != 0)
			abort();
	} else if (end.len != k || memcmp(e, p, k - 1) || e[k - 1] != p[k - 1] + 1) {
		abort();
	}
	kt_buf_release(&end);
}

static kt_code on_msg(void *ctx, const uint8_t *msg, size_t n, kt_error *err)
{
	run *r = ctx;
	kt_etcd_snapshot_msg s;
	kt_etcd_auth_msg a;
	uint64_t len = n;

	r->n_messages++;
	mix(r, (const uint8_t *)&len, sizeof(len));
	mix(r, msg, n);
	if (kt_etcd_decode_snapshot(msg, n, &s, err) == KT_OK) {
		/* Borrowed fields must lie inside the message. */
		if (s.blob_len && (s.blob < msg || s.blob + s.blob_len > msg + n))
			abort();
		if (strlen(s.version) >= sizeof(s.version))
			abort();
	}
	kt_etcd_status_msg st;
	if (kt_etcd_decode_status(msg, n, &st, err) == KT_OK && strlen(st.version) >= sizeof(st.version))
		abort();
	if (kt_etcd_decode_auth_response(msg, n, &a, err) == KT_OK) {
		if (a.token_len && (a.token < msg || a.token + a.token_len > msg + n))
			abort();
		if (a.token_len > KT_ETCD_MAX_TOKEN)
			abort();
	}
	check_range(r, msg, n);
	check_member_list(msg, n);
	check_prefix_end(msg, n);
	/* Keep reading: the reader is the main subject. */
	return KT_OK;
}

static kt_code feed_sliced(const uint8_t *p, size_t n, uint8_t mode, run *r)
{
	kt_grpc_reader rd;
	kt_error err;
	kt_code rc = KT_OK;
	uint32_t lcg = mode * 2654435761u + 1;

	kt_grpc_reader_init(&rd);
	while (n > 0 && rc == KT_OK) {
		size_t k;
		switch (mode & 3) {
		case 0: k = n; break;
		case 1: k = 1; break;
		case 2: k = (size_t)(mode >> 2) + 1; break;
		default:
			lcg = lcg * 1103515245u + 12345u;
			k = (lcg >> 16) % 64 + 1;
			break;
		}
		if (k > n)
			k = n;
		rc = kt_grpc_reader_feed(&rd, p, k, on_msg, r, &err);
		p += k;
		n -= k;
	}
	if (rc == KT_OK && rd.msg.len > KT_GRPC_MAX_MESSAGE)
		abort();
	kt_grpc_reader_release(&rd);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	run whole = { 0, 0xcbf29ce484222325ull };
	run split = { 0, 0xcbf29ce484222325ull };

	kt_code rc_whole = feed_sliced(data + 1, size - 1, 0, &whole);
	kt_code rc_split = feed_sliced(data + 1, size - 1, mode, &split);
	if (rc_whole != rc_split || whole.n_messages != split.n_messages ||
	    whole.digest != split.digest)
		abort();

	/* The same bytes as header-borne text: grpc-message percent-decoding and
	 * the status mapping that quotes it.  Output must stay printable. */
	char text[1024], out[256];
	size_t n = size - 1 < sizeof(text) - 1 ? size - 1 : sizeof(text) - 1;
	memcpy(text, data + 1, n);
	text[n] = '\0';
	kt_http_unescape(text, out, (size_t)(mode % sizeof(out)) + 1);
	for (const char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			abort();
	kt_error err;
	kt_etcd_map_status(mode, out, "snapshot", "http://127.0.0.1:2379", &err);
	return 0;
}
