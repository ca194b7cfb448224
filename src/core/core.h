/*
 * core.h - the foundation every other layer builds on.
 *
 * Owns: result codes and the error struct, size-limited growable buffers,
 * logging with secret redaction, atomic "write to .part, fsync, rename"
 * files, duration parsing, SHA-256 helpers, progress arithmetic and running
 * other programs (etcdutl, a throwaway etcd).
 *
 * Rules that hold for all of kontinuity's library code (everything outside
 * src/cli/):
 *   1. It never prints to the terminal and never exits; it reports through
 *      a caller-supplied kt_error and through the log sink the front end set.
 *   2. Functions that can fail return a kt_code; KT_OK (0) is success. On
 *      failure the kt_error passed in holds the code and a message that names
 *      the object and says what to do; out-parameters are left untouched
 *      unless documented otherwise.
 *   3. Every buffer that can be grown by outside bytes has a maximum size.
 */
#ifndef KT_CORE_H
#define KT_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ */
/* Result codes.  Append only: values are pinned (they appear in JSON logs). */

typedef enum kt_code {
	KT_OK = 0,
	KT_EUSAGE = 1,     /* the caller asked for something malformed */
	KT_ENOTFOUND = 2,  /* named file/object/endpoint does not exist */
	KT_ECORRUPT = 3,   /* data failed verification: do not trust it */
	KT_EIO = 4,        /* local read/write failure */
	KT_ENOSPC = 5,     /* disk full or quota */
	KT_EPERM = 6,      /* local permission denied */
	KT_ETRANSIENT = 7, /* network trouble or timeout: a retry may help */
	KT_EPROTO = 8,     /* the peer sent something we do not accept */
	KT_EAUTH = 9,      /* the peer refused our credentials */
	KT_ETLS = 10,      /* TLS handshake or certificate verification failed */
	KT_EEXIST = 11,    /* refusing to overwrite */
	KT_ENOMEM = 12,    /* out of memory */
	KT_ELIMIT = 13,    /* input exceeds a documented size limit */
	KT_ECANCELED = 14, /* interrupted by a signal or the caller */
	KT_EREMOTE = 15,   /* the peer reported a failure of its own */
} kt_code;

#define KT_ERROR_MSG_MAX 512

typedef struct kt_error {
	kt_code code;
	int sys_errno;   /* errno when a system call failed, else 0 */
	long status;     /* HTTP status or gRPC status when a peer answered */
	char msg[KT_ERROR_MSG_MAX];
} kt_error;

/* Reset err to KT_OK with an empty message. */
void kt_error_clear(kt_error *err);

/*
 * Fill err (may be NULL) with code and a printf-style message and return
 * code, so callers can write `return kt_error_set(err, KT_EIO, ...)`.
 * Never allocates.  The message is truncated to fit.
 */
