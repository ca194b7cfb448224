/*
 * kube_flags.c - --kubeconfig FILE and --context NAME, shared by every
 * command that talks to the Kubernetes API, and loading the config they
 * name (src/kube's kt_kube_config_resolve: --kubeconfig, else $KUBECONFIG
 * merged, else ~/.kube/config, else in-cluster).
 */
#include <string.h>

#include "cli.h"
#include "kube/kube.h"

kt_opt *kt_cli_kube_opts(kt_cli_kube_flags *f, kt_opt *o, const char *kubeconfig_help)
{
	const kt_opt list[] = {
		{ "kubeconfig", 0, "FILE",
		  kubeconfig_help ? kubeconfig_help
		                  : "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, "
		                    "then the pod's service account)",
		  &f->kubeconfig, NULL },
		{ "context", 0, "NAME", "kubeconfig context to use (default: its current-context)",
		  &f->context, NULL },
	};
	memcpy(o, list, sizeof(list));
	return o + sizeof(list) / sizeof(list[0]);
}

int kt_cli_kube_config(const kt_cli_kube_flags *f, kt_kube_config *out)
{
	kt_error err;
	kt_error_clear(&err);
	if (kt_kube_config_resolve(out, f->kubeconfig, f->context, &err) != KT_OK)
		return kt_cli_fail(&err);
	return 0;
}

kt_opt *kt_cli_kube_ns_opts(kt_cli_kube_flags *f, const char **ns, const char *dflt, kt_opt *o,
                            const char *ns_help)
{
	memset(f, 0, sizeof(*f));
	*ns = dflt;
	o = kt_cli_kube_opts(f, o, NULL);
	*o++ = (kt_opt){ "namespace", 'n', "NS", ns_help, ns, NULL };
	return o;
}
