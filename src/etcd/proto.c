/*
 * proto.c - the few protobuf messages kontinuity speaks with etcd (pure,
 * fuzzed).
 *
 *   ResponseHeader        { uint64 cluster_id = 1; uint64 member_id = 2;
 *                           int64 revision = 3; uint64 raft_term = 4; }
 *   SnapshotResponse      { ResponseHeader header = 1; uint64 remaining_bytes = 2;
 *                           bytes blob = 3; string version = 4; }
 *   StatusResponse        { ResponseHeader header = 1; string version = 2; ... }
 *   AuthenticateRequest   { string name = 1; string password = 2; }
 *   AuthenticateResponse  { ResponseHeader header = 1; string token = 2; }
 *   RangeRequest          { bytes key = 1; bytes range_end = 2; int64 limit = 3;
 *                           int64 revision = 4; bool serializable = 7;
 *                           bool keys_only = 8; bool count_only = 9; }
 *   RangeResponse         { ResponseHeader header = 1; repeated KeyValue kvs = 2;
 *                           bool more = 3; int64 count = 4; }
 *   KeyValue              { bytes key = 1; int64 create_revision = 2;
 *                           int64 mod_revision = 3; int64 version = 4;
 *                           bytes value = 5; int64 lease = 6; }
 *   MemberListRequest     { bool linearizable = 1; }
 *   MemberListResponse    { ResponseHeader header = 1; repeated Member members = 2; }
 *   Member                { uint64 ID = 1; string name = 2;
 *                           repeated string peerURLs = 3;
 *                           repeated string clientURLs = 4; bool isLearner = 5; }
 *
 * Decoding takes hostile bytes: every varint is at most 10 bytes, every
 * length is checked against the bytes left before it is used, groups (wire
 * types 3/4) and field number 0 are refused, unknown fields are skipped, and
 * a known field with the wrong wire type is KT_EPROTO.  Decoded byte fields
 * of the small messages point into the input and nothing is allocated.
 * RangeResponse and MemberListResponse own copies; both are decoded twice:
 * a first pass validates everything and counts, so that limits are checked
 * and the exact sizes known before a byte is allocated, and a second pass
 * over the same (now known good) bytes fills the allocation.
 */
#include <stdlib.h>
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

/* The readers below set their outputs first, so that callers never see an
 * indeterminate value even on a failure path the compiler cannot follow. */
