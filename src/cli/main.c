/*
 * main.c - entry point, the one command table and global option parsing.
 *
 * Dispatch: the leading words of argv that are not flags name a command
 * ("etcd snapshot save"); the longest path in commands[] that matches wins.
 * A prefix of paths ("etcd", "etcd snapshot") prints the commands under it.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>

#include "cli.h"

volatile sig_atomic_t kt_cli_cancel;
volatile sig_atomic_t kt_cli_reload;

static const kt_command commands[] = {
	{ "etcd snapshot save", "stream a snapshot from a live etcd into a file",
	  kt_cmd_etcd_snapshot_save },
	{ "etcd snapshot status", "print hash, revision, keys, size and version of a snapshot",
	  kt_cmd_etcd_snapshot_status },
	{ "etcd snapshot verify", "check a snapshot page by page and count the objects it holds",
	  kt_cmd_etcd_snapshot_verify },
	{ "etcd backup", "one backup cycle of this control-plane node (save, log, retention)",
	  kt_cmd_etcd_backup },
	{ "etcd agent", "the backup agent: a cycle at start, then every --interval",
	  kt_cmd_etcd_agent },
	{ "etcd backups list", "list the backups in the backup directory",
	  kt_cmd_etcd_backups_list },
	{ "etcd restore", "restore an etcd data directory from a backup (file, latest, remote)",
	  kt_cmd_etcd_restore },
	{ "etcd recover", "the recovery runbook of a static-pod node: stop, restore, "
	  "--force-new-cluster, restart", kt_cmd_etcd_recover },
	{ "etcd drill", "prove a backup restores: restore it into a throwaway etcd and compare",
	  kt_cmd_etcd_drill },
	{ "repo init", "create an encrypted, deduplicating repository (directory or S3)",
	  kt_cmd_repo_init },
	{ "repo backup", "back up files and directories into a new snapshot", kt_cmd_repo_backup },
	{ "repo restore", "restore a snapshot into an empty directory", kt_cmd_repo_restore },
	{ "repo snapshots", "list the snapshots", kt_cmd_repo_snapshots },
	{ "repo ls", "list what a snapshot holds", kt_cmd_repo_ls },
	{ "repo check", "check the repository (--read-data: every byte)", kt_cmd_repo_check },
	{ "repo stats", "what the repository holds and stores", kt_cmd_repo_stats },
	{ "repo forget", "remove snapshots by a tiered retention policy", kt_cmd_repo_forget },
	{ "repo prune", "remove the data no snapshot needs", kt_cmd_repo_prune },
	{ "repo unlock", "remove stale locks left by killed processes", kt_cmd_repo_unlock },
	{ "snapshot create", "take a CSI VolumeSnapshot of a PVC (--wait: until ready)",
	  kt_cmd_snapshot_create },
	{ "snapshot list", "list VolumeSnapshots with readiness, size and snapshotHandle",
	  kt_cmd_snapshot_list },
	{ "snapshot delete", "delete a VolumeSnapshot", kt_cmd_snapshot_delete },
	{ "snapshot restore", "restore a VolumeSnapshot into a new PVC", kt_cmd_snapshot_restore },
	{ "doctor", "check that the cluster is ready: snapshot CRDs, classes, RBAC, etcd",
	  kt_cmd_doctor },
	{ "app backup", "capture a namespace's objects into a restore point in the repository",
	  kt_cmd_app_backup },
	{ "app restore", "recreate an application from a restore point, in dependency order",
	  kt_cmd_app_restore },
	{ "app import", "list or restore the restore points another cluster exported to a profile",
	  kt_cmd_app_import },
	{ "restorepoint list", "list the application restore points in the repository",
	  kt_cmd_restorepoint_list },
	{ "restorepoint show", "what a restore point holds: objects, volume snapshots, skips, "
	  "failures", kt_cmd_restorepoint_show },
	{ "restorepoint delete", "delete restore points and the volume snapshots they kept",
	  kt_cmd_restorepoint_delete },
	{ "mover backup", "back up a mounted volume (what a mover Job runs; repository from env)",
	  kt_cmd_mover_backup },
	{ "mover restore", "restore a volume snapshot into a mounted volume (a mover Job)",
	  kt_cmd_mover_restore },
	{ "policy create", "create a backup policy: namespaces, schedule, tiered retention, profile",
	  kt_cmd_policy_create },
	{ "policy list", "list backup policies and their last run", kt_cmd_policy_list },
	{ "policy run", "run a backup policy now", kt_cmd_policy_run },
	{ "policy delete", "delete a backup policy (its restore points stay)",
	  kt_cmd_policy_delete },
	{ "controller", "run backup policies on their schedules, recording each run",
	  kt_cmd_controller },
	{ "profile create", "create an export profile (S3 location, keys in a Secret)",
	  kt_cmd_profile_create },
	{ "profile list", "list export profiles and their last check", kt_cmd_profile_list },
	{ "profile check", "prove a profile works: keys, bucket, Object Lock, a probe object",
	  kt_cmd_profile_check },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char exit_codes[] =
	"Exit codes:\n"
	"  0  success\n"
	"  1  failure (unreachable endpoint, refused credentials, I/O error, ...)\n"
	"  2  usage error (unknown command or flag, bad flag value)\n"
	"  3  verification failed (the snapshot is corrupt or incomplete)\n";

static const char global_flags[] =
	"Global flags (accepted by every command):\n"
	"  -o, --output FORMAT    table (default), json or yaml, where output is data\n"
	"      --log-format F     text (default) or json for log lines on stderr\n"
	"  -v, --verbose          more detail in logs (repeat for debug)\n"
	"  -h, --help             help for the command\n";

static int starts_with_words(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	return !strncmp(path, prefix, n) && (path[n] == ' ' || path[n] == '\0' || n == 0);
}

static void print_commands(FILE *f, const char *prefix)
{
	size_t width = 0;
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (starts_with_words(commands[i].path, prefix) && strlen(commands[i].path) > width)
			width = strlen(commands[i].path);
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (starts_with_words(commands[i].path, prefix))
			fprintf(f, "  kontinuity %-*s  %s\n", (int)width, commands[i].path,
			        commands[i].summary);
}

static void print_top_help(FILE *f)
{
	fprintf(f,
	        "kontinuity %s - keep Kubernetes workloads alive through loss\n\n"
	        "Usage: kontinuity GROUP COMMAND [flags]\n\n"
	        "Commands:\n", KT_VERSION);
	print_commands(f, "");
	fprintf(f,
	        "\nExamples:\n"
	        "  kontinuity etcd snapshot save /var/backups/etcd.db --endpoint https://127.0.0.1:2379 \\\n"
	        "      --cacert ca.crt --cert client.crt --key client.key\n"
	        "  kontinuity etcd snapshot status /var/backups/etcd.db -o json\n"
	        "  kontinuity etcd snapshot verify /var/backups/etcd.db\n\n"
	        "%s\n%s\n"
	        "Run 'kontinuity GROUP --help' or 'kontinuity GROUP COMMAND --help' for more.\n",
	        global_flags, exit_codes);
}

static void on_signal(int sig)
{
	(void)sig;
	kt_cli_cancel = 1;
}

void kt_cli_catch_signals(void)
{
	/* The first SIGINT/SIGTERM asks the running command to stop cleanly; the
	 * handler then resets, so a second one ends the process at once. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void on_hup(int sig)
{
	(void)sig;
	kt_cli_reload = 1;
}

void kt_cli_catch_signals_agent(void)
{
	/* A daemon: SIGTERM/SIGINT stop it after the current step (no reset: a
	 * cycle in progress is canceled cleanly); SIGHUP asks for a reload. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
}

/* Output that could not be written is a failure, not a silent success. */
static int finish(int rc)
{
	if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
		fprintf(stderr, "kontinuity: cannot write the output: %s\n", strerror(errno));
		return 1;
	}
	return rc;
}

