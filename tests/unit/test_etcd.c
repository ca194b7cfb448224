/*
 * test_etcd.c - the gRPC frame decoder, the etcd protobuf messages
 * (Snapshot, Auth, Range and MemberList), the gRPC status mapping, and src/http (text helpers; headers, trailers, body
 * and error propagation against a one-shot HTTP/1.1 server on loopback).
 * The etcd calls themselves are checked against a real etcd by the
 * integration tests.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "etcd/etcd.h"
#include "http/http.h"
#include "unit.h"

/* ---- helpers: build protobuf and gRPC bytes by hand ---- */

typedef struct bytes {
	uint8_t d[8192];
	size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void put_byte(bytes *b, uint8_t v)
{
	b->d[b->n++] = v;
}

static void put_varint(bytes *b, uint64_t v)
{
	do {
		uint8_t c = (uint8_t)(v & 0x7f);
		v >>= 7;
		put_byte(b, (uint8_t)(c | (v ? 0x80 : 0)));
	} while (v);
}

static void put_tag(bytes *b, uint32_t field, unsigned wt)
{
	put_varint(b, (uint64_t)field << 3 | wt);
}

static void put_len(bytes *b, uint32_t field, const void *p, size_t n)
{
	put_tag(b, field, 2);
	put_varint(b, n);
	put(b, p, n);
}

static void frame(bytes *out, const bytes *msg)
{
	uint8_t prefix[5];
	kt_grpc_frame_prefix(prefix, (uint32_t)msg->n);
	put(out, prefix, 5);
	put(out, msg->d, msg->n);
}

/* A SnapshotResponse with header, remaining_bytes, blob and version. */
static void snapshot_msg(bytes *m, int64_t revision, uint64_t remaining, const char *blob,
                         const char *version)
{
	bytes h = { .n = 0 };
	put_tag(&h, 1, 0);
	put_varint(&h, 0x1122334455667788ull);
	put_tag(&h, 2, 0);
	put_varint(&h, 42);
	put_tag(&h, 3, 0);
	put_varint(&h, (uint64_t)revision);
	put_tag(&h, 4, 0);
	put_varint(&h, 7);
	m->n = 0;
	put_len(m, 1, h.d, h.n);
	put_tag(m, 2, 0);
	put_varint(m, remaining);
	put_len(m, 3, blob, strlen(blob));
	if (version)
		put_len(m, 4, version, strlen(version));
}

/* Collects messages the reader delivers. */
typedef struct sink {
	int n_msgs;
	size_t lens[8];
	uint8_t data[8][256];
	kt_code fail_with;
} sink;

static kt_code collect(void *ctx, const uint8_t *msg, size_t n, kt_error *err)
{
	sink *s = ctx;
	if (s->fail_with)
		return kt_error_set(err, s->fail_with, "sink refused message %d", s->n_msgs + 1);
	if (s->n_msgs < 8 && n <= sizeof(s->data[0])) {
		memcpy(s->data[s->n_msgs], msg, n);
		s->lens[s->n_msgs] = n;
	}
	s->n_msgs++;
	return KT_OK;
}

/* Two frames: "hello" and a SnapshotResponse. */
static void two_frames(bytes *stream, bytes *m2)
{
	bytes m1 = { .n = 0 };
	put(&m1, "hello", 5);
	snapshot_msg(m2, 99, 10, "blob-bytes", "3.6.0");
	stream->n = 0;
	frame(stream, &m1);
	frame(stream, m2);
}

static void check_two(const sink *s, const bytes *m2)
{
	CHECK_EQ_U(s->n_msgs, 2);
	CHECK_EQ_U(s->lens[0], 5);
	CHECK(!memcmp(s->data[0], "hello", 5));
	CHECK_EQ_U(s->lens[1], m2->n);
	CHECK(!memcmp(s->data[1], m2->d, m2->n));
}

/* ---- frame decoder ---- */

static void test_frames_in_one_slice(void)
{
	bytes stream, m2;
	two_frames(&stream, &m2);
	kt_grpc_reader r;
	kt_error err;
	sink s = { 0 };
	kt_grpc_reader_init(&r);
	CHECK(kt_grpc_reader_idle(&r));
	CHECK_EQ_U(kt_grpc_reader_feed(&r, stream.d, stream.n, collect, &s, &err), KT_OK);
	check_two(&s, &m2);
	CHECK(kt_grpc_reader_idle(&r));
	CHECK_EQ_U(r.n_messages, 2);
	CHECK_EQ_U(r.n_bytes, stream.n);
	/* Whole messages in one slice are not copied. */
	CHECK_EQ_U(r.msg.cap, 0);
	kt_grpc_reader_release(&r);
}

static void test_frames_split_everywhere(void)
{
	bytes stream, m2;
	two_frames(&stream, &m2);
	/* Two slices, cut at every position. */
	for (size_t cut = 0; cut <= stream.n; cut++) {
		kt_grpc_reader r;
		kt_error err;
		sink s = { 0 };
		kt_grpc_reader_init(&r);
		CHECK_EQ_U(kt_grpc_reader_feed(&r, stream.d, cut, collect, &s, &err), KT_OK);
		CHECK_EQ_U(kt_grpc_reader_feed(&r, stream.d + cut, stream.n - cut, collect, &s, &err),
		           KT_OK);
		check_two(&s, &m2);
		CHECK(kt_grpc_reader_idle(&r));
		kt_grpc_reader_release(&r);
	}
	/* Three slices, cut at every pair of positions. */
	for (size_t a = 0; a <= stream.n; a++) {
		for (size_t b = a; b <= stream.n; b++) {
			kt_grpc_reader r;
			kt_error err;
			sink s = { 0 };
			kt_grpc_reader_init(&r);
			CHECK_EQ_U(kt_grpc_reader_feed(&r, stream.d, a, collect, &s, &err), KT_OK);
			CHECK_EQ_U(kt_grpc_reader_feed(&r, stream.d + a, b - a, collect, &s, &err), KT_OK);
			CHECK_EQ_U(kt_grpc_reader_feed(&r, stream.d + b, stream.n - b, collect, &s, &err),
			           KT_OK);
			if (s.n_msgs != 2) {
				CHECK_EQ_U(s.n_msgs, 2);
				kt_grpc_reader_release(&r);
				return;
			}
			kt_grpc_reader_release(&r);
		}
	}
	/* One byte at a time; idle only on frame boundaries. */
	kt_grpc_reader r;
	kt_error err;
	sink s = { 0 };
	kt_grpc_reader_init(&r);
	for (size_t i = 0; i < stream.n; i++) {
		CHECK_EQ_U(kt_grpc_reader_feed(&r, stream.d + i, 1, collect, &s, &err), KT_OK);
		int boundary = i + 1 == 10 || i + 1 == stream.n;
		CHECK_EQ_U(kt_grpc_reader_idle(&r), boundary);
	}
	check_two(&s, &m2);
	kt_grpc_reader_release(&r);
}

static void test_empty_message(void)
{
	uint8_t stream[10] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	kt_grpc_reader r;
	kt_error err;
	sink s = { 0 };
	kt_grpc_reader_init(&r);
	CHECK_EQ_U(kt_grpc_reader_feed(&r, stream, sizeof(stream), collect, &s, &err), KT_OK);
	CHECK_EQ_U(s.n_msgs, 2);
	CHECK_EQ_U(s.lens[0], 0);
	CHECK(kt_grpc_reader_idle(&r));
	/* A partial prefix is not idle: a stream ending here ended early. */
	CHECK_EQ_U(kt_grpc_reader_feed(&r, stream, 3, collect, &s, &err), KT_OK);
	CHECK(!kt_grpc_reader_idle(&r));
	kt_grpc_reader_release(&r);
}

static void test_compressed_rejected(void)
{
	uint8_t stream[] = { 1, 0, 0, 0, 2, 'h', 'i' };
	kt_grpc_reader r;
	kt_error err;
	sink s = { 0 };
	kt_grpc_reader_init(&r);
	CHECK_EQ_U(kt_grpc_reader_feed(&r, stream, sizeof(stream), collect, &s, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "compressed");
	CHECK_EQ_U(s.n_msgs, 0);
	kt_grpc_reader_release(&r);

	stream[0] = 0x48; /* 'H' of "HTTP/1.1 ..." */
	kt_grpc_reader_init(&r);
	CHECK_EQ_U(kt_grpc_reader_feed(&r, stream, sizeof(stream), collect, &s, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "flag byte 0x48");
	kt_grpc_reader_release(&r);
}

static void test_oversize_rejected_without_allocating(void)
{
	uint8_t stream[] = { 0, 0xff, 0xff, 0xff, 0xff, 'x' };
	kt_grpc_reader r;
	kt_error err;
	sink s = { 0 };
	kt_grpc_reader_init(&r);
	CHECK_EQ_U(kt_grpc_reader_feed(&r, stream, sizeof(stream), collect, &s, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "4294967295 bytes");
	CHECK_EQ_U(r.msg.cap, 0);
	kt_grpc_reader_release(&r);

	/* One byte over the limit, fed byte by byte. */
	uint8_t over[5];
	kt_grpc_frame_prefix(over, KT_GRPC_MAX_MESSAGE + 1);
	kt_grpc_reader_init(&r);
	kt_code rc = KT_OK;
	for (size_t i = 0; i < 5 && !rc; i++)
		rc = kt_grpc_reader_feed(&r, over + i, 1, collect, &s, &err);
	CHECK_EQ_U(rc, KT_EPROTO);
	CHECK_EQ_U(r.msg.cap, 0);
	kt_grpc_reader_release(&r);

	/* Exactly the limit is accepted (and buffered when split). */
	uint8_t at[5];
	kt_grpc_frame_prefix(at, KT_GRPC_MAX_MESSAGE);
	uint8_t *big = calloc(1, KT_GRPC_MAX_MESSAGE);
	kt_grpc_reader_init(&r);
	s.n_msgs = 0;
	CHECK_EQ_U(kt_grpc_reader_feed(&r, at, 5, collect, &s, &err), KT_OK);
	CHECK_EQ_U(kt_grpc_reader_feed(&r, big, 1000, collect, &s, &err), KT_OK);
	CHECK_EQ_U(kt_grpc_reader_feed(&r, big, KT_GRPC_MAX_MESSAGE - 1000, collect, &s, &err),
	           KT_OK);
	CHECK_EQ_U(s.n_msgs, 1);
	CHECK(r.msg.cap <= (size_t)KT_GRPC_MAX_MESSAGE * 2);
	free(big);
	kt_grpc_reader_release(&r);
}

static void test_callback_error_kept(void)
{
	bytes stream, m2;
	two_frames(&stream, &m2);
	kt_grpc_reader r;
	kt_error err;
	sink s = { .fail_with = KT_ENOSPC };
	kt_grpc_reader_init(&r);
	CHECK_EQ_U(kt_grpc_reader_feed(&r, stream.d, stream.n, collect, &s, &err), KT_ENOSPC);
	CHECK_STR(err.msg, "sink refused message 1");
	kt_grpc_reader_release(&r);
}

/* ---- SnapshotResponse ---- */

static void test_decode_snapshot(void)
{
	bytes m;
	kt_etcd_snapshot_msg out;
	kt_error err;
	snapshot_msg(&m, 12345, 65536, "bolt-data", "3.6.0");
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_OK);
	CHECK(out.has_header);
	CHECK_EQ_U(out.header.cluster_id, 0x1122334455667788ull);
	CHECK_EQ_U(out.header.member_id, 42);
	CHECK_EQ_U(out.header.revision, 12345);
	CHECK_EQ_U(out.header.raft_term, 7);
	CHECK_EQ_U(out.remaining_bytes, 65536);
	CHECK_EQ_U(out.blob_len, 9);
	CHECK(!memcmp(out.blob, "bolt-data", 9));
	CHECK_STR(out.version, "3.6.0");

	/* An empty message is a valid, empty response. */
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, 0, &out, &err), KT_OK);
	CHECK(!out.has_header);
	CHECK_EQ_U(out.blob_len, 0);
	CHECK_STR(out.version, "");

	/* Negative revision travels as a 10-byte varint. */
	snapshot_msg(&m, -1, 0, "x", NULL);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_OK);
	CHECK(out.header.revision == -1);
}

