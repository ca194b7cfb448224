/*
 * kube_int.h - helpers shared by kubeconfig.c and client.c (and the unit
 * tests).  Never included by other layers.
 */
#ifndef KT_KUBE_INT_H
#define KT_KUBE_INT_H

#include "kube.h"

/*
 * Decode standard base64 (RFC 4648 alphabet; padding optional; CR, LF,
 * blanks and tabs ignored, as Go's decoder ignores line breaks) from
 * in[0..n) into *out (malloc'd, NUL-terminated, *out_len excludes the NUL).
 * Returns 0, or -1 on an invalid byte, misplaced padding or a truncated
 * final group (out untouched).
 */
int kube_b64_decode(const char *in, size_t n, char **out, size_t *out_len);

/*
 * Read a regular file of at most max bytes into b (which must be
 * initialised).  what names it in messages ("kubeconfig", "token file").
 * KT_ENOTFOUND, KT_EPERM, KT_EIO, KT_ELIMIT; refuses FIFOs and devices.
 */
kt_code kube_read_file(const char *path, size_t max, const char *what, kt_buf *b,
                       kt_error *err);

/* Zero n bytes at p in a way the compiler keeps, then free(p). */
void kube_wipe_free(void *p, size_t n);

/* Trim blanks and line breaks at both ends of a token in place; return 0 if
 * what remains is a usable bearer token (non-empty, printable ASCII without
 * blanks), else -1. */
int kube_token_clean(char *s);

#endif
