/*
 * kube.h - the Kubernetes REST client: where the API server is and how to
 * prove who we are (kubeconfig files, in-cluster service-account config),
 * and GET of one object as decoded JSON.
 *
 * Owns: bounded kubeconfig parsing (libyaml document API), context
 * selection, the auth forms we support (client certificate and key as file
 * or inline data, bearer token inline or from a file), in-cluster config,
 * the HTTP status -> kt_code mapping with the API server's Status message,
 * and a few typed helpers (Secret data, namespace UID).
 *
 * Invariants:
 *   1. TLS verification is never disabled: a kubeconfig that asks for
 *      insecure-skip-tls-verify is refused, not obeyed.
 *   2. A bearer token is registered with kt_log_add_secret as soon as it is
 *      read and never appears in an error message; it travels only in the
 *      Authorization header, and never over plain http://.
 *   3. Parsing never reads other files: paths in a kubeconfig (CA, client
 *      certificate/key, tokenFile) are resolved against the kubeconfig's
 *      directory and used when a client is created.  So the parser is safe
 *      to fuzz from memory.
 *   4. Every input is bounded: kubeconfig size and nesting depth, token
 *      file size, response size.
 *   5. Error messages name the source and the field, e.g.
 *      "kubeconfig '/etc/kubernetes/admin.conf': users[0].user.client-key-data
 *      is not valid base64".
 *
 * Supported and refused kubeconfig features: docs/kube-client.md.
 */
#ifndef KT_KUBE_H
#define KT_KUBE_H

#include <signal.h>
#include <jansson.h>

#include "../core/core.h"

#define KT_KUBE_MAX_CONFIG (4u << 20)       /* kubeconfig file size */
#define KT_KUBE_MAX_DEPTH 64                /* YAML nesting depth */
#define KT_KUBE_MAX_TOKEN (64u << 10)       /* token or token file */
#define KT_KUBE_MAX_RESPONSE (16u << 20)    /* default response body limit */
#define KT_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* ------------------------------------------------------------------ */
/* Configuration: where the server is and which credentials to present.
 * All strings are owned by the struct (kt_kube_config_release frees them).
 * For each of CA, client certificate and client key at most one of the
 * file path or the inline PEM is set. */

typedef struct kt_kube_config {
	char *source;      /* for messages: "kubeconfig '/path'" or "in-cluster config" */
	char *server;      /* "https://host:port[/prefix]", no trailing slash */
	char *context;     /* the context used; NULL for in-cluster */
	char *cluster;     /* cluster name (kubeconfig) or NULL */
	char *user;        /* user name (kubeconfig) or NULL */
	char *namespace;   /* the context's namespace, else "default" */

	char *ca_file;     /* absolute or relative to the cwd */
	char *ca_pem;      /* decoded certificate-authority-data */
	size_t ca_pem_len;
	char *cert_file;
	char *cert_pem;
	size_t cert_pem_len;
	char *key_file;
	char *key_pem;     /* zeroed before it is freed */
	size_t key_pem_len;

	char *token;       /* inline bearer token (registered secret), or NULL */
	char *token_file;  /* read when a client is created (and re-read on 401) */
} kt_kube_config;

/* Zero cfg. */
void kt_kube_config_init(kt_kube_config *cfg);
/* Free the contents (secret material is zeroed first); cfg is left zeroed. */
void kt_kube_config_release(kt_kube_config *cfg);

/*
 * Parse a kubeconfig held in memory.
 *   name      the file name used in messages ("kubeconfig 'NAME': ...")
 *   base_dir  directory against which relative paths in the file are
 *             resolved (NULL: leave them relative)
 *   context   the context to use, or NULL for current-context
 * On success *out holds the config (caller releases it).  On failure *out is
 * left zeroed and err names the field: KT_EUSAGE for malformed or missing
 * fields, refused and unsupported features (exec, auth-provider, basic
 * auth, insecure-skip-tls-verify...), KT_ENOTFOUND for an unknown context,
 * cluster or user, KT_ELIMIT for size and depth limits.
 */