static kt_code pb_varint(pb_reader *r, uint64_t *out, kt_error *err)
{
	uint64_t v = 0;
	*out = 0;
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
	*data = NULL;
	*len = 0;
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
	*field = 0;
	*wt = 0;
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

/* ------------------------------------------------------------------ */
/* Encoders for the requests of KV.Range and Cluster.MemberList */

static kt_code put_bytes(kt_buf *out, uint32_t field, const uint8_t *d, size_t len,
                         kt_error *err)
{
	kt_code rc;
	if (len == 0)
		return KT_OK; /* proto3: empty bytes are not encoded */
	if ((rc = put_varint(out, (uint64_t)field << 3 | WT_LEN, err)) ||
	    (rc = put_varint(out, len, err)))
		return rc;
	return kt_buf_add(out, d, len, err);
}

static kt_code put_uint(kt_buf *out, uint32_t field, uint64_t v, kt_error *err)
{
	kt_code rc;
	if (v == 0)
		return KT_OK; /* proto3: zero is the default and not encoded */
	if ((rc = put_varint(out, (uint64_t)field << 3 | WT_VARINT, err)))
		return rc;
	return put_varint(out, v, err);
}

kt_code kt_etcd_encode_range_request(kt_buf *out, const kt_etcd_range_req *req, kt_error *err)
{
	kt_code rc;
	if ((rc = put_bytes(out, 1, req->key, req->key ? req->key_len : 0, err)) ||
	    (rc = put_bytes(out, 2, req->range_end, req->range_end ? req->range_end_len : 0, err)) ||
	    (rc = put_uint(out, 3, (uint64_t)req->limit, err)) ||
	    (rc = put_uint(out, 4, (uint64_t)req->revision, err)) ||
	    (rc = put_uint(out, 7, req->serializable != 0, err)) ||
	    (rc = put_uint(out, 8, req->keys_only != 0, err)))
		return rc;
	return put_uint(out, 9, req->count_only != 0, err);
}

kt_code kt_etcd_encode_member_list_request(kt_buf *out, int linearizable, kt_error *err)
{
	return put_uint(out, 1, linearizable != 0, err);
}

kt_code kt_etcd_prefix_end(kt_buf *out, const uint8_t *prefix, size_t n, kt_error *err)
{
	while (n > 0 && prefix[n - 1] == 0xff)
		n--;
	if (n == 0)
		return kt_buf_add(out, "", 1, err); /* one zero byte: no upper bound */
	size_t start = out->len;
	kt_code rc = kt_buf_add(out, prefix, n, err);
	if (rc)
		return rc;
	out->data[start + n - 1] = (char)(prefix[n - 1] + 1);
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* RangeResponse */

/* One KeyValue, its byte fields still pointing into the message. */
typedef struct kv_view {
	const uint8_t *key, *value;
	size_t key_len, value_len;
	int64_t create_revision, mod_revision, version, lease;
} kv_view;

static kt_code decode_kv(const uint8_t *msg, size_t n, kv_view *kv, kt_error *err)
{
	pb_reader r = { msg, msg + n, "KeyValue" };
	static const char *const names[] = { "", "key", "create_revision", "mod_revision",
	                                     "version", "value", "lease" };
	kt_code rc;

	memset(kv, 0, sizeof(*kv));
	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		uint64_t v;
		if ((rc = pb_tag(&r, &field, &wt, err)))
			return rc;
		switch (field) {
		case 1:
		case 5:
			if ((rc = pb_expect(&r, wt, WT_LEN, names[field], err)) ||
			    (rc = pb_bytes(&r, field == 1 ? &kv->key : &kv->value,
			                   field == 1 ? &kv->key_len : &kv->value_len, err)))
				return rc;
			break;
		case 2:
		case 3:
		case 4:
		case 6:
			if ((rc = pb_expect(&r, wt, WT_VARINT, names[field], err)) ||
			    (rc = pb_varint(&r, &v, err)))
				return rc;
			if (field == 2)
				kv->create_revision = (int64_t)v;
			else if (field == 3)
				kv->mod_revision = (int64_t)v;
			else if (field == 4)
				kv->version = (int64_t)v;
			else
				kv->lease = (int64_t)v;
			break;
		default:
			if ((rc = pb_skip(&r, wt, err)))
				return rc;
		}
	}
	return KT_OK;
}

/*
 * One pass over a RangeResponse.  With arena NULL: validate, count the keys
 * into out->n_kvs and the bytes their copies need into *arena_len.  With
 * arena set (out->kvs holding out->n_kvs slots): copy the keys into the
 * slots and their bytes into arena.
 */
static kt_code range_pass(const uint8_t *msg, size_t n, kt_etcd_range_resp *out,
                          uint8_t *arena, size_t *arena_len, kt_error *err)
{
	pb_reader r = { msg, msg + n, "RangeResponse" };
	size_t n_kvs = 0, used = 0;
	kt_code rc;

	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		const uint8_t *d;
		size_t len;
		uint64_t v;
		kv_view kv;
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
			if ((rc = pb_expect(&r, wt, WT_LEN, "kvs", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)) ||
			    (rc = decode_kv(d, len, &kv, err)))
				return rc;
			if (n_kvs == KT_ETCD_RANGE_MAX_KVS)
				return kt_error_set(err, KT_ELIMIT,
				                    "RangeResponse from etcd holds more than %u keys (ask "
				                    "for fewer with a limit and page on)",
				                    KT_ETCD_RANGE_MAX_KVS);
			if (arena) {
				kt_etcd_kv *o = &out->kvs[n_kvs];
				uint8_t *k = arena + used;
				uint8_t *val = k + kv.key_len + 1;
				if (kv.key_len)
					memcpy(k, kv.key, kv.key_len);
				k[kv.key_len] = 0;
				if (kv.value_len)
					memcpy(val, kv.value, kv.value_len);
				val[kv.value_len] = 0;
				o->key = k;
				o->key_len = kv.key_len;
				o->value = val;
				o->value_len = kv.value_len;
				o->create_revision = kv.create_revision;
				o->mod_revision = kv.mod_revision;
				o->version = kv.version;
				o->lease = kv.lease;
			}
			/* Cannot overflow: both lengths lie inside msg. */
			used += kv.key_len + 1 + kv.value_len + 1;
			n_kvs++;
			break;
		case 3:
		case 4:
			if ((rc = pb_expect(&r, wt, WT_VARINT, field == 3 ? "more" : "count", err)) ||
			    (rc = pb_varint(&r, &v, err)))
				return rc;
			if (field == 3)
				out->more = v != 0;
			else
				out->count = (int64_t)v;
			break;
		default:
			if ((rc = pb_skip(&r, wt, err)))
				return rc;
		}
	}
	out->n_kvs = n_kvs;
	*arena_len = used;
	return KT_OK;
}

