/*
 * etcd.h - native etcd v3 client: gRPC over HTTP/2 through libcurl.
 *
 * Owns: the gRPC length-prefixed frame decoder, the few protobuf messages we
 * speak (SnapshotResponse, StatusResponse, AuthenticateRequest/Response,
 * RangeRequest/Response, MemberListRequest/Response, ResponseHeader), and
 * the calls Maintenance.Snapshot, Maintenance.Status, Auth.Authenticate,
 * KV.Range and Cluster.MemberList.
 *
 * Transport: http:// endpoints use cleartext HTTP/2 with prior knowledge
 * (h2c); https:// endpoints use TLS (ALPN h2) with verification always on,
 * an optional CA bundle and an optional client certificate/key.
 * Every decoder here takes hostile bytes: messages are bounded by
 * KT_GRPC_MAX_MESSAGE and a malformed frame or field is KT_EPROTO; a
 * well-formed answer beyond a documented count or size limit (more keys or
 * members than we hold) is KT_ELIMIT.
 */
#ifndef KT_ETCD_H
#define KT_ETCD_H

#include <signal.h>
#include "../core/core.h"

/* Largest gRPC message we accept (etcd sends 32 KiB blobs; 4 MiB is gRPC's
 * default limit). */
#define KT_GRPC_MAX_MESSAGE (4u * 1024u * 1024u)

/* ---------------- gRPC frame decoder (pure, fuzzed) ---------------- */

/* Called once per complete message.  The bytes are borrowed. */
typedef kt_code (*kt_grpc_msg_fn)(void *ctx, const uint8_t *msg, size_t n, kt_error *err);

typedef struct kt_grpc_reader {
	uint8_t hdr[5];
	size_t hdr_len;     /* bytes of the 5-byte prefix seen so far */
	uint32_t msg_len;   /* length of the current message */
	kt_buf msg;         /* current message body, bounded */
	uint64_t n_messages;
	uint64_t n_bytes;   /* body bytes fed so far */
} kt_grpc_reader;

void kt_grpc_reader_init(kt_grpc_reader *r);
void kt_grpc_reader_release(kt_grpc_reader *r);
/* Feed arbitrary slices of the response body; calls fn for each message.
 * Compressed messages (flag 1) and lengths over the limit are KT_EPROTO. */
kt_code kt_grpc_reader_feed(kt_grpc_reader *r, const uint8_t *data, size_t n,
                            kt_grpc_msg_fn fn, void *ctx, kt_error *err);
/* True when no partial frame is pending (a clean end of stream). */
int kt_grpc_reader_idle(const kt_grpc_reader *r);
/* Write the 5-byte prefix of an uncompressed message of n bytes. */
void kt_grpc_frame_prefix(uint8_t out[5], uint32_t n);

/* ---------------- protobuf messages (pure, fuzzed) ---------------- */

typedef struct kt_etcd_header {
	uint64_t cluster_id;
	uint64_t member_id;
	int64_t revision;
	uint64_t raft_term;
} kt_etcd_header;

typedef struct kt_etcd_snapshot_msg {
	kt_etcd_header header;
	int has_header;
	uint64_t remaining_bytes;
	const uint8_t *blob;  /* borrowed from the message */
	size_t blob_len;
	char version[32];     /* etcd 3.6+; empty otherwise */
} kt_etcd_snapshot_msg;

/* Decode one SnapshotResponse.  Unknown fields are skipped; a known field
 * with the wrong wire type, a truncated varint/length, a group, field number
 * 0 or a version of 32 bytes or more is KT_EPROTO.  *out is zeroed first and
 * is only meaningful on KT_OK; blob points into msg. */
kt_code kt_etcd_decode_snapshot(const uint8_t *msg, size_t n,
                                kt_etcd_snapshot_msg *out, kt_error *err);

typedef struct kt_etcd_status_msg {
	kt_etcd_header header;
	int has_header;
	char version[32];     /* server version, e.g. "3.6.16" */
} kt_etcd_status_msg;

/* Decode one StatusResponse {header=1, version=2, ...}; other fields are
 * skipped.  Same rules as kt_etcd_decode_snapshot. */
kt_code kt_etcd_decode_status(const uint8_t *msg, size_t n, kt_etcd_status_msg *out,
                              kt_error *err);