static void test_truncated_varint(void)
{
	bytes m = { .n = 0 };
	put_tag(&m, 2, 0);
	put_byte(&m, 0x80);
	put_byte(&m, 0x80); /* continuation bit set, then the message ends */
	kt_etcd_snapshot_msg out;
	kt_error err;
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "truncated varint");

	/* A tag cut in half. */
	uint8_t tag[] = { 0x80 };
	CHECK_EQ_U(kt_etcd_decode_snapshot(tag, 1, &out, &err), KT_EPROTO);

	/* 11 bytes of continuation: longer than any uint64. */
	m.n = 0;
	put_tag(&m, 2, 0);
	for (int i = 0; i < 10; i++)
		put_byte(&m, 0xff);
	put_byte(&m, 0x01);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);

	/* Tenth byte may only carry the top bit. */
	m.n = 0;
	put_tag(&m, 2, 0);
	for (int i = 0; i < 9; i++)
		put_byte(&m, 0xff);
	put_byte(&m, 0x02);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	m.d[m.n - 1] = 0x01;
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_OK);
	CHECK_EQ_U(out.remaining_bytes, UINT64_MAX);
}

static void test_field_length_past_end(void)
{
	bytes m = { .n = 0 };
	put_tag(&m, 3, 2);
	put_varint(&m, 100);
	put(&m, "short", 5);
	kt_etcd_snapshot_msg out;
	kt_error err;
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "past the end");

	/* A huge length must not wrap the pointer arithmetic. */
	m.n = 0;
	put_tag(&m, 3, 2);
	put_varint(&m, UINT64_MAX - 2);
	put(&m, "x", 1);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);

	/* Header length past the end of the header's own bytes: the inner
	 * message is cut by its outer length. */
	bytes h = { .n = 0 };
	put_tag(&h, 3, 0);
	put_byte(&h, 0x80); /* truncated inside the header */
	m.n = 0;
	put_len(&m, 1, h.d, h.n);
	put_len(&m, 3, "x", 1);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "ResponseHeader");

	/* Fixed-size unknown field cut short. */
	m.n = 0;
	put_tag(&m, 9, 1);
	put(&m, "1234", 4);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
}

