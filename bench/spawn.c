/*
 * bench/spawn.c - run one command and report its wall time, CPU time and
 * peak RSS, for bench/bench.py.
 *
 *   spawn OUTPUT RESULT PROGRAM [ARG...]
 *
 * PROGRAM runs with stdin from /dev/null and stdout+stderr to OUTPUT.  When
 * it ends, RESULT gets one line:
 *   wall_ns user_us sys_us maxrss_kib exit_code
 * (exit_code is 128+N when killed by signal N).  spawn exits 0 when it could
 * run PROGRAM at all, else 127.
 *
 * Why not os.wait4() in Python directly: Linux carries the RSS high-water
 * mark of the image a process had before execve() into its ru_maxrss, and a
 * child forked (or vforked) from Python starts as a copy of a ~40 MiB Python
 * process, so every child would report at least that.  This launcher is a
 * few hundred KiB, so the floor it leaves is about 1 MiB.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: spawn OUTPUT RESULT PROGRAM [ARG...]\n");
		return 127;
	}
	int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (out < 0 || in < 0) {
		perror("spawn: open");
		return 127;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		perror("spawn: fork");
		return 127;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);   /* dies with the launcher */
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		execvp(argv[3], argv + 3);
		perror("spawn: exec");
		_exit(127);
	}
	int status = 0;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0) {
		/* EINTR only: nothing else can fail for our own child */
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long long wall = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	FILE *res = fopen(argv[2], "w");
	if (!res) {
		perror("spawn: result");
		return 127;
	}
	fprintf(res, "%lld %lld %lld %ld %d\n", wall,
	        (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
	        (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec,
	        ru.ru_maxrss, code);
	return fclose(res) == 0 ? 0 : 127;
}