/* Longest auth token we accept (simple tokens are ~20 bytes, JWTs < 1 KiB). */
#define KT_ETCD_MAX_TOKEN 4096

typedef struct kt_etcd_auth_msg {
	kt_etcd_header header;
	int has_header;
	const uint8_t *token; /* borrowed from the message; not NUL-terminated */
	size_t token_len;
} kt_etcd_auth_msg;

/* Decode one AuthenticateResponse {header=1, token=2}.  Same rules as
 * kt_etcd_decode_snapshot; a token over KT_ETCD_MAX_TOKEN is KT_EPROTO. */
kt_code kt_etcd_decode_auth_response(const uint8_t *msg, size_t n,
                                     kt_etcd_auth_msg *out, kt_error *err);

/* Append an AuthenticateRequest {name=1, password=2} (protobuf only, no gRPC
 * prefix) to out.  Fails only when out's limit is reached. */
kt_code kt_etcd_encode_auth_request(kt_buf *out, const char *name, const char *password,
                                    kt_error *err);

/* ---------------- KV.Range and Cluster.MemberList ---------------- */

/*
 * Which keys a range covers (etcd's rules, as clientv3 uses them):
 *   one key        key = K, range_end = NULL (range_end_len 0)
 *   [K, E)         key = K, range_end = E
 *   every key >= K key = K, range_end = "\0" (one zero byte, range_end_len 1)
 *   all keys       key = "\0" (len 1), range_end = "\0" (len 1)
 *   prefix P       key = P, range_end = kt_etcd_prefix_end(P)
 * key is never empty: etcd refuses an empty key ("key is not provided").
 */
typedef struct kt_etcd_range_req {
	const uint8_t *key;       /* borrowed; key_len >= 1 */
	size_t key_len;
	const uint8_t *range_end; /* borrowed; NULL or len 0 = just key */
	size_t range_end_len;
	int64_t limit;            /* most keys to return; 0 = no limit */
	int64_t revision;         /* read at this revision; 0 = the newest */
	int serializable;         /* answer from the local member, no quorum read */
	int keys_only;            /* values are left out (value_len 0) */
	int count_only;           /* only count is filled, kvs is empty */
} kt_etcd_range_req;

/* One key as etcd's mvccpb.KeyValue. */
typedef struct kt_etcd_kv {
	const uint8_t *key;       /* both point into the response's single */
	const uint8_t *value;     /* allocation; each is followed by a NUL */
	size_t key_len;
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
} kt_etcd_kv;

/* Most keys one decoded RangeResponse may hold: their kt_etcd_kv array then
 * takes at most KT_GRPC_MAX_MESSAGE bytes, on top of the copies of the keys
 * and values (which a message of at most KT_GRPC_MAX_MESSAGE bytes bounds).
 * A decoded response so never holds more than about 2 x KT_GRPC_MAX_MESSAGE. */
#define KT_ETCD_RANGE_MAX_KVS (KT_GRPC_MAX_MESSAGE / 64u)

typedef struct kt_etcd_range_resp {
	kt_etcd_header header;
	int has_header;
	kt_etcd_kv *kvs;          /* owned; NULL when n_kvs is 0 */
	size_t n_kvs;
	int more;                 /* etcd holds more keys in the range than it sent
	                             (limit was reached) */
	int64_t count;            /* keys in the range, whatever the limit */
} kt_etcd_range_resp;

/* Free everything a decoded response owns (keys and values included) and
 * zero it.  Safe on a zeroed or already released struct. */
void kt_etcd_range_resp_release(kt_etcd_range_resp *r);

/*
 * Decode one RangeResponse into *out, copying every key and value (the
 * message may be freed afterwards).  Same wire rules as
 * kt_etcd_decode_snapshot, also inside each KeyValue.  More than
 * KT_ETCD_RANGE_MAX_KVS keys is KT_ELIMIT, checked before anything is
 * allocated.  *out is zeroed first; on failure it owns nothing.
 */
kt_code kt_etcd_decode_range(const uint8_t *msg, size_t n, kt_etcd_range_resp *out,
                             kt_error *err);

/* Append a RangeRequest (protobuf only) to out.  Fails only when out's
 * limit is reached (KT_ELIMIT); req is not checked here. */
kt_code kt_etcd_encode_range_request(kt_buf *out, const kt_etcd_range_req *req, kt_error *err);