static void test_wrong_wire_type(void)
{
	kt_etcd_snapshot_msg out;
	kt_error err;
	bytes m = { .n = 0 };
	put_tag(&m, 3, 0); /* blob as a varint */
	put_varint(&m, 5);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "blob");

	m.n = 0;
	put_len(&m, 2, "xx", 2); /* remaining_bytes as bytes */
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "remaining_bytes");

	m.n = 0;
	put_tag(&m, 1, 5); /* header as fixed32 */
	put(&m, "abcd", 4);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);

	/* Groups (wire types 3 and 4) and field number 0 are refused. */
	m.n = 0;
	put_tag(&m, 7, 3);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	m.n = 0;
	put_tag(&m, 0, 0);
	put_varint(&m, 1);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "field number");
}

static void test_unknown_fields_skipped(void)
{
	bytes h = { .n = 0 };
	put_tag(&h, 3, 0);
	put_varint(&h, 77);
	put_tag(&h, 15, 2); /* unknown inside the header */
	put_varint(&h, 3);
	put(&h, "abc", 3);

	bytes m = { .n = 0 };
	put_tag(&m, 5, 0); /* unknown varint */
	put_varint(&m, 300);
	put_tag(&m, 6, 1); /* unknown fixed64 */
	put(&m, "12345678", 8);
	put_len(&m, 1, h.d, h.n);
	put_tag(&m, 1000, 5); /* unknown fixed32, large field number */
	put(&m, "1234", 4);
	put_len(&m, 3, "data", 4);
	put_len(&m, 99, "ignored", 7); /* unknown bytes */
	kt_etcd_snapshot_msg out;
	kt_error err;
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_OK);
	CHECK_EQ_U(out.header.revision, 77);
	CHECK_EQ_U(out.blob_len, 4);
	CHECK(!memcmp(out.blob, "data", 4));
}