static int run(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);

	/* Collect the command words; global flags may come before them and are
	 * handed to the command after its own arguments. */
	char path[256] = "";
	char **pre = kt_xcalloc((size_t)argc + 1, sizeof(char *));
	int n_pre = 0, i = 1;
	const kt_command *cmd = NULL;
	for (; i < argc && !cmd; i++) {
		const char *a = argv[i];
		if (a[0] == '-') {
			int takes_value = !strcmp(a, "-o") || !strcmp(a, "--output") ||
			                  !strcmp(a, "--log-format");
			int is_global = takes_value || !strcmp(a, "-v") || !strcmp(a, "--verbose") ||
			                !strncmp(a, "--output=", 9) || !strncmp(a, "--log-format=", 13) ||
			                !strcmp(a, "-h") || !strcmp(a, "--help") ||
			                !strcmp(a, "--version");
			if (!is_global) {
				/* Do not echo what follows: it may be a flag's secret value. */
				fprintf(stderr, "kontinuity: flag '%.*s' must come after the command "
				        "(kontinuity GROUP COMMAND [flags])\n",
				        (int)strcspn(a, "="), a);
				free(pre);
				return 2;
			}
			pre[n_pre++] = argv[i];
			if (takes_value && i + 1 < argc)
				pre[n_pre++] = argv[++i];
			continue;
		}
		size_t len = strlen(path);
		if (len + strlen(a) + 2 > sizeof(path))
			break;
		snprintf(path + len, sizeof(path) - len, "%s%s", len ? " " : "", a);
		for (size_t c = 0; c < N_COMMANDS; c++)
			if (!strcmp(commands[c].path, path))
				cmd = &commands[c];
	}
	if (cmd) {
		char **args = kt_xcalloc((size_t)argc + 1, sizeof(char *));
		int n = 0;
		for (int j = i; j < argc; j++)
			args[n++] = argv[j];
		for (int j = 0; j < n_pre; j++)
			args[n++] = pre[j];
		kt_globals g = { KT_OUT_TABLE, 0, KT_LOG_TEXT };
		int rc = cmd->fn(n, args, &g);
		free(args);
		free(pre);
		return rc;
	}
	free(pre);

	int want_help = 0;
	for (int j = 1; j < argc; j++) {
		if (!strcmp(argv[j], "--version")) {
			printf("kontinuity %s\n", KT_VERSION);
			return 0;
		}
		if (!strcmp(argv[j], "-h") || !strcmp(argv[j], "--help") || !strcmp(argv[j], "help"))
			want_help = 1;
	}
	if (!path[0]) {
		print_top_help(want_help ? stdout : stderr);
		return want_help ? 0 : 2;
	}
	int known_prefix = 0;
	for (size_t c = 0; c < N_COMMANDS; c++)
		if (starts_with_words(commands[c].path, path))
			known_prefix = 1;
	if (known_prefix) {
		FILE *f = want_help ? stdout : stderr;
		fprintf(f, "Usage: kontinuity %s COMMAND [flags]\n\nCommands:\n", path);
		print_commands(f, path);
		fprintf(f, "\nRun 'kontinuity %s COMMAND --help' for a command's flags and examples.\n",
		        path);
		return want_help ? 0 : 2;
	}
	fprintf(stderr, "kontinuity: unknown command '%s'\n", path);
	fprintf(stderr, "Run 'kontinuity --help' for the list of commands.\n");
	return 2;
}

int main(int argc, char **argv)
{
	/* Blocks of 256 KiB and more come from mmap and go back to the system
	 * when freed.  glibc's default threshold rises to the largest block
	 * freed so far (up to 32 MiB), after which a backup's buffers of a few
	 * MiB (index files, tree packs) stay in its thread arenas, counted as
	 * resident: 5 MiB of a 67 MiB backup peak (docs/index-memory.md). */
	mallopt(M_MMAP_THRESHOLD, 256 << 10);
	return finish(run(argc, argv));
}
