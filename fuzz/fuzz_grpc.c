/*
 * fuzz_grpc.c - libFuzzer target for the gRPC frame reader and the etcd
 * protobuf decoders (src/etcd/grpc.c, src/etcd/proto.c).
 *
 * Input: byte 0 picks how the rest is sliced before it is fed to
 * kt_grpc_reader_feed (whole, byte by byte, fixed chunks, pseudo-random
 * chunks); every message is decoded as a SnapshotResponse and as an
 * AuthenticateResponse.  The same bytes are also fed in one slice, and both
 * runs must agree on the result code, the number of messages and their
 * contents: slicing must never change what the reader sees.
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
