/*
 * error.c - result codes, the error struct and their mapping to exit codes.
 *
 * Invariant: nothing here allocates, so an out-of-memory path can still
 * report itself.
 */
#include <errno.h>
#include <string.h>

#include "core.h"

void kt_error_clear(kt_error *err)
{
	if (!err)
		return;
	err->code = KT_OK;
	err->sys_errno = 0;
	err->status = 0;
	err->msg[0] = '\0';
}

static void set_msg(kt_error *err, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

kt_code kt_error_set(kt_error *err, kt_code code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	err->code = code;
	err->sys_errno = 0;
	err->status = 0;
	set_msg(err, fmt, ap);
	va_end(ap);
	return code;
}

kt_code kt_error_sys(kt_error *err, kt_code code, int errnum, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	err->code = code;
	err->sys_errno = errnum;
	err->status = 0;
	set_msg(err, fmt, ap);
	va_end(ap);
	size_t len = strlen(err->msg);
	char ebuf[128];
	const char *es = strerror_r(errnum, ebuf, sizeof(ebuf));
	snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", es);
	return code;
}

kt_code kt_error_wrap(kt_error *err, const char *fmt, ...)
{
	if (!err)
		return KT_OK;
	char prefix[KT_ERROR_MSG_MAX];
	char old[KT_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	kt_buf b;
	kt_buf_init(&b, sizeof(err->msg) - 1);
	if (kt_buf_adds(&b, prefix, NULL) == KT_OK && kt_buf_adds(&b, ": ", NULL) == KT_OK)
		kt_buf_add(&b, old, strnlen(old, sizeof(err->msg) - 1 - b.len), NULL);
	memcpy(err->msg, b.data, b.len + 1);
	kt_buf_release(&b);
	return err->code;
}

kt_code kt_code_from_errno(int errnum)
{
	switch (errnum) {
	case ENOENT: case ENOTDIR:
		return KT_ENOTFOUND;
	case ENOSPC: case EDQUOT: case EFBIG:
		return KT_ENOSPC;
	case EACCES: case EPERM: case EROFS:
		return KT_EPERM;
	case EEXIST:
		return KT_EEXIST;
	case ENOMEM:
		return KT_ENOMEM;
	case EINTR:
		return KT_ECANCELED;
	default:
		return KT_EIO;
	}
}

static const char *const code_names[] = {
	[KT_OK] = "ok",
	[KT_EUSAGE] = "usage",
	[KT_ENOTFOUND] = "not-found",
	[KT_ECORRUPT] = "corrupt",
	[KT_EIO] = "io",
	[KT_ENOSPC] = "no-space",
	[KT_EPERM] = "permission",
	[KT_ETRANSIENT] = "transient",
	[KT_EPROTO] = "protocol",
	[KT_EAUTH] = "auth",
	[KT_ETLS] = "tls",
	[KT_EEXIST] = "exists",
	[KT_ENOMEM] = "no-memory",
	[KT_ELIMIT] = "limit",
	[KT_ECANCELED] = "canceled",
	[KT_EREMOTE] = "remote",
};

const char *kt_code_name(kt_code code)
{
	if ((size_t)code < sizeof(code_names) / sizeof(code_names[0]) && code_names[code])
		return code_names[code];
	return "unknown";
}

int kt_code_exit(kt_code code)
{
	switch (code) {
	case KT_OK:
		return 0;
	case KT_EUSAGE:
		return 2;
	case KT_ECORRUPT:
		return 3;
	default:
		return 1;
	}
}