static void test_version_string_limits(void)
{
	kt_etcd_snapshot_msg out;
	kt_error err;
	char v[40];
	memset(v, '9', sizeof(v));
	bytes m = { .n = 0 };
	put_len(&m, 4, v, 31); /* fits with its NUL */
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_OK);
	CHECK_EQ_U(strlen(out.version), 31);

	m.n = 0;
	put_len(&m, 4, v, 32);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "version string of 32 bytes");

	m.n = 0;
	put_len(&m, 4, "3.6\n0", 5);
	CHECK_EQ_U(kt_etcd_decode_snapshot(m.d, m.n, &out, &err), KT_EPROTO);
}

/* ---- Auth messages ---- */

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

static void test_status_mapping(void)
{
	kt_error err;
	const char *ep = "https://127.0.0.1:2379";
	kt_error_clear(&err);
	CHECK_EQ_U(kt_etcd_map_status(0, NULL, "snapshot", ep, &err), KT_OK);
	CHECK_EQ_U(err.code, KT_OK);

	CHECK_EQ_U(kt_etcd_map_status(3, "etcdserver: user name is empty", "snapshot", ep, &err),
	           KT_EAUTH);
	CHECK_CONTAINS(err.msg, "snapshot at https://127.0.0.1:2379 failed: etcdserver: user name");
	CHECK_CONTAINS(err.msg, "--user");
	CHECK_EQ_U(err.status, 3);

	CHECK_EQ_U(kt_etcd_map_status(3, "etcdserver: authentication failed, invalid user ID or "
	                              "password", "authentication", ep, &err), KT_EAUTH);
	CHECK_EQ_U(kt_etcd_map_status(16, "etcdserver: invalid auth token", "snapshot", ep, &err),
	           KT_EAUTH);
	CHECK_EQ_U(kt_etcd_map_status(16, NULL, "snapshot", ep, &err), KT_EAUTH);
	CHECK_CONTAINS(err.msg, "UNAUTHENTICATED");
	CHECK_EQ_U(kt_etcd_map_status(7, "etcdserver: permission denied", "snapshot", ep, &err),
	           KT_EAUTH);
	CHECK_CONTAINS(err.msg, "root role");
	CHECK_EQ_U(kt_etcd_map_status(14, "etcdserver: no leader", "snapshot", ep, &err),
	           KT_ETRANSIENT);
	CHECK_EQ_U(kt_etcd_map_status(4, NULL, "snapshot", ep, &err), KT_ETRANSIENT);
	CHECK_EQ_U(kt_etcd_map_status(12, "unknown service", "snapshot", ep, &err), KT_EREMOTE);
	CHECK_CONTAINS(err.msg, "grpc-status 12 UNIMPLEMENTED: unknown service");
	CHECK_EQ_U(kt_etcd_map_status(99, NULL, "snapshot", ep, &err), KT_EREMOTE);
}

