/*
 * fuzz_kubeconfig.c - libFuzzer target for the kubeconfig parser
 * (src/kube/kubeconfig.c), from memory: no file is read.
 *
 * Input: byte 0 picks the context (0: current-context, odd: "b", else
 * "a"), whether relative paths are resolved against a base directory (4),
 * and whether the rest is split at its first NUL byte into two files
 * merged as $KUBECONFIG is (8); the rest is the kubeconfig(s).  Checks
 * beyond "no crash, no leak":
 *   - success yields a server that starts with https:// or http://, a
 *     namespace, and a complete client certificate/key pair or none;
 *   - at most one of file and inline data per credential;
 *   - an exec plugin has a command, a supported apiVersion and no token
 *     or client certificate beside it;
 *   - failure leaves the config zeroed and a message that names a file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	const char *context = (mode & 3) == 0 ? NULL : (mode & 1) ? "b" : "a";
	const char *base = (mode & 4) ? "/base" : NULL;
	kt_kube_config cfg;
	kt_error err;

	kt_error_clear(&err);
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	const char *nul = (mode & 8) ? memchr(text, '\0', len) : NULL;
	kt_kube_file files[2] = {
		{ "fuzz", base, text, nul ? (size_t)(nul - text) : len },
		{ "fuzz2", base ? "/base2" : NULL, nul ? nul + 1 : NULL,
		  nul ? len - (size_t)(nul - text) - 1 : 0 },
	};
	kt_code rc = kt_kube_config_parse_files(&cfg, files, nul ? 2 : 1, context, &err);
	if (rc == KT_OK) {
		if (!cfg.server || (strncmp(cfg.server, "https://", 8) && strncmp(cfg.server, "http://", 7)))
			abort();
		if (!cfg.namespace || !kt_kube_valid_label(cfg.namespace))
			abort();
		int has_cert = cfg.cert_file || cfg.cert_pem, has_key = cfg.key_file || cfg.key_pem;
		if (has_cert != has_key)
			abort();
		if ((cfg.ca_file && cfg.ca_pem) || (cfg.cert_file && cfg.cert_pem) ||
		    (cfg.key_file && cfg.key_pem))
			abort();
		if (cfg.token && cfg.token_file)
			abort();
		if (base && cfg.ca_file && cfg.ca_file[0] != '/')
			abort();
		if (cfg.exec) {
			if (!cfg.exec->command || !cfg.exec->api_version ||
			    strncmp(cfg.exec->api_version, "client.authentication.k8s.io/v1", 31))
				abort();
			if (cfg.token || cfg.token_file || cfg.cert_file || cfg.cert_pem)
				abort();
			for (size_t i = 0; i < cfg.exec->n_args; i++)
				if (!cfg.exec->args[i])
					abort();
			for (size_t i = 0; i < cfg.exec->n_env; i++)
				if (!strchr(cfg.exec->env[i], '='))
					abort();
			if (base && strchr(cfg.exec->command, '/') && cfg.exec->command[0] != '/')
				abort();
		}
		kt_kube_config_release(&cfg);
	} else {
		if (cfg.server || cfg.token || cfg.source)
			abort();
		if (!strstr(err.msg, "'fuzz") || err.code != rc)
			abort();
	}
	kt_log_clear_secrets();
	return 0;
}
