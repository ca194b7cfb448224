/*
 * fuzz_staticpod.c - libFuzzer target for the static pod manifest reader
 * and rewriter (src/kube/staticpod.c), from memory: no file is read.
 *
 * Input: the manifest; the container is the default (etcd, or the only
 * one).  Checks beyond "no crash, no leak":
 *   - a failed parse leaves the struct zeroed and a message that starts
 *     "static pod manifest: ";
 *   - a parse gives n_argv (1..256) strings then NULL, each at most 8 KiB,
 *     with first_flag <= n_command <= n_argv;
 *   - then the rewrite `etcd recover` does (remove initial-cluster-state
 *     and force-new-cluster, add --force-new-cluster and
 *     --initial-cluster-state=new) succeeds, unless the command has "--"
 *     among its flags (KT_EPROTO), would exceed the entry limit
 *     (KT_ELIMIT), or removing would shift a stray argument into a value
 *     (KT_EPROTO, "would change");
 *   - its output parses again, ends with the two added flags, reads them
 *     as true and new, reads every other flag as the original did, and
 *     rewriting it again gives the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const add[] = { "--force-new-cluster", "--initial-cluster-state=new", NULL };
static const char *const rm[] = { "initial-cluster-state", "force-new-cluster", NULL };

static void check_parsed(const kt_kube_staticpod *p)
{
	if (!p->container || !p->argv || p->n_argv == 0 || p->n_argv > KT_KUBE_STATICPOD_MAX_ARGS ||
	    p->argv[p->n_argv] != NULL)
		abort();
	if (p->first_flag > p->n_command || p->n_command > p->n_argv ||
	    p->first_flag != (p->n_command ? 1u : 0u))
		abort();
	for (size_t i = 0; i < p->n_argv; i++)
		if (!p->argv[i] || strlen(p->argv[i]) > KT_KUBE_STATICPOD_MAX_ARG)
			abort();
}

/* The flag name in argv entry s (without dashes, up to '='), or 0. */
static size_t flag_name(const char *s, char *out, size_t cap)
{
	if (s[0] != '-')
		return 0;
	s += s[1] == '-' ? 2 : 1;
	size_t n = strcspn(s, "=");
	if (n == 0 || n >= cap || s[0] == '-')
		return 0; /* "---x" is no flag to Go */
	memcpy(out, s, n);
	out[n] = '\0';
	return n;
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kt_kube_staticpod p, q;
	kt_error err;
	kt_buf out, again;

	kt_error_clear(&err);
	kt_code rc = kt_kube_staticpod_parse(&p, (const char *)data, size, NULL, &err);
	if (rc != KT_OK) {
		if (p.argv || p.container || p.image || p.n_argv || err.code != rc ||
		    strncmp(err.msg, "static pod manifest: ", 21))
			abort();
		return 0;
	}
	check_parsed(&p);

	int dashdash = 0;
	for (size_t i = p.first_flag; i < p.n_argv; i++)
		dashdash |= !strcmp(p.argv[i], "--");

	kt_buf_init(&out, KT_BUF_UNLIMITED);
	kt_buf_init(&again, KT_BUF_UNLIMITED);
	rc = kt_kube_staticpod_rewrite((const char *)data, size, NULL, add, rm, &out, &err);
	if (rc != KT_OK) {
		int ok = (rc == KT_EPROTO && dashdash) || rc == KT_ELIMIT ||
		         (rc == KT_EPROTO && strstr(err.msg, "would change the value"));
		if (!ok || out.len)
			abort();
		goto done;
	}
	if (dashdash)
		abort();

	/* The container read may have been the only one, under another name. */
	rc = kt_kube_staticpod_parse(&q, out.data, out.len, p.container[0] ? p.container : NULL,
	                             &err);
	if (rc != KT_OK)
		abort();
	check_parsed(&q);
	if (q.n_argv < 2 || strcmp(q.argv[q.n_argv - 2], add[0]) ||
	    strcmp(q.argv[q.n_argv - 1], add[1]))
		abort();
	if (!same(kt_kube_staticpod_flag(&q, "force-new-cluster"), "true") ||
	    !same(kt_kube_staticpod_flag(&q, "initial-cluster-state"), "new"))
		abort();
	if (q.first_flag != p.first_flag || !same(q.image, p.image))
		abort();
	for (size_t i = p.first_flag; i < p.n_argv; i++) {
		char name[256];
		if (!flag_name(p.argv[i], name, sizeof(name)) ||
		    !strcmp(name, "force-new-cluster") || !strcmp(name, "initial-cluster-state"))
			continue;
		if (!same(kt_kube_staticpod_flag(&p, name), kt_kube_staticpod_flag(&q, name)))
			abort();
	}
	kt_kube_staticpod_release(&q);

	/* A fixed point: `etcd recover` run twice writes the same manifest. */
	if (kt_kube_staticpod_rewrite(out.data, out.len, NULL, add, rm, &again, &err) != KT_OK ||
	    again.len != out.len || memcmp(again.data, out.data, out.len))
		abort();
done:
	kt_buf_release(&out);
	kt_buf_release(&again);
	kt_kube_staticpod_release(&p);
	return 0;
}