static void test_http_text_helpers(void)
{
	char out[128];
	CHECK_STR(kt_http_unescape("etcdserver%3A%20user%20name%20is%20empty", out, sizeof(out)),
	          "etcdserver: user name is empty");
	CHECK_STR(kt_http_unescape("100%", out, sizeof(out)), "100%");
	CHECK_STR(kt_http_unescape("a%zzb", out, sizeof(out)), "a%zzb");
	CHECK_STR(kt_http_unescape("line%0Abreak%00", out, sizeof(out)), "line?break?");
	CHECK_STR(kt_http_unescape("%C3%A9t%C3%A9", out, sizeof(out)), "\xc3\xa9t\xc3\xa9");
	CHECK_STR(kt_http_unescape("abcdef", out, 4), "abc");

	CHECK_STR(kt_http_origin("https://127.0.0.1:2379/etcdserverpb.Maintenance/Snapshot", out,
	                         sizeof(out)), "https://127.0.0.1:2379");
	CHECK_STR(kt_http_origin("http://user:secret@host:80/x?y", out, sizeof(out)),
	          "http://host:80");
	CHECK_STR(kt_http_origin("http://h?q=1", out, sizeof(out)), "http://h");
	CHECK_STR(kt_http_origin("host:1/p", out, sizeof(out)), "host:1");
}