void kt_etcd_range_resp_release(kt_etcd_range_resp *r)
{
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

kt_code kt_etcd_decode_range(const uint8_t *msg, size_t n, kt_etcd_range_resp *out,
                             kt_error *err)
{
	size_t arena_len = 0;
	kt_code rc;

	_Static_assert(sizeof(kt_etcd_kv) <= 64, "KT_ETCD_RANGE_MAX_KVS assumes 64-byte slots");
	memset(out, 0, sizeof(*out));
	if ((rc = range_pass(msg, n, out, NULL, &arena_len, err)))
		goto fail;
	if (out->n_kvs == 0)
		return KT_OK;
	/* One allocation: the slots, then every key and value with its NUL. */
	size_t slots = out->n_kvs * sizeof(kt_etcd_kv);
	out->kvs = kt_xmalloc(slots + arena_len);
	if ((rc = range_pass(msg, n, out, (uint8_t *)out->kvs + slots, &arena_len, err)))
		goto fail; /* cannot happen: the same bytes passed once */
	return KT_OK;
fail:
	kt_etcd_range_resp_release(out);
	return rc;
}

/* ------------------------------------------------------------------ */
/* MemberListResponse */

/* A name or URL: bounded, no NUL and no control bytes (it ends up in C
 * strings, messages and terminals). */
static kt_code check_member_string(const pb_reader *r, const uint8_t *d, size_t len,
                                   const char *field, kt_error *err)
{
	if (len > KT_ETCD_MAX_MEMBER_STRING)
		return kt_error_set(err, KT_ELIMIT, "MemberListResponse from etcd has a member %s "
		                    "of %zu bytes (at most %u accepted)", field, len,
		                    KT_ETCD_MAX_MEMBER_STRING);
	for (size_t i = 0; i < len; i++)
		if (d[i] < 0x20 || d[i] == 0x7f)
			return kt_error_set(err, KT_EPROTO, "malformed %s from etcd: member %s has a "
			                    "control byte 0x%02x at offset %zu", r->msg_name, field,
			                    d[i], i);
	return KT_OK;
}

static char *dup_string(const uint8_t *d, size_t len)
{
	char *s = kt_xmalloc(len + 1);
	if (len)
		memcpy(s, d, len);
	s[len] = '\0';
	return s;
}

/*
 * One pass over a Member.  With m->peer_urls and m->client_urls NULL:
 * validate and count the URLs into m->n_peer_urls / m->n_client_urls.
 * With fill set (the arrays hold exactly those counts): copy the strings.
 */
static kt_code member_pass(const uint8_t *msg, size_t n, kt_etcd_member *m, int fill,
                           kt_error *err)
{
	pb_reader r = { msg, msg + n, "Member" };
	size_t n_peer = 0, n_client = 0;
	kt_code rc;

	while (r.p < r.end) {
		uint32_t field;
		unsigned wt;
		const uint8_t *d;
		size_t len;
		uint64_t v;
		if ((rc = pb_tag(&r, &field, &wt, err)))
			return rc;
		switch (field) {
		case 1:
		case 5:
			if ((rc = pb_expect(&r, wt, WT_VARINT, field == 1 ? "ID" : "isLearner", err)) ||
			    (rc = pb_varint(&r, &v, err)))
				return rc;
			if (field == 1)
				m->id = v;
			else
				m->is_learner = v != 0;
			break;
		case 2:
			if ((rc = pb_expect(&r, wt, WT_LEN, "name", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)) ||
			    (rc = check_member_string(&r, d, len, "name", err)))
				return rc;
			if (fill) {
				free(m->name);
				m->name = dup_string(d, len);
			}
			break;
		case 3:
		case 4: {
			const char *what = field == 3 ? "peerURLs" : "clientURLs";
			size_t *count = field == 3 ? &n_peer : &n_client;
			if ((rc = pb_expect(&r, wt, WT_LEN, what, err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)) ||
			    (rc = check_member_string(&r, d, len, field == 3 ? "peer URL" : "client URL",
			                              err)))
				return rc;
			if (*count == KT_ETCD_MAX_MEMBER_URLS)
				return kt_error_set(err, KT_ELIMIT, "MemberListResponse from etcd has a "
				                    "member with more than %u %s", KT_ETCD_MAX_MEMBER_URLS,
				                    what);
			if (fill)
				(field == 3 ? m->peer_urls : m->client_urls)[*count] = dup_string(d, len);
			(*count)++;
			break;
		}
		default:
			if ((rc = pb_skip(&r, wt, err)))
				return rc;
		}
	}
	m->n_peer_urls = n_peer;
	m->n_client_urls = n_client;
	return KT_OK;
}

static void member_release(kt_etcd_member *m)
{
	free(m->name);
	for (size_t i = 0; m->peer_urls && i < m->n_peer_urls; i++)
		free(m->peer_urls[i]);
	for (size_t i = 0; m->client_urls && i < m->n_client_urls; i++)
		free(m->client_urls[i]);
	free(m->peer_urls);
	free(m->client_urls);
	memset(m, 0, sizeof(*m));
}

void kt_etcd_member_list_free(kt_etcd_member *members, size_t n)
{
	if (!members)
		return;
	for (size_t i = 0; i < n; i++)
		member_release(&members[i]);
	free(members);
}

/* Fill one member from bytes that member_pass already accepted. */
static void member_fill(const uint8_t *d, size_t len, kt_etcd_member *m)
{
	kt_etcd_member counted;
	memset(&counted, 0, sizeof(counted));
	(void)member_pass(d, len, &counted, 0, NULL);
	memset(m, 0, sizeof(*m));
	if (counted.n_peer_urls)
		m->peer_urls = kt_xcalloc(counted.n_peer_urls, sizeof(char *));
	if (counted.n_client_urls)
		m->client_urls = kt_xcalloc(counted.n_client_urls, sizeof(char *));
	(void)member_pass(d, len, m, 1, NULL);
	if (!m->name)
		m->name = dup_string(NULL, 0);
}

/* One pass over a MemberListResponse; with members NULL validate and count
 * into *n_members, else fill members[0..*n_members). */
static kt_code member_list_pass(const uint8_t *msg, size_t n, kt_etcd_member *members,
                                size_t *n_members, kt_etcd_header *hdr, int *has_header,
                                kt_error *err)
{
	pb_reader r = { msg, msg + n, "MemberListResponse" };
	size_t count = 0;
	kt_code rc;

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
			    (rc = decode_header(d, len, hdr, err)))
				return rc;
			*has_header = 1;
		} else if (field == 2) {
			kt_etcd_member scratch;
			memset(&scratch, 0, sizeof(scratch));
			if ((rc = pb_expect(&r, wt, WT_LEN, "members", err)) ||
			    (rc = pb_bytes(&r, &d, &len, err)))
				return rc;
			if (members) {
				member_fill(d, len, &members[count]);
			} else {
				if ((rc = member_pass(d, len, &scratch, 0, err)))
					return rc;
				if (count == KT_ETCD_MAX_MEMBERS)
					return kt_error_set(err, KT_ELIMIT, "MemberListResponse from etcd "
					                    "lists more than %u members",
					                    KT_ETCD_MAX_MEMBERS);
			}
			count++;
		} else if ((rc = pb_skip(&r, wt, err))) {
			return rc;
		}
	}
	*n_members = count;
	return KT_OK;
}

kt_code kt_etcd_decode_member_list(const uint8_t *msg, size_t n, kt_etcd_member **out,
                                   size_t *n_out, kt_etcd_header *hdr_out, kt_error *err)
{
	kt_etcd_header hdr;
	int has_header = 0;
	size_t count = 0;
	kt_code rc;

	*out = NULL;
	*n_out = 0;
	memset(&hdr, 0, sizeof(hdr));
	if (hdr_out)
		memset(hdr_out, 0, sizeof(*hdr_out));
	if ((rc = member_list_pass(msg, n, NULL, &count, &hdr, &has_header, err)))
		return rc;
	if (!has_header)
		return kt_error_set(err, KT_EPROTO, "malformed MemberListResponse from etcd: no "
		                    "response header");
	kt_etcd_member *members = count ? kt_xcalloc(count, sizeof(*members)) : NULL;
	if (members)
		(void)member_list_pass(msg, n, members, &count, &hdr, &has_header, NULL);
	*out = members;
	*n_out = count;
	if (hdr_out)
		*hdr_out = hdr;
	return KT_OK;
}