kt_code kt_kube_config_parse(kt_kube_config *out, const char *data, size_t len,
                             const char *name, const char *base_dir, const char *context,
                             kt_error *err);

/* Read the kubeconfig at path (at most KT_KUBE_MAX_CONFIG bytes) and parse
 * it as above, relative paths against its directory.  KT_ENOTFOUND if the
 * file does not exist, KT_EPERM/KT_EIO if it cannot be read. */
kt_code kt_kube_config_load(kt_kube_config *out, const char *path, const char *context,
                            kt_error *err);

/*
 * The config a pod gets: server from KUBERNETES_SERVICE_HOST and
 * KUBERNETES_SERVICE_PORT, token file DIR/token, CA DIR/ca.crt and
 * namespace from DIR/namespace (if present), DIR defaulting to
 * KT_KUBE_SA_DIR.  KT_ENOTFOUND when the variables are unset or DIR/token
 * does not exist (not in a pod).  The files are read when a client is made.
 */
kt_code kt_kube_config_in_cluster(kt_kube_config *out, const char *dir, kt_error *err);

/* ------------------------------------------------------------------ */
/* Client */

typedef struct kt_kube_opts {
	int64_t timeout_ms;          /* per request; 0 = 30 s */
	int64_t connect_timeout_ms;  /* 0 = 10 s */
	size_t max_response;         /* body limit; 0 = KT_KUBE_MAX_RESPONSE */
	volatile sig_atomic_t *cancel; /* non-zero: stop with KT_ECANCELED */
} kt_kube_opts;

typedef struct kt_kube kt_kube; /* opaque: one API server, one connection */

/*
 * Make a client for cfg (copied; cfg may be released afterwards).  Reads
 * the token file (bounded, surrounding blanks trimmed) and checks that
 * referenced CA/certificate/key files are readable, so a bad path fails
 * here with the field named rather than as a TLS error later.  Inline PEM
 * is handed to libcurl through an anonymous in-memory file.  opts may be
 * NULL.  *out untouched on failure; free with kt_kube_client_free.
 */
kt_code kt_kube_client_new(kt_kube **out, const kt_kube_config *cfg, const kt_kube_opts *opts,
                           kt_error *err);

/* Close the connection, wipe the credentials, free c.  NULL is a no-op. */
void kt_kube_client_free(kt_kube *c);

/* The config the client was made from (borrowed). */
const kt_kube_config *kt_kube_client_config(const kt_kube *c);

/*
 * GET path (e.g. "/api/v1/namespaces/kube-system": must start with '/',
 * printable ASCII without blanks) and decode the JSON body into *out
 * (caller owns; json_decref).  Errors, with the API server's Status
 * message quoted when it sent one:
 *   KT_EAUTH       401 or 403 (err->status holds it)
 *   KT_ENOTFOUND   404
 *   KT_ETRANSIENT  429, 5xx, 408, timeouts, connection failures
 *   KT_EREMOTE     any other non-2xx status
 *   KT_EPROTO      a 2xx body that is not a JSON object
 *   KT_ELIMIT      the body exceeds opts.max_response
 *   KT_ETLS, KT_ECANCELED, ... from the transport.
 * *out is untouched on failure.
 */
kt_code kt_kube_get(kt_kube *c, const char *path, json_t **out, kt_error *err);

/* One entry of a Secret's data, base64-decoded.  value is NUL-terminated
 * (the NUL is not counted in len) so text values can be used directly. */
typedef struct kt_kube_secret_item {
	char *key;
	char *value;
	size_t len;
} kt_kube_secret_item;

typedef struct kt_kube_secret {
	char *namespace;
	char *name;
	char *type;            /* e.g. "Opaque"; "" if absent */
	size_t n_items;
	kt_kube_secret_item *items; /* in the order the server sent them */
} kt_kube_secret;

