/*
 * fuzz_volsnap.c - libFuzzer target for what src/volsnap reads from the API
 * server: resource quantities (a VolumeSnapshot's status.restoreSize, also
 * --size) and VolumeSnapshot objects flattened by kt_vs_info_from.
 *
 * The input is used whole as both: as a NUL-terminated quantity (a parsed
 * quantity of plain digits must equal their value; binary suffixes must
 * scale exactly), and as a JSON document whose flattened fields must stay
 * NUL-terminated within their arrays.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "volsnap/volsnap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void bounded(const char *s, size_t cap)
{
	if (strnlen(s, cap) >= cap)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = malloc(size + 1);
	if (!q)
		return 0;
	memcpy(q, data, size);
	q[size] = '\0';
	uint64_t b = 0;
	kt_error err;
	if (kt_vs_quantity(q, &b, &err) == KT_OK) {
		size_t n = strlen(q);
		if (n && n <= 18 && strspn(q, "0123456789") == n && b != strtoull(q, NULL, 10))
			abort();
		if (n > 2 && n <= 14 && !strcmp(q + n - 2, "Ki") &&
		    strspn(q, "0123456789") == n - 2 && b != strtoull(q, NULL, 10) * 1024)
			abort();
	} else if (err.code != KT_EUSAGE || !err.msg[0]) {
		abort();
	}
	free(q);

	json_error_t jerr;
	json_t *o = json_loadb((const char *)data, size, 0, &jerr);
	if (o) {
		kt_vs_info v;
		kt_vs_info_from(&v, o);
		bounded(v.namespace, sizeof(v.namespace));
		bounded(v.name, sizeof(v.name));
		bounded(v.pvc, sizeof(v.pvc));
		bounded(v.content, sizeof(v.content));
		bounded(v.restore_size, sizeof(v.restore_size));
		bounded(v.error, sizeof(v.error));
		if (v.ready < -1 || v.ready > 1)
			abort();
		json_decref(o);
	}
	return 0;
}
