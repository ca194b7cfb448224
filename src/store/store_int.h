/*
 * store_int.h - the backend vtable shared by the files of src/store (the
 * dispatcher in store.c, local.c, s3.c, wrappers.c); other modules never
 * include it.
 *
 * A backend embeds struct kt_store as its first member and fills vt and
 * desc.  The dispatcher (kt_store_* in store.c) checks names and prefixes
 * before calling a backend, and checks what comes back: a backend's get
 * reports the object's size and the bytes it read, clipped to the object,
 * and the dispatcher turns a range past the end into KT_ECORRUPT and a
 * short delivery into KT_ETRANSIENT; a backend's list must deliver names in
 * ascending byte order (the dispatcher refuses anything else with
 * KT_EPROTO).  Wrappers call the kt_store_* functions of the store they
 * wrap, so every layer gets the same checks.
 */
#ifndef KT_STORE_INT_H
#define KT_STORE_INT_H

#include "store.h"

typedef struct kt_store_vtable {
	const char *kind;   /* "local", "s3", "retry", "faulty" */
	kt_code (*put)(kt_store *s, const char *name, const void *data, size_t len,
	               kt_error *err);
	kt_code (*put_file)(kt_store *s, const char *name, int fd, kt_error *err);
	/* out is empty on entry.  On KT_OK: *size = the object's size and out the
	 * bytes of [offset, offset+length) (length 0 = to the end) that exist. */
	kt_code (*get)(kt_store *s, const char *name, uint64_t offset, uint64_t length,
	               kt_buf *out, uint64_t *size, kt_error *err);
	kt_code (*stat)(kt_store *s, const char *name, uint64_t *size, kt_error *err);
	kt_code (*list)(kt_store *s, const char *prefix, kt_store_list_fn fn, void *ctx,
	                kt_error *err);
	kt_code (*remove)(kt_store *s, const char *name, kt_error *err);
	/* Another handle on the same store (kt_store_clone); desc and cancel
	 * filled by the backend as in its open.  NULL: it has none. */
	kt_code (*clone)(kt_store *s, kt_store **out, kt_error *err);
	void (*free)(kt_store *s);   /* free the backend's own fields and s itself */
} kt_store_vtable;

struct kt_store {
	const kt_store_vtable *vt;
	char *desc;                     /* kt_store_describe; freed by kt_store_free */
	volatile sig_atomic_t *cancel;  /* from kt_store_opts; wrappers copy inner's */
};

/* 1 if c may appear in a name segment. */
static inline int kt_store_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* 1 if name is valid (kt_store_check_name without the message). */
int kt_store_name_ok(const char *name);

/* Backends (local.c, s3.c).  url_path is the directory; bucket/prefix from
 * the URL (prefix "" or a valid name). */
kt_code kt_store_local_open(const char *dir, const kt_store_opts *o, kt_store **out,
                            kt_error *err);
kt_code kt_store_s3_open(const char *bucket, const char *prefix, const kt_store_opts *o,
                         kt_store **out, kt_error *err);

#endif /* KT_STORE_INT_H */