/*
 * GET the Secret ns/name and decode its data map.  Names are checked
 * (DNS-1123) before any request.  KT_EPROTO when a value is not valid
 * base64 or not a string.  *out (caller frees with kt_kube_secret_free) is
 * untouched on failure.  Values are not registered as log secrets: the
 * caller knows which ones are.
 */
kt_code kt_kube_get_secret(kt_kube *c, const char *ns, const char *name,
                           kt_kube_secret **out, kt_error *err);

/* The item named key, or NULL (borrowed from s). */
const kt_kube_secret_item *kt_kube_secret_find(const kt_kube_secret *s, const char *key);

/* Wipe the values and free s.  NULL is a no-op. */
void kt_kube_secret_free(kt_kube_secret *s);

/* The metadata.uid of namespace ns into *out (caller frees).  Same errors
 * as kt_kube_get; KT_EPROTO if the object has no uid. */
kt_code kt_kube_namespace_uid(kt_kube *c, const char *ns, char **out, kt_error *err);

/* 1 if s is a valid DNS-1123 label (namespace name), else 0. */
int kt_kube_valid_label(const char *s);
/* 1 if s is a valid DNS-1123 subdomain (most object names), else 0. */
int kt_kube_valid_name(const char *s);

/* ------------------------------------------------------------------ */
/* Static pod manifests (src/kube/staticpod*.c): the etcd Pod that kubelet
 * runs from /etc/kubernetes/manifests/etcd.yaml on a kubeadm control-plane
 * node.  `etcd restore` reads the member's flags from it; `etcd recover`
 * writes a copy with flags changed (e.g. --force-new-cluster added).
 *
 * Accepted input: one YAML document (a second one is refused, because
 * kubelet would ignore it and a rewrite would drop it), kind: Pod with
 * apiVersion: v1, spec.containers a list of mappings.  Refused: YAML
 * aliases (*name; anchors alone are fine), merge keys (<<) and a key given
 * twice among the fields read (apiVersion, kind, spec, containers, and a
 * container's name, image, command, args); command/args entries that
 * Kubernetes would not read as strings (mappings, lists, null, plain
 * true/false/yes/no/on/off, plain numbers: quote them).  Other fields are
 * not read (a rewrite keeps them as they are).  Environment variables
 * (ETCD_NAME...) in the manifest are not read either.
 *
 * Every message starts "static pod manifest['PATH']: line L column C: "
 * (position from the parser where there is one) and names the field, e.g.
 * "spec.containers[0].command[3] is a mapping, not a string".  Codes:
 * KT_EPROTO for a manifest we do not accept (including "no container
 * 'etcd'" and "has no command"), KT_ELIMIT for the limits below, KT_EUSAGE
 * for malformed arguments of kt_kube_staticpod_rewrite, KT_ENOMEM.
 */

#define KT_KUBE_STATICPOD_MAX (1u << 20)       /* manifest size, bytes */
#define KT_KUBE_STATICPOD_MAX_ARGS 256         /* command + args entries */
#define KT_KUBE_STATICPOD_MAX_ARG (8u << 10)   /* one entry, bytes */
#define KT_KUBE_STATICPOD_MAX_CONTAINERS 64    /* entries of spec.containers */
/* Nesting depth is bounded by KT_KUBE_MAX_DEPTH.  The limits apply to
 * every container of the Pod, not only the one read. */

typedef struct kt_kube_staticpod {
	char *container;   /* the container read ("" if it has no name) */
	char *image;       /* its image, or NULL if the field is absent */
	char **argv;       /* command then args: n_argv strings, then NULL */
	size_t n_argv;
	size_t n_command;  /* argv[0..n_command) came from command, the rest from args */
	size_t first_flag; /* where flags start: 1 after command's program, 0 when only
	                      args is given (the image's entrypoint is the program) */
} kt_kube_staticpod;