/*
 * Append to out the range_end that, with key = prefix, covers exactly the
 * keys starting with prefix: prefix with trailing 0xff bytes dropped and
 * the last remaining byte incremented.  When no byte can be incremented
 * (n == 0 or all 0xff) the result is "\0" (len 1), which means "to the end
 * of the keyspace"; for n == 0 pass key = "\0" (len 1) as well.  Fails
 * only when out's limit is reached.
 */
kt_code kt_etcd_prefix_end(kt_buf *out, const uint8_t *prefix, size_t n, kt_error *err);

/* A member as etcd's etcdserverpb.Member.  Strings are NUL-terminated and
 * hold no control characters; name is never NULL ("" for a member that was
 * added but has not started yet, which also has no client URLs). */
typedef struct kt_etcd_member {
	uint64_t id;
	char *name;
	char **peer_urls;         /* NULL when n_peer_urls is 0 */
	size_t n_peer_urls;
	char **client_urls;       /* NULL when n_client_urls is 0 */
	size_t n_client_urls;
	int is_learner;
} kt_etcd_member;

/* Limits of a decoded MemberListResponse; beyond them is KT_ELIMIT. */
#define KT_ETCD_MAX_MEMBERS 64
#define KT_ETCD_MAX_MEMBER_URLS 16     /* peer URLs, and client URLs, each */
#define KT_ETCD_MAX_MEMBER_STRING 1024 /* bytes of a name or a URL */

/* Free an array of n members and everything in it.  NULL is a no-op. */
void kt_etcd_member_list_free(kt_etcd_member *members, size_t n);

/*
 * Decode one MemberListResponse {header=1, members=2}.  On KT_OK *out is a
 * new array of *n_out members (NULL when 0) that the caller frees with
 * kt_etcd_member_list_free, and *hdr_out (may be NULL) the header.  Same
 * wire rules as kt_etcd_decode_snapshot; a response without a header, a
 * string with a NUL or control byte is KT_EPROTO; more than
 * KT_ETCD_MAX_MEMBERS members, more than KT_ETCD_MAX_MEMBER_URLS URLs of a
 * kind or a string over KT_ETCD_MAX_MEMBER_STRING bytes is KT_ELIMIT.  On
 * failure *out is NULL, *n_out 0 and *hdr_out zeroed.
 */
kt_code kt_etcd_decode_member_list(const uint8_t *msg, size_t n, kt_etcd_member **out,
                                   size_t *n_out, kt_etcd_header *hdr_out, kt_error *err);

/* Append a MemberListRequest {linearizable=1} (protobuf only) to out. */
kt_code kt_etcd_encode_member_list_request(kt_buf *out, int linearizable, kt_error *err);

/*
 * Map a gRPC status from etcd to a kt_code and fill err with
 * "<what> at <endpoint> failed: <message> (<advice>)".  message is the
 * already percent-decoded grpc-message (may be NULL).  UNAUTHENTICATED,
 * PERMISSION_DENIED and etcd's auth messages (user name is empty, invalid
 * auth token, authentication failed) -> KT_EAUTH; UNAVAILABLE and
 * DEADLINE_EXCEEDED -> KT_ETRANSIENT; others -> KT_EREMOTE.  err->status is
 * the gRPC status.  Returns the code (KT_OK for status 0, err untouched).
 */
kt_code kt_etcd_map_status(long grpc_status, const char *message, const char *what,
                           const char *endpoint, kt_error *err);

/* ---------------- calls ---------------- */

typedef struct kt_etcd_conn {
	const char *endpoint;   /* "http://127.0.0.1:2379" or "https://..." */
	const char *cacert;     /* PEM CA bundle or NULL for the system store */
	const char *cert;       /* client certificate PEM or NULL */
	const char *key;        /* client key PEM or NULL */
	const char *user;       /* "name:password" for etcd auth, or NULL */
	const char *unix_socket; /* connect through this Unix socket (the endpoint's
	                            host is then only a name), or NULL */
	int64_t timeout_ms;     /* whole call; 0 = no limit */
	int64_t connect_timeout_ms; /* 0 = 10 s */
	int64_t stall_timeout_ms;   /* fail when no byte arrives for this long;
	                               0 = 60 s, negative = never */
	volatile sig_atomic_t *cancel; /* if set and non-zero: stop, KT_ECANCELED */
} kt_etcd_conn;

