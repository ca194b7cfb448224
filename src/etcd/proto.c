/*
 * proto.c - the few protobuf messages kontinuity speaks with etcd (pure,
 * fuzzed).
 *
 *   ResponseHeader        { uint64 cluster_id = 1; uint64 member_id = 2;
 *                           int64 revision = 3; uint64 raft_term = 4; }
 *   SnapshotResponse      { ResponseHeader header = 1; uint64 remaining_bytes = 2;
 *                           bytes blob = 3; string version = 4; }
 *   AuthenticateRequest   { string name = 1; string password = 2; }
 *   AuthenticateResponse  { ResponseHeader header = 1; string token = 2; }
 *
 * Decoding takes hostile bytes: every varint is at most 10 bytes, every
 * length is checked against the bytes left before it is used, groups (wire
 * types 3/4) and field number 0 are refused, unknown fields are skipped, and
 * a known field with the wrong wire type is KT_EPROTO.  Decoded byte fields
 * point into the input; nothing is allocated.
 */
#include <string.h>

#include "etcd.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct pb_reader {
	const uint8_t *p;
	const uint8_t *end;
	const char *msg_name; /* for error messages */
} pb_reader;

static kt_code pb_fail(const pb_reader *r, kt_error *err, const char *what)
{
	return kt_error_set(err, KT_EPROTO, "malformed %s from etcd: %s", r->msg_name, what);
}

static kt_code pb_varint(pb_reader *r, uint64_t *out, kt_error *err)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 10; i++) {
		if (r->p == r->end)
			return pb_fail(r, err, "truncated varint");
		uint8_t b = *r->p++;
		if (i == 9 && b > 1)
			return pb_fail(r, err, "varint longer than 64 bits");
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*out = v;
			return KT_OK;
		}
	}
	return pb_fail(r, err, "varint longer than 10 bytes");
}

/* Read a length-delimited payload. */
static kt_code pb_bytes(pb_reader *r, const uint8_t **data, size_t *len, kt_error *err)
{
	uint64_t n;
	kt_code rc = pb_varint(r, &n, err);
	if (rc)
		return rc;
	if (n > (uint64_t)(r->end - r->p))
		return pb_fail(r, err, "field length runs past the end of the message");
	*data = r->p;
	*len = (size_t)n;
	r->p += n;
	return KT_OK;
}

/* Read a tag; field 0 and groups are refused. */
static kt_code pb_tag(pb_reader *r, uint32_t *field, unsigned *wt, kt_error *err)
{
	uint64_t tag;
	kt_code rc = pb_varint(r, &tag, err);
	if (rc)
		return rc;
	*wt = (unsigned)(tag & 7);
	tag >>= 3;
	if (tag == 0 || tag > 0x1fffffff)
		return pb_fail(r, err, "invalid field number");
	*field = (uint32_t)tag;
	if (*wt != WT_VARINT && *wt != WT_I64 && *wt != WT_LEN && *wt != WT_I32)
		return pb_fail(r, err, "unsupported wire type");
	return KT_OK;
}

static kt_code pb_skip(pb_reader *r, unsigned wt, kt_error *err)
{
	uint64_t v;
	const uint8_t *d;
	size_t n;
	switch (wt) {
	case WT_VARINT:
		return pb_varint(r, &v, err);
	case WT_LEN:
		return pb_bytes(r, &d, &n, err);
	case WT_I64:
	case WT_I32: {
		size_t k = wt == WT_I64 ? 8 : 4;
		if ((size_t)(r->end - r->p) < k)
			return pb_fail(r, err, "truncated fixed-size field");
		r->p += k;
		return KT_OK;
	}
	default:
		return pb_fail(r, err, "unsupported wire type");
	}
}

static kt_code pb_expect(const pb_reader *r, unsigned wt, unsigned want, const char *field,
                         kt_error *err)
{
	if (wt == want)
		return KT_OK;
	return kt_error_set(err, KT_EPROTO, "malformed %s from etcd: field %s has wire type %u, "
	                    "expected %u", r->msg_name, field, wt, want);
}

static kt_code decode_header(const uint8_t *msg, size_t n, kt_etcd_header *h, kt_error *err)
{
	pb_reader r = { msg, msg + n, "ResponseHeader" };
	static const char *const names[] = { "", "cluster_id", "member_id", "revision", "raft_term" };
	kt_code rc;

	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		if ((rc = pb_tag(&r, &field, &wt, err)))
			return rc;
		if (field < 1 || field > 4) {
			if ((rc = pb_skip(&r, wt, err)))
				return rc;
			continue;
		}
		if ((rc = pb_expect(&r, wt, WT_VARINT, names[field], err)) ||
		    (rc = pb_varint(&r, &v, err)))
			return rc;
		switch (field) {
		case 1: h->cluster_id = v; break;
		case 2: h->member_id = v; break;
		case 3: h->revision = (int64_t)v; break;
		case 4: h->raft_term = v; break;
		}
	}
	return KT_OK;
}