/*
 * Parse the manifest in data[0..len) (need not be NUL-terminated) and read
 * the container named container; NULL or "" means "etcd", or the only
 * container when there is exactly one and none is called etcd.  Its
 * command then args become argv (at least one entry, else "container 'X'
 * has no command").  All strings are owned by *out (release with
 * kt_kube_staticpod_release).  On failure *out is zeroed.
 */
kt_code kt_kube_staticpod_parse(kt_kube_staticpod *out, const char *data, size_t len,
                                const char *container, kt_error *err);

/* Read the file at path (at most KT_KUBE_STATICPOD_MAX bytes) and parse it
 * as above; messages name the path.  KT_ENOTFOUND if it does not exist,
 * KT_EPERM/KT_EIO if it cannot be read, KT_EUSAGE if not a regular file. */
kt_code kt_kube_staticpod_load(kt_kube_staticpod *out, const char *path, const char *container,
                               kt_error *err);

/* Free the contents; p is left zeroed.  NULL and a zeroed struct are fine. */
void kt_kube_staticpod_release(kt_kube_staticpod *p);

/*
 * The value etcd reads for flag name ("data-dir"; leading dashes are
 * ignored), borrowed from p; NULL if the flag is not given.  Read as Go's
 * flag package does, from argv[first_flag]: "--f=v" and "-f=v"; "--f v"
 * (the next entry is the value unless it starts with '-'); a bare "--f"
 * of one of etcd's boolean flags (force-new-cluster, client-cert-auth...)
 * or with nothing after it reads "true"; "" is a possible value; the last
 * occurrence wins; "--" ends the flags; other entries are skipped.  (Go
 * would also take a value starting with '-' after a non-boolean flag:
 * write such values as --f=-v.)
 */
const char *kt_kube_staticpod_flag(const kt_kube_staticpod *p, const char *name);

/*
 * Append to out a copy of the manifest data[0..len) in which the container
 * chosen as in kt_kube_staticpod_parse has:
 *   - every flag named in remove taken out, in any form (with "--f value"
 *     both entries go).  An entry is a name ("initial-cluster-state",
 *     leading dashes ignored) or name=value, which removes only the
 *     occurrences with that value.  Removing an absent flag is no error.
 *   - the entries of add ("--force-new-cluster", "--initial-cluster-state=new",
 *     each one flag in one entry) appended last, so they win: at the end of
 *     args if args has entries, else at the end of command.
 * add and remove are NULL-terminated arrays; NULL means none.
 *
 * The rest of the document is kept as data, re-written by libyaml's
 * emitter from the parser's events: comments and the original layout are
 * lost; values keep their meaning and mostly their quoting (a value tagged
 * with the bare "!" comes out quoted instead, an empty plain one as ~;
 * non-ASCII is written as UTF-8, UTF-16 input as UTF-8).  The output is
 * checked before it is returned: parsed again it must give the expected
 * argv, each added flag must read with its value and no other flag may
 * change value; it is at most KT_KUBE_STATICPOD_MAX bytes with at most
 * KT_KUBE_STATICPOD_MAX_ARGS entries.  Errors as for parsing; KT_EUSAGE
 * for an add entry that is not "--name[=value]" or a remove entry that is
 * not a name; KT_EPROTO when an added flag would not be read (after a
 * "--") or when taking flags out would make a stray entry the value of
 * another flag ("--a x" left behind by a removal between them); out's own
 * limit (KT_ELIMIT).  On failure out is unchanged.  Rewriting the output
 * again with the same lists (remove naming the added flags) gives the
 * same bytes.
 */
kt_code kt_kube_staticpod_rewrite(const char *data, size_t len, const char *container,
                                  const char *const *add, const char *const *remove, kt_buf *out,
                                  kt_error *err);

#endif /* KT_KUBE_H */