static void test_bad_endpoints(void)
{
	kt_error err;
	kt_etcd_conn c = { .endpoint = "127.0.0.1:2379" };
	CHECK_EQ_U(kt_etcd_snapshot(&c, NULL, NULL, NULL, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "must start with http:// or https://");
	c.endpoint = "http://root:pw@127.0.0.1:2379";
	CHECK_EQ_U(kt_etcd_snapshot(&c, NULL, NULL, NULL, &err), KT_EUSAGE);
	CHECK(!strstr(err.msg, "pw"));
	c.endpoint = "http://127.0.0.1:2379/v3";
	CHECK_EQ_U(kt_etcd_snapshot(&c, NULL, NULL, NULL, &err), KT_EUSAGE);
	c.endpoint = "http://127.0.0.1:1";
	c.user = "no-colon";
	CHECK_EQ_U(kt_etcd_snapshot(&c, NULL, NULL, NULL, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "NAME:PASSWORD");
}

/* ---- src/http against a one-shot HTTP/1.1 server on loopback ---- */

typedef struct mini_server {
	int fd;
	int port;
	const char *reply;      /* sent after the request has been read */
	char request[4096];     /* what the client sent (headers + body) */
	size_t request_len;
	pthread_t thread;
} mini_server;

static void *mini_serve(void *arg)
{
	mini_server *m = arg;
	int c = accept(m->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	/* Read until the headers end and Content-Length bytes of body follow. */
	for (;;) {
		ssize_t k = read(c, m->request + m->request_len,
		                 sizeof(m->request) - 1 - m->request_len);
		if (k <= 0)
			break;
		m->request_len += (size_t)k;
		m->request[m->request_len] = '\0';
		char *end = strstr(m->request, "\r\n\r\n");
		if (!end)
			continue;
		char *cl = strcasestr(m->request, "content-length:");
		size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
		if (m->request_len >= (size_t)(end + 4 - m->request) + want)
			break;
	}
	if (m->reply) {
		size_t n = strlen(m->reply);
		if (write(c, m->reply, n) != (ssize_t)n)
			m->reply = NULL;
	}
	close(c);
	return NULL;
}

static int mini_start(mini_server *m, const char *reply)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	memset(m, 0, sizeof(*m));
	m->reply = reply;
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

typedef struct seen {
	char status[8];
	char content_type[64];
	char trailer[64];
	int trailer_flag_on_ct;
	char body[256];
	size_t body_len;
	kt_code fail_body;
} seen;

static kt_code seen_header(void *ctx, const char *name, const char *value, int is_trailer,
                           kt_error *err)
{
	seen *s = ctx;
	(void)err;
	if (!strcmp(name, ":status"))
		snprintf(s->status, sizeof(s->status), "%s", value);
	else if (!strcmp(name, "content-type")) {
		snprintf(s->content_type, sizeof(s->content_type), "%s", value);
		s->trailer_flag_on_ct = is_trailer;
	} else if (!strcmp(name, "grpc-status") && is_trailer)
		snprintf(s->trailer, sizeof(s->trailer), "%s", value);
	return KT_OK;
}

static kt_code seen_body(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	seen *s = ctx;
	if (s->fail_body)
		return kt_error_set(err, s->fail_body, "cannot write snap.db.part: disk full");
	if (s->body_len + n < sizeof(s->body)) {
		memcpy(s->body + s->body_len, data, n);
		s->body_len += n;
	}
	return KT_OK;
}

static const char chunked_reply[] =
	"HTTP/1.1 200 OK\r\nContent-Type:  text/plain  \r\nTransfer-Encoding: chunked\r\n\r\n"
	"5\r\nhello\r\n6\r\n world\r\n0\r\nGrpc-Status: 0\r\n\r\n";

static void test_http_headers_body_trailers(void)
{
	mini_server m;
	char url[64];
	kt_http *h = NULL;
	kt_error err;
	kt_http_resp resp;
	seen s;
	static const char *const hdrs[] = { "X-Test: yes", NULL };

	CHECK(mini_start(&m, chunked_reply) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/p?q=1", m.port);
	kt_http_opts o = { .version = KT_HTTP_1_1, .timeout_ms = 5000, .direct = 1 };
	CHECK_EQ_U(kt_http_new(&h, &o, &err), KT_OK);
	memset(&s, 0, sizeof(s));
	kt_http_req req = { .method = "POST", .url = url, .headers = hdrs, .body = "abc",
	                    .body_len = 3, .on_header = seen_header, .on_body = seen_body,
	                    .ctx = &s };
	CHECK_EQ_U(kt_http_request(h, &req, &resp, &err), KT_OK);
	mini_stop(&m);
	CHECK_EQ_U(resp.status, 200);
	CHECK_EQ_U(resp.http_version, 11);
	CHECK_EQ_U(resp.body_bytes, 11);
	CHECK_STR(s.status, "200");
	CHECK_STR(s.content_type, "text/plain");
	CHECK(!s.trailer_flag_on_ct);
	CHECK_STR(s.trailer, "0");
	CHECK_STR(s.body, "hello world");
	CHECK_CONTAINS(m.request, "POST /p?q=1 HTTP/1.1");
	CHECK_CONTAINS(m.request, "X-Test: yes");
	CHECK(!strstr(m.request, "Expect:"));
	CHECK(m.request_len >= 3 && !memcmp(m.request + m.request_len - 3, "abc", 3));

	/* A body callback's error is the request's error, message included. */
	CHECK(mini_start(&m, chunked_reply) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", m.port);
	memset(&s, 0, sizeof(s));
	s.fail_body = KT_ENOSPC;
	kt_http_req req2 = { .url = url, .on_header = seen_header, .on_body = seen_body,
	                     .ctx = &s };
	CHECK_EQ_U(kt_http_request(h, &req2, &resp, &err), KT_ENOSPC);
	CHECK_STR(err.msg, "cannot write snap.db.part: disk full");
	mini_stop(&m);
	kt_http_free(h);
}

static void test_http_failures(void)
{
	mini_server m;
	char url[64];
	kt_http *h = NULL;
	kt_error err;
	volatile sig_atomic_t cancel = 1;

	/* Nothing listens (a port bound but never listened on): transient,
	 * names the endpoint but not the path. */
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	      !getsockname(fd, (struct sockaddr *)&a, &alen));
	int port = ntohs(a.sin_port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
	kt_http_opts o = { .version = KT_HTTP_1_1, .timeout_ms = 5000, .direct = 1 };
	CHECK_EQ_U(kt_http_new(&h, &o, &err), KT_OK);
	kt_http_req req = { .url = url };
	CHECK_EQ_U(kt_http_request(h, &req, NULL, &err), KT_ETRANSIENT);
	char origin[64];
	snprintf(origin, sizeof(origin), "cannot connect to http://127.0.0.1:%d:", port);
	CHECK_CONTAINS(err.msg, origin);
	CHECK(!strstr(err.msg, "/x"));
	kt_http_free(h);
	close(fd);

	/* Cancel flag already set: nothing is sent. */
	o.cancel = &cancel;
	CHECK_EQ_U(kt_http_new(&h, &o, &err), KT_OK);
	CHECK_EQ_U(kt_http_request(h, &req, NULL, &err), KT_ECANCELED);
	kt_http_free(h);

	/* etcd client against an HTTP/1.1 server: a protocol error, not a hang. */
	CHECK(mini_start(&m, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", m.port);
	kt_etcd_conn c = { .endpoint = url, .timeout_ms = 5000 };
	kt_code rc = kt_etcd_snapshot(&c, NULL, NULL, NULL, &err);
	CHECK(rc == KT_EPROTO || rc == KT_ETRANSIENT);
	CHECK_CONTAINS(err.msg, url);
	mini_stop(&m);
}

int main(void)
{
	RUN(test_frames_in_one_slice);
	RUN(test_frames_split_everywhere);
	RUN(test_empty_message);
	RUN(test_compressed_rejected);
	RUN(test_oversize_rejected_without_allocating);
	RUN(test_callback_error_kept);
	RUN(test_decode_snapshot);
	RUN(test_truncated_varint);
	RUN(test_field_length_past_end);
	RUN(test_wrong_wire_type);
	RUN(test_unknown_fields_skipped);
	RUN(test_version_string_limits);
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
	RUN(test_status_mapping);
	RUN(test_http_text_helpers);
	RUN(test_bad_endpoints);
	RUN(test_http_headers_body_trailers);
	RUN(test_http_failures);
	return unit_done();
}
