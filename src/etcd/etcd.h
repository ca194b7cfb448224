/*
 * etcd.h - native etcd v3 client: gRPC over HTTP/2 through libcurl.
 *
 * Owns: the gRPC length-prefixed frame decoder, the few protobuf messages we
 * speak (SnapshotResponse, AuthenticateRequest/Response, ResponseHeader),
 * and the calls Maintenance.Snapshot and Auth.Authenticate.
 *
 * Transport: http:// endpoints use cleartext HTTP/2 with prior knowledge
 * (h2c); https:// endpoints use TLS (ALPN h2) with verification always on,
 * an optional CA bundle and an optional client certificate/key.
 * Every decoder here takes hostile bytes: messages are bounded by
 * KT_GRPC_MAX_MESSAGE and a malformed frame or field is KT_EPROTO.
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

#endif /* KT_ETCD_H */