kt_code kt_error_set(kt_error *err, kt_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like kt_error_set, with sys_errno = errnum and ": strerror(errnum)" appended. */
kt_code kt_error_sys(kt_error *err, kt_code code, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Prefix err->msg with "prefix: " (keeps code).  Returns err->code. */
kt_code kt_error_wrap(kt_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Map an errno from a file operation to a code (ENOSPC -> KT_ENOSPC ...). */
kt_code kt_code_from_errno(int errnum);

/* Stable short name of a code ("corrupt", "transient", ...). */
const char *kt_code_name(kt_code code);

/* Process exit status for a code: 0 ok, 2 usage, 3 verification, else 1. */
int kt_code_exit(kt_code code);

/* ------------------------------------------------------------------ */
/* Buffers (git strbuf + curl dynbuf): data is never NULL and always
 * NUL-terminated; len never exceeds max. */

typedef struct kt_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;   /* hard ceiling on len; growth past it fails with KT_ELIMIT */
} kt_buf;

#define KT_BUF_UNLIMITED ((size_t)-1)

void kt_buf_init(kt_buf *b, size_t max);
/* Free the contents; b is left initialised and empty (same max). */
void kt_buf_release(kt_buf *b);
/* Hand the data to the caller (who frees it); b is left empty. */
char *kt_buf_detach(kt_buf *b, size_t *len_out);
void kt_buf_reset(kt_buf *b);
kt_code kt_buf_add(kt_buf *b, const void *data, size_t n, kt_error *err);
kt_code kt_buf_adds(kt_buf *b, const char *s, kt_error *err);
kt_code kt_buf_addf(kt_buf *b, kt_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Drop the first n bytes (n <= len). */
void kt_buf_consume(kt_buf *b, size_t n);
/* Make room for extra more bytes (within max) so that a reader can write
 * straight into data + len, then record them with kt_buf_setlen. */
kt_code kt_buf_grow(kt_buf *b, size_t extra, kt_error *err);
/* Set len (<= what kt_buf_grow made room for) and terminate the data. */
void kt_buf_setlen(kt_buf *b, size_t len);

/* ------------------------------------------------------------------ */
/* Logging.  The front end installs the format and level once at start;
 * library code calls kt_log().  Every registered secret is replaced by
 * "[REDACTED]" in every line before it reaches the sink. */

typedef enum kt_log_level {
	KT_LOG_ERROR = 0,
	KT_LOG_WARN = 1,
	KT_LOG_INFO = 2,
	KT_LOG_DEBUG = 3,
} kt_log_level;

typedef enum kt_log_format { KT_LOG_TEXT = 0, KT_LOG_JSON = 1 } kt_log_format;

/* Configure the process-wide logger (stream NULL means stderr). */
void kt_log_setup(FILE *stream, kt_log_format format, kt_log_level level);
/* Never let s (e.g. a password or token) appear in a log line.  Copies s. */
void kt_log_add_secret(const char *s);
/* Forget all secrets (tests). */
void kt_log_clear_secrets(void);
/* Write s to out with every registered secret replaced.  For error lines. */
void kt_redact(kt_buf *out, const char *s);
int kt_log_enabled(kt_log_level level);
/* The format configured by kt_log_setup. */
kt_log_format kt_log_get_format(void);
void kt_log(kt_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ */
/* Atomic output files.  kt_outfile_open creates PATH.part exclusively with
 * mode 0600 (refusing if PATH or PATH.part exist); kt_outfile_commit
 * fsyncs, renames to PATH without ever replacing an existing file, and
 * fsyncs the directory; kt_outfile_abort removes the .part.  After a
 * failed commit the .part is removed too: a failure leaves nothing. */

typedef struct kt_outfile {
	int fd;
	char *path;       /* final name */
	char *part_path;  /* PATH.part */
	uint64_t written;
} kt_outfile;

kt_code kt_outfile_open(kt_outfile *f, const char *path, kt_error *err);
kt_code kt_outfile_write(kt_outfile *f, const void *data, size_t n, kt_error *err);
kt_code kt_outfile_sync(kt_outfile *f, kt_error *err);  /* fsync data so far */
kt_code kt_outfile_commit(kt_outfile *f, kt_error *err);
/* Remove the .part and free.  Safe after commit or on a zeroed struct. */
void kt_outfile_abort(kt_outfile *f);

/* ------------------------------------------------------------------ */
/* Small helpers. */

/* Parse a Go-style duration ("30s", "1m30s", "2h", "500ms"; a bare number
 * means seconds) into milliseconds.  KT_EUSAGE on anything else. */
kt_code kt_parse_duration_ms(const char *s, int64_t *ms_out, kt_error *err);

/* Human size: "1.5 MiB".  buf must hold 32 bytes. */
const char *kt_human_bytes(uint64_t n, char buf[32]);

/* Overwrite n bytes at p with zeros in a way the compiler keeps (secrets
 * before free). */
void kt_wipe(void *p, size_t n);

/* Standard base64 (RFC 4648 alphabet).  Decode: whitespace ignored,
 * padding optional but must match, non-canonical trailing bits refused;
 * 0 with *out (NUL-terminated, caller frees; wipe it if secret) and
 * *out_len, or -1 when in is not base64.  Encode: padded, appended to
 * out (bounded by its max: KT_ELIMIT, out unchanged). */
int kt_base64_decode(const char *in, size_t n, char **out, size_t *out_len);
kt_code kt_base64_encode(const void *in, size_t n, kt_buf *out, kt_error *err);

/* Monotonic milliseconds. */
int64_t kt_now_ms(void);
/* Sleep ms milliseconds (a signal may end it early: callers re-check
 * their cancel flag and deadline). */
void kt_sleep_ms(int64_t ms);
/* The current UTC time as "YYYY-MM-DDTHH:MM:SSZ" into out (>= 21 bytes). */
void kt_time_iso(char *out, size_t outlen);
/* Read a whole (small) file into out, bounded by out->max: KT_ELIMIT past
 * it; errors name the file. */
kt_code kt_read_file(const char *path, kt_buf *out, kt_error *err);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void kt_hex(char *out, const uint8_t *data, size_t n);

/* Allocation that never returns NULL: prints nothing, aborts on OOM. */
void *kt_xmalloc(size_t n);
void *kt_xcalloc(size_t n, size_t size);
char *kt_xstrdup(const char *s);

/* ------------------------------------------------------------------ */
/* Configuration files: a YAML map of flag names to scalar values. */

#define KT_CONFIG_MAX (1u << 20)
#define KT_CONFIG_MAX_KEYS 256

typedef struct kt_config {
	char **keys;    /* flag names, without "--" */
	char **values;
	size_t n;
} kt_config;

/* Parse data (len bytes, need not be NUL-terminated) as a flat YAML map.
 * name is used in messages.  On failure c is empty.  Release with
 * kt_config_release. */
kt_code kt_config_parse(kt_config *c, const char *data, size_t len, const char *name,
                        kt_error *err);
/* Read and parse the file at path (at most KT_CONFIG_MAX bytes). */
kt_code kt_config_load(kt_config *c, const char *path, kt_error *err);
void kt_config_release(kt_config *c);

/* ------------------------------------------------------------------ */
/* Schedules: standard 5-field cron expressions, evaluated in UTC only
 * (docs/schedule.md).  Vixie-cron day rule: when day-of-month and
 * day-of-week are both restricted (neither field starts with '*'), a day
 * matches if either field matches; otherwise both must. */

#define KT_CRON_EXPR_MAX 256   /* longest expression accepted, in bytes */

typedef struct kt_cron {
	uint64_t minute;   /* bit m: minute m, 0-59 */
	uint32_t hour;     /* bit h: hour h, 0-23 */
	uint32_t dom;      /* bit d: day-of-month d, 1-31 */
	uint16_t month;    /* bit m: month m, 1-12 */
	uint8_t dow;       /* bit d: day-of-week d, 0-6, 0 = Sunday (7 folds into 0) */
	int dom_star, dow_star;   /* the field starts with '*' (unrestricted) */
	char expr[KT_CRON_EXPR_MAX + 1];   /* the expression as given, trimmed */
} kt_cron;

/*
 * Parse expr: five fields "minute hour day-of-month month day-of-week" made
 * of '*', numbers, ranges a-b, lists a,b, steps * /n and a-b/n, JAN-DEC and
 * SUN-SAT (any case), 7 = Sunday; or one of @hourly @daily @midnight
 * @weekly @monthly @yearly @annually.  Returns KT_OK and fills *out, or
 * KT_EUSAGE with a message naming the field and the bad token (out is then
 * untouched).  expr is at most KT_CRON_EXPR_MAX bytes of printable ASCII.
 * An expression that parses may still never fire ("0 0 30 2 *");
 * kt_cron_next reports that.
 */
kt_code kt_cron_parse(kt_cron *out, const char *expr, kt_error *err);

/*
 * The first whole minute strictly after after_unix (seconds since the epoch,
 * UTC; need not be a whole minute) that c matches, in *next_unix.
 * after_unix must lie in 1970-9999.  KT_EUSAGE if c never fires (then
 * *next_unix is untouched).  Cost is bounded: it skips whole months, days
 * and hours, never more than a few thousand steps.
 */
kt_code kt_cron_next(const kt_cron *c, int64_t after_unix, int64_t *next_unix, kt_error *err);

/* 1 if the minute containing t_unix (UTC) matches c, else 0. */
int kt_cron_matches(const kt_cron *c, int64_t t_unix);

/* ------------------------------------------------------------------ */
/* Progress arithmetic for long transfers; the front end renders it. */

typedef struct kt_progress {
	int64_t start_ms;
	uint64_t done;       /* bytes so far */
	uint64_t remaining;  /* as last reported by the peer; 0 = unknown */
} kt_progress;

void kt_progress_init(kt_progress *p);
/* Render "12.0 MiB  34.5 MiB/s  ETA 3s" style text (no newline). */
void kt_progress_format(const kt_progress *p, char *out, size_t outlen);

/* ------------------------------------------------------------------ */
/* Running other programs (proc.c).  argv[0] must be a path (see
 * kt_proc_find); no shell is involved.  Children die with us
 * (PR_SET_PDEATHSIG). */

#define KT_PROC_OUTPUT_MAX (16u * 1024u)

typedef struct kt_proc_opts {
	int64_t timeout_ms;              /* 0 = no limit; the child is killed after */
	volatile sig_atomic_t *cancel;   /* non-zero: kill the child, KT_ECANCELED */
	char *const *envp;               /* the child's environment; NULL = ours */
	int stdout_only;                 /* capture stdout alone (stderr stays ours) ... */
	size_t output_max;               /* ... and with this set, more output than this is
	                                    KT_ELIMIT (the child is killed) instead of keeping
	                                    the last KT_PROC_OUTPUT_MAX bytes */
	int secret_output;               /* the output is a credential: wipe the read buffer */
} kt_proc_opts;

typedef struct kt_proc_result {
	int exit_code;    /* -1 when it did not exit normally */
	int signal;       /* the signal that killed it, else 0 */
	kt_buf output;    /* stdout+stderr (or stdout alone), see kt_proc_opts */
} kt_proc_result;

/* Resolve name (a path, or a file searched on $PATH) to an executable
 * path in out.  KT_ENOTFOUND / KT_EPERM with a message saying what to do. */
kt_code kt_proc_find(const char *name, char *out, size_t outlen, kt_error *err);
/* Run argv to completion (o may be NULL).  KT_OK means it ran: look at
 * res->exit_code.  Errors: KT_ETRANSIENT (timeout), KT_ECANCELED,
 * KT_ENOTFOUND (exec failed), KT_EIO.  Always release res afterwards. */
kt_code kt_proc_run(const char *const argv[], const kt_proc_opts *o, kt_proc_result *res,
                    kt_error *err);
void kt_proc_result_release(kt_proc_result *res);
/* The last non-empty output line, control bytes replaced, into out. */
const char *kt_proc_last_line(const kt_proc_result *res, char *out, size_t outlen);
/* Start argv in the background in directory cwd (NULL: ours) with
 * stdout+stderr appended to log_path (NULL: inherited).  The caller must
 * kt_proc_stop or reap it. */
kt_code kt_proc_spawn(const char *const argv[], const char *cwd, const char *log_path,
                      pid_t *pid_out, kt_error *err);
/* 1 (and reaped; res filled if not NULL, release it) when pid has exited. */
int kt_proc_exited(pid_t pid, kt_proc_result *res);
/* SIGTERM, up to grace_ms for it to exit, then SIGKILL; always reaps. */
void kt_proc_stop(pid_t pid, int64_t grace_ms);

#endif /* KT_CORE_H */
