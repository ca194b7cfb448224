/*
 * proc.c - running other programs: etcdutl for a restore, a throwaway etcd
 * for a restore drill.
 *
 * Invariants:
 *   1. A child never outlives us by accident: it gets PR_SET_PDEATHSIG
 *      (SIGKILL) before exec, and every path that returns an error has
 *      reaped it.
 *   2. Output of a waited-for child is bounded: only the last
 *      KT_PROC_OUTPUT_MAX bytes of stdout+stderr are kept.
 *   3. Arguments go to execv as a vector; no shell ever sees them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

kt_code kt_proc_find(const char *name, char *out, size_t outlen, kt_error *err)
{
	struct stat st;
	if (!name || !*name)
		return kt_error_set(err, KT_EUSAGE, "no program name given");
	if (strchr(name, '/')) {
		if (stat(name, &st) != 0)
			return kt_error_sys(err, KT_ENOTFOUND, errno, "cannot find program '%s'", name);
		if (!S_ISREG(st.st_mode) || access(name, X_OK) != 0)
			return kt_error_set(err, KT_EPERM, "'%s' is not an executable file", name);
		if ((size_t)snprintf(out, outlen, "%s", name) >= outlen)
			return kt_error_set(err, KT_ELIMIT, "program path '%s' is too long", name);
		return KT_OK;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);
		if (n && (size_t)snprintf(out, outlen, "%.*s/%s", (int)n, path, name) < outlen &&
		    stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return KT_OK;
		path += n + (colon ? 1 : 0);
	}
	out[0] = '\0';
	return kt_error_set(err, KT_ENOTFOUND, "cannot find '%s' on PATH (install it or give "
	                    "its full path)", name);
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child_exec(const char *const argv[], int out_fd, pid_t parent, const char *cwd,
                       char *const *envp, int stdout_only)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);   /* the parent died before the death signal was armed */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull >= 0)
		dup2(devnull, 0);
	if (out_fd >= 0) {
		dup2(out_fd, 1);
		if (!stdout_only)
			dup2(out_fd, 2);
	}
	signal(SIGPIPE, SIG_DFL);
	if (cwd && chdir(cwd) != 0)
		_exit(127);
	if (envp)
		execve(argv[0], (char *const *)argv, envp);
	else
		execv(argv[0], (char *const *)argv);
	static const char msg[] = "exec failed\n";
	ssize_t w = write(2, msg, sizeof(msg) - 1);
	(void)w;
	_exit(127);
}

/* With SIGCHLD ignored (a disposition that survives exec from whoever
 * started us) the kernel reaps children itself and waitpid fails: a failed
 * etcdutl would look like a success.  Put the default back. */