kt_code kt_etcd_decode_snapshot(const uint8_t *msg, size_t n,
                                kt_etcd_snapshot_msg *out, kt_error *err)
{
	pb_reader r = { msg, msg + n, "SnapshotResponse" };
	kt_code rc;

	memset(out, 0, sizeof(*out));
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		const uint8_t *d;
		size_t len;
		if ((rc = pb_tag(&r, &field, &wt, err)))
			return rc;
		switch (field) {
		case 1:
			if ((rc = pb_expect(&r, wt, WT_LEN, "header", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)) ||
			    (rc = decode_header(d, len, &out->header, err)))
				return rc;
			out->has_header = 1;
			break;
		case 2:
			if ((rc = pb_expect(&r, wt, WT_VARINT, "remaining_bytes", err)) ||
			    (rc = pb_varint(&r, &out->remaining_bytes, err)))
				return rc;
			break;
		case 3:
			if ((rc = pb_expect(&r, wt, WT_LEN, "blob", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)))
				return rc;
			out->blob = d;
			out->blob_len = len;
			break;
		case 4:
			if ((rc = pb_expect(&r, wt, WT_LEN, "version", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)))
				return rc;
			if (len >= sizeof(out->version))
				return kt_error_set(err, KT_EPROTO,
				                    "malformed SnapshotResponse from etcd: version string of "
				                    "%zu bytes (at most %zu expected)", len,
				                    sizeof(out->version) - 1);
			for (size_t i = 0; i < len; i++)
				if (d[i] < 0x20 || d[i] > 0x7e)
					return pb_fail(&r, err, "version string is not printable text");
			memcpy(out->version, d, len);
			out->version[len] = '\0';
			break;
		default:
			if ((rc = pb_skip(&r, wt, err)))
				return rc;
		}
	}
	return KT_OK;
}

kt_code kt_etcd_decode_auth_response(const uint8_t *msg, size_t n,
                                     kt_etcd_auth_msg *out, kt_error *err)
{
	pb_reader r = { msg, msg + n, "AuthenticateResponse" };
	kt_code rc;

	memset(out, 0, sizeof(*out));
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		const uint8_t *d;
		size_t len;
		if ((rc = pb_tag(&r, &field, &wt, err)))
			return rc;
		switch (field) {
		case 1:
			if ((rc = pb_expect(&r, wt, WT_LEN, "header", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)) ||
			    (rc = decode_header(d, len, &out->header, err)))
				return rc;
			out->has_header = 1;
			break;
		case 2:
			if ((rc = pb_expect(&r, wt, WT_LEN, "token", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)))
				return rc;
			if (len > KT_ETCD_MAX_TOKEN)
				return kt_error_set(err, KT_EPROTO,
				                    "malformed AuthenticateResponse from etcd: token of %zu "
				                    "bytes (at most %u accepted)", len, KT_ETCD_MAX_TOKEN);
			out->token = d;
			out->token_len = len;
			break;
		default:
			if ((rc = pb_skip(&r, wt, err)))
				return rc;
		}
	}
	return KT_OK;
}

static kt_code put_varint(kt_buf *out, uint64_t v, kt_error *err)
{
	uint8_t b[10];
	size_t n = 0;
	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			b[n] |= 0x80;
		n++;
	} while (v);
	return kt_buf_add(out, b, n, err);
}

static kt_code put_string(kt_buf *out, uint32_t field, const char *s, kt_error *err)
{
	size_t len = strlen(s);
	kt_code rc;
	if (len == 0)
		return KT_OK; /* proto3: empty strings are not encoded */
	if ((rc = put_varint(out, (uint64_t)field << 3 | WT_LEN, err)) ||
	    (rc = put_varint(out, len, err)))
		return rc;
	return kt_buf_add(out, s, len, err);
}

kt_code kt_etcd_encode_auth_request(kt_buf *out, const char *name, const char *password,
                                    kt_error *err)
{
	kt_code rc = put_string(out, 1, name ? name : "", err);
	if (rc)
		return rc;
	return put_string(out, 2, password ? password : "", err);
}

kt_code kt_etcd_decode_status(const uint8_t *msg, size_t n, kt_etcd_status_msg *out,
                              kt_error *err)
{
	pb_reader r = { msg, msg + n, "StatusResponse" };
	kt_code rc;

	memset(out, 0, sizeof(*out));
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		const uint8_t *d;
		size_t len;
		if ((rc = pb_tag(&r, &field, &wt, err)))
			return rc;
		if (field == 1) {
			if ((rc = pb_expect(&r, wt, WT_LEN, "header", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)) ||
			    (rc = decode_header(d, len, &out->header, err)))
				return rc;
			out->has_header = 1;
		} else if (field == 2) {
			if ((rc = pb_expect(&r, wt, WT_LEN, "version", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)))
				return rc;
			if (len >= sizeof(out->version))
				return pb_fail(&r, err, "version string too long");
			for (size_t i = 0; i < len; i++)
				if (d[i] < 0x20 || d[i] > 0x7e)
					return pb_fail(&r, err, "version string is not printable text");
			memcpy(out->version, d, len);
			out->version[len] = '\0';
		} else if ((rc = pb_skip(&r, wt, err))) {
			return rc;
		}
	}
	return KT_OK;
}
