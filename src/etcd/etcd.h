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
} kt_grpc_reader;

void kt_grpc_reader_init(kt_grpc_reader *r);
void kt_grpc_reader_release(kt_grpc_reader *r);
/* Feed arbitrary slices of the response body; calls fn for each message.
 * Compressed messages (flag 1) and lengths over the limit are KT_EPROTO. */
kt_code kt_grpc_reader_feed(kt_grpc_reader *r, const uint8_t *data, size_t n,
                            kt_grpc_msg_fn fn, void *ctx, kt_error *err);
/* True when no partial frame is pending (a clean end of stream). */
int kt_grpc_reader_idle(const kt_grpc_reader *r);

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

/* Decode one SnapshotResponse.  Unknown fields are skipped. */
kt_code kt_etcd_decode_snapshot(const uint8_t *msg, size_t n,
                                kt_etcd_snapshot_msg *out, kt_error *err);

/* ---------------- calls ---------------- */

typedef struct kt_etcd_conn {
	const char *endpoint;   /* "http://127.0.0.1:2379" or "https://..." */
	const char *cacert;     /* PEM CA bundle or NULL for the system store */
	const char *cert;       /* client certificate PEM or NULL */
	const char *key;        /* client key PEM or NULL */
	const char *user;       /* "name:password" for etcd auth, or NULL */
	int64_t timeout_ms;     /* whole call; 0 = no limit */
	int64_t connect_timeout_ms; /* 0 = 10 s */
	volatile sig_atomic_t *cancel; /* if set and non-zero: stop, KT_ECANCELED */
} kt_etcd_conn;

/* Receives snapshot bytes in order as they arrive.  remaining is the peer's
 * remaining_bytes (may be 0 before the end).  Return non-OK to stop. */
typedef kt_code (*kt_etcd_snapshot_fn)(void *ctx, const uint8_t *data, size_t n,
                                       uint64_t remaining, kt_error *err);

typedef struct kt_etcd_snapshot_info {
	uint64_t bytes;         /* all blob bytes delivered, trailer included */
	int64_t revision;       /* header revision of the first message */
	uint64_t cluster_id;
	uint64_t member_id;
	char version[32];       /* storage version reported by etcd 3.6+ */
} kt_etcd_snapshot_info;

/*
 * Stream Maintenance.Snapshot into fn.  With conn->user set, first calls
 * Auth.Authenticate and sends the token.  Errors: KT_ETRANSIENT (cannot
 * connect, timeout, reset), KT_ETLS, KT_EAUTH (bad user/password or no
 * permission), KT_EPROTO (not gRPC, bad frames, stream ended early),
 * KT_EREMOTE (other grpc-status).  info may be NULL.  The password never
 * appears in err->msg.
 */
kt_code kt_etcd_snapshot(const kt_etcd_conn *conn, kt_etcd_snapshot_fn fn, void *ctx,
                         kt_etcd_snapshot_info *info, kt_error *err);

#endif /* KT_ETCD_H */
