/*
 * test_etcd.c - the gRPC frame decoder, the Snapshot message, the gRPC
 * status mapping, and src/http (text helpers; headers, trailers, body and
 * error propagation against a one-shot HTTP/1.1 server on loopback).
 * Auth, Range and MemberList messages: test_etcd_kv.c.
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

#include "pb_build.h"

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
	RUN(test_status_mapping);
	RUN(test_http_text_helpers);
	RUN(test_bad_endpoints);
	RUN(test_http_headers_body_trailers);
	RUN(test_http_failures);
	return unit_done();
}
