/*
 * fuzz_config.c - libFuzzer target for configuration files
 * (kt_config_parse): any bytes must give either a flat map whose keys and
 * values are NUL-free strings, or an error, never a crash or a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kt_config c;
	kt_error err;
	if (kt_config_parse(&c, (const char *)data, size, "fuzz.yaml", &err) == KT_OK) {
		if (c.n > KT_CONFIG_MAX_KEYS)
			abort();
		for (size_t i = 0; i < c.n; i++)
			if (!c.keys[i][0])
				abort();
		kt_config_release(&c);
	} else if (c.n != 0 || !err.msg[0]) {
		abort();
	}
	return 0;
}
