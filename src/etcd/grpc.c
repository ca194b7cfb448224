/*
 * grpc.c - the gRPC length-prefixed message decoder (pure, fuzzed).
 *
 * A gRPC body is a sequence of frames: 1 byte compressed flag, 4 bytes
 * big-endian length, then the message.  The reader accepts the body in
 * slices of any size.  Invariants:
 *   1. hdr_len < 5 while a prefix is being collected; once it reaches 5 the
 *      length has been checked against KT_GRPC_MAX_MESSAGE, so the message
 *      buffer never grows past the limit (and an oversize length is refused
 *      before a byte of it is allocated).
 *   2. A message lying whole inside one slice is handed to the callback in
 *      place (no copy); only messages split across slices are buffered.
 *   3. After an error the reader is unusable (release it).
 */
#include <string.h>

#include "etcd.h"

void kt_grpc_reader_init(kt_grpc_reader *r)
{
	memset(r, 0, sizeof(*r));
	kt_buf_init(&r->msg, KT_GRPC_MAX_MESSAGE);
}

void kt_grpc_reader_release(kt_grpc_reader *r)
{
	kt_buf_release(&r->msg);
	r->hdr_len = 0;
	r->msg_len = 0;
}

int kt_grpc_reader_idle(const kt_grpc_reader *r)
{
	return r->hdr_len == 0 && r->msg.len == 0;
}

void kt_grpc_frame_prefix(uint8_t out[5], uint32_t n)
{
	out[0] = 0;
	out[1] = (uint8_t)(n >> 24);
	out[2] = (uint8_t)(n >> 16);
	out[3] = (uint8_t)(n >> 8);
	out[4] = (uint8_t)n;
}

/* The prefix is complete: validate it. */
static kt_code check_prefix(kt_grpc_reader *r, kt_error *err)
{
	if (r->hdr[0] == 1)
		return kt_error_set(err, KT_EPROTO,
		                    "gRPC message %llu is compressed, which we never asked for",
		                    (unsigned long long)r->n_messages + 1);
	if (r->hdr[0] != 0)
		return kt_error_set(err, KT_EPROTO,
		                    "gRPC message %llu has an invalid flag byte 0x%02x (not a gRPC stream?)",
		                    (unsigned long long)r->n_messages + 1, r->hdr[0]);
	r->msg_len = (uint32_t)r->hdr[1] << 24 | (uint32_t)r->hdr[2] << 16 |
	             (uint32_t)r->hdr[3] << 8 | (uint32_t)r->hdr[4];
	if (r->msg_len > KT_GRPC_MAX_MESSAGE)
		return kt_error_set(err, KT_EPROTO,
		                    "gRPC message %llu is %lu bytes, over the limit of %u",
		                    (unsigned long long)r->n_messages + 1, (unsigned long)r->msg_len,
		                    KT_GRPC_MAX_MESSAGE);
	return KT_OK;
}

static kt_code deliver(kt_grpc_reader *r, const uint8_t *msg, size_t n,
                       kt_grpc_msg_fn fn, void *ctx, kt_error *err)
{
	r->n_messages++;
	r->hdr_len = 0;
	r->msg_len = 0;
	kt_code rc = fn ? fn(ctx, msg, n, err) : KT_OK;
	kt_buf_reset(&r->msg);
	return rc;
}

kt_code kt_grpc_reader_feed(kt_grpc_reader *r, const uint8_t *data, size_t n,
                            kt_grpc_msg_fn fn, void *ctx, kt_error *err)
{
	static const uint8_t empty[1];
	kt_code rc;

	r->n_bytes += n;
	while (n > 0) {
		if (r->hdr_len < 5) {
			size_t k = 5 - r->hdr_len;
			if (k > n)
				k = n;
			memcpy(r->hdr + r->hdr_len, data, k);
			r->hdr_len += k;
			data += k;
			n -= k;
			if (r->hdr_len < 5)
				return KT_OK;
			if ((rc = check_prefix(r, err)))
				return rc;
			if (r->msg_len == 0 && (rc = deliver(r, empty, 0, fn, ctx, err)))
				return rc;
			continue;
		}
		size_t need = r->msg_len - r->msg.len;
		if (r->msg.len == 0 && n >= need) {
			/* Whole message in this slice: no copy. */
			const uint8_t *msg = data;
			data += need;
			n -= need;
			if ((rc = deliver(r, msg, need, fn, ctx, err)))
				return rc;
			continue;
		}
		size_t k = need < n ? need : n;
		if ((rc = kt_buf_add(&r->msg, data, k, err)))
			return rc;
		data += k;
		n -= k;
		if (r->msg.len == r->msg_len &&
		    (rc = deliver(r, (const uint8_t *)r->msg.data, r->msg.len, fn, ctx, err)))
			return rc;
	}
	return KT_OK;
}
