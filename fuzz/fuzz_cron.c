/*
 * fuzz_cron.c - libFuzzer target for --schedule expressions
 * (kt_cron_parse, kt_cron_next, kt_cron_matches).
 *
 * The input, cut at KT_CRON_EXPR_MAX + 8 bytes so the length limit is also
 * exercised, becomes a NUL-terminated string.  Parsing must succeed with
 * every field non-empty or fail with a message; a parsed schedule's next
 * fire time from a few starting points must be a whole minute strictly
 * later that matches, with no match in between when it is near enough to
 * check minute by minute, or a "never fires" error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CRON_MAX_INPUT (KT_CRON_EXPR_MAX + 8)
#define FUZZ_CRON_CHECK_GAP (2 * 24 * 60)   /* minutes checked one by one */

static void check_next(const kt_cron *c, int64_t after)
{
	kt_error err;
	kt_error_clear(&err);
	int64_t next = -1;
	if (kt_cron_next(c, after, &next, &err) != KT_OK) {
		if (err.code != KT_EUSAGE || !err.msg[0])
			abort();
		return;
	}
	if (next <= after || next % 60 != 0 || !kt_cron_matches(c, next))
		abort();
	if ((next - after) / 60 <= FUZZ_CRON_CHECK_GAP)
		for (int64_t t = after - after % 60 + 60; t < next; t += 60)
			if (kt_cron_matches(c, t))
				abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char expr[FUZZ_CRON_MAX_INPUT + 1];
	if (size > FUZZ_CRON_MAX_INPUT)
		size = FUZZ_CRON_MAX_INPUT;
	memcpy(expr, data, size);
	expr[size] = '\0';

	kt_cron c;
	kt_error err;
	kt_error_clear(&err);
	if (kt_cron_parse(&c, expr, &err) != KT_OK) {
		if (err.code != KT_EUSAGE || !err.msg[0])
			abort();
		return 0;
	}
	if (!c.minute || !c.hour || !c.dom || !c.month || !c.dow || c.minute >> 60 ||
	    c.hour >> 24 || (c.dom & 1) || (c.month & 0xe001) || (c.dow & 0x80))
		abort();
	check_next(&c, 0);
	check_next(&c, 1709164799);     /* 2024-02-28T23:59:59Z, before a leap day */
	check_next(&c, 4102444799);     /* 2099-12-31T23:59:59Z, before a non-leap 2100 */
	check_next(&c, 253402300799);   /* the last second accepted */
	return 0;
}