static void reap_children_ourselves(void)
{
	struct sigaction sa;
	if (sigaction(SIGCHLD, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
		sa.sa_handler = SIG_DFL;
		sa.sa_flags = 0;
		sigaction(SIGCHLD, &sa, NULL);
	}
}

static void result_from_status(kt_proc_result *res, int status)
{
	res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

kt_code kt_proc_run(const char *const argv[], const kt_proc_opts *o, kt_proc_result *res,
                    kt_error *err)
{
	memset(res, 0, sizeof(*res));
	kt_buf_init(&res->output, o && o->output_max ? o->output_max : 2 * KT_PROC_OUTPUT_MAX);
	res->exit_code = -1;
	reap_children_ourselves();
	pid_t parent = getpid();
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return kt_error_sys(err, KT_EIO, errno, "cannot run '%s'", argv[0]);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return kt_error_sys(err, KT_EIO, errno, "cannot run '%s'", argv[0]);
	}
	if (pid == 0)
		child_exec(argv, p[1], parent, NULL, o ? o->envp : NULL, o && o->stdout_only);
	close(p[1]);
	int64_t deadline = o && o->timeout_ms > 0 ? kt_now_ms() + o->timeout_ms : 0;
	kt_code rc = KT_OK;
	for (;;) {
		if (o && o->cancel && *o->cancel) {
			rc = kt_error_set(err, KT_ECANCELED, "interrupted while '%s' ran", argv[0]);
			break;
		}
		if (deadline && kt_now_ms() > deadline) {
			rc = kt_error_set(err, KT_ETRANSIENT, "'%s' did not finish within %lld s",
			                  argv[0], (long long)(o->timeout_ms / 1000));
			break;
		}
		struct pollfd pf = { p[0], POLLIN, 0 };
		int n = poll(&pf, 1, 100);
		if (n < 0 && errno != EINTR) {
			rc = kt_error_sys(err, KT_EIO, errno, "cannot read the output of '%s'", argv[0]);
			break;
		}
		if (n <= 0)
			continue;
		char chunk[4096];
		ssize_t r = read(p[0], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;   /* EOF: the child closed its output (normally: exited) */
		if (o && o->output_max && res->output.len + (size_t)r > o->output_max) {
			rc = kt_error_set(err, KT_ELIMIT, "'%s' printed more than %zu bytes", argv[0],
			                  o->output_max);
		} else {
			if (res->output.len + (size_t)r > res->output.max)
				kt_buf_consume(&res->output, res->output.len + (size_t)r - res->output.max);
			kt_buf_add(&res->output, chunk, (size_t)r, NULL);
		}
		if (o && o->secret_output)
			explicit_bzero(chunk, sizeof(chunk));
		if (rc)
			break;
	}
	close(p[0]);
	if (rc)
		kill(pid, SIGKILL);
	/* The output closed; the exit follows (or the deadline kills it). */
	int status = 0;
	pid_t w;
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 || (w < 0 && errno == EINTR)) {
		if (!rc && ((deadline && kt_now_ms() > deadline) || (o && o->cancel && *o->cancel))) {
			rc = kt_error_set(err, o->cancel && *o->cancel ? KT_ECANCELED : KT_ETRANSIENT,
			                  "'%s' closed its output but did not exit", argv[0]);
			kill(pid, SIGKILL);
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (w < 0) {
		int e = errno;
		return rc ? rc : kt_error_sys(err, KT_EIO, e, "cannot learn how '%s' ended", argv[0]);
	}
	result_from_status(res, status);
	if (!(o && o->output_max) && res->output.len > KT_PROC_OUTPUT_MAX)
		kt_buf_consume(&res->output, res->output.len - KT_PROC_OUTPUT_MAX);
	if (!rc && res->exit_code == 127 && !(o && o->stdout_only) &&
	    strstr(res->output.data, "exec failed"))
		rc = kt_error_set(err, KT_ENOTFOUND, "cannot execute '%s'", argv[0]);
	return rc;
}

void kt_proc_result_release(kt_proc_result *res)
{
	kt_buf_release(&res->output);
}

const char *kt_proc_last_line(const kt_proc_result *res, char *out, size_t outlen)
{
	const char *d = res->output.data;
	size_t n = res->output.len;
	while (n && (d[n - 1] == '\n' || d[n - 1] == '\r' || d[n - 1] == ' '))
		n--;
	size_t start = n;
	while (start && d[start - 1] != '\n')
		start--;
	size_t len = n - start;
	if (len >= outlen)
		len = outlen - 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[start + i];
		out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[len] = '\0';
	return out;
}

kt_code kt_proc_spawn(const char *const argv[], const char *cwd, const char *log_path,
                      pid_t *pid_out, kt_error *err)
{
	int fd = -1;
	if (log_path) {
		fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0)
			return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'",
			                    log_path);
	}
	reap_children_ourselves();
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return kt_error_sys(err, KT_EIO, e, "cannot start '%s'", argv[0]);
	}
	if (pid == 0)
		child_exec(argv, fd, parent, cwd, NULL, 0);
	if (fd >= 0)
		close(fd);
	*pid_out = pid;
	return KT_OK;
}

int kt_proc_exited(pid_t pid, kt_proc_result *res)
{
	int status;
	pid_t r;
	while ((r = waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return 0;   /* running; r < 0 (ECHILD) means it is not ours to wait for */
	if (res) {
		memset(res, 0, sizeof(*res));
		kt_buf_init(&res->output, 0);
		if (r == pid)
			result_from_status(res, status);
		else
			res->exit_code = -1;
	}
	return 1;
}

void kt_proc_stop(pid_t pid, int64_t grace_ms)
{
	if (pid <= 0)
		return;
	if (kill(pid, SIGTERM) != 0)
		return;
	int64_t deadline = kt_now_ms() + grace_ms;
	while (kt_now_ms() < deadline) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}