/* Receives snapshot bytes in order as they arrive.  remaining is the peer's
 * remaining_bytes (may be 0 before the end).  Return non-OK to stop. */
typedef kt_code (*kt_etcd_snapshot_fn)(void *ctx, const uint8_t *data, size_t n,
                                       uint64_t remaining, kt_error *err);

typedef struct kt_etcd_snapshot_info {
	uint64_t bytes;         /* all blob bytes delivered, trailer included */
	/* From the first message carrying a ResponseHeader.  etcd 3.5 and 3.6
	 * never send one in SnapshotResponse, so these stay 0 there: read the
	 * revision from the file (bbolt walk) instead. */
	int64_t revision;
	uint64_t cluster_id;
	uint64_t member_id;
	uint64_t raft_term;
	char version[32];       /* storage version reported by etcd 3.6+ */
	uint64_t n_messages;    /* SnapshotResponse messages received */
	uint8_t sha256[32];     /* SHA-256 of all bytes delivered (= the saved file) */
	int trailer_ok;         /* last 32 bytes == SHA-256 of the bytes before them */
} kt_etcd_snapshot_info;

/*
 * Stream Maintenance.Snapshot into fn.  With conn->user set ("name:password",
 * split at the first ':'), first calls Auth.Authenticate and sends the token
 * as metadata "token" (if etcd says auth is not enabled, goes on without).
 * Errors: KT_EUSAGE (bad endpoint or user string), KT_ETRANSIENT (cannot
 * connect, timeout, reset, UNAVAILABLE), KT_ETLS, KT_EAUTH (bad
 * user/password or no permission), KT_EPROTO (not gRPC, bad frames, stream
 * ended early), KT_ECORRUPT (the SHA-256 trailer does not match the bytes),
 * KT_EREMOTE (other grpc-status), KT_ECANCELED, or whatever fn returned.
 * On failure fn may already have received bytes: the caller discards them.
 * info may be NULL; it is filled as far as the stream got.  The password and
 * the token never appear in err->msg or a log line.
 */
kt_code kt_etcd_snapshot(const kt_etcd_conn *conn, kt_etcd_snapshot_fn fn, void *ctx,
                         kt_etcd_snapshot_info *info, kt_error *err);

/*
 * Maintenance.Status of the member at conn->endpoint: its cluster id,
 * member id, revision and server version (the cluster id is what etcd 3.5+
 * does not send with a snapshot).  Same connection, auth and errors as
 * kt_etcd_snapshot.
 */
kt_code kt_etcd_status(const kt_etcd_conn *conn, kt_etcd_status_msg *out, kt_error *err);

/*
 * KV.Range at conn->endpoint: the keys req selects, each with its value
 * (unless keys_only) and revisions, plus more and count.  On KT_OK out owns
 * the keys; free with kt_etcd_range_resp_release.  On failure out is zeroed
 * and owns nothing.  Same connection, auth and errors as kt_etcd_snapshot,
 * plus: KT_EUSAGE for an empty key or a negative limit or revision;
 * KT_ELIMIT when etcd's answer is over KT_GRPC_MAX_MESSAGE bytes or holds
 * more than KT_ETCD_RANGE_MAX_KVS keys (ask for fewer with limit,
 * keys_only or count_only, and page on with key = last key + "\0" while
 * more is set, at the revision of the first page).  A compacted revision
 * is KT_EREMOTE (grpc-status 11 OUT_OF_RANGE).
 */
kt_code kt_etcd_range(const kt_etcd_conn *conn, const kt_etcd_range_req *req,
                      kt_etcd_range_resp *out, kt_error *err);

/*
 * Cluster.MemberList as seen by the member at conn->endpoint.  With
 * linearizable set the member first confirms with the leader that its list
 * is current (etcd 3.5+; older servers ignore the flag and answer from
 * their local view, as they do without it).  On KT_OK *out is a new array
 * of *n_out members (caller frees with kt_etcd_member_list_free) and
 * *hdr_out, when not NULL, the response header.  On failure *out is NULL,
 * *n_out 0.  Limits as kt_etcd_decode_member_list; connection, auth and
 * errors as kt_etcd_status (at most 10 s).
 */
kt_code kt_etcd_member_list(const kt_etcd_conn *conn, int linearizable, kt_etcd_member **out,
                            size_t *n_out, kt_etcd_header *hdr_out, kt_error *err);

#endif /* KT_ETCD_H */
