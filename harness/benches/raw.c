/*
 * The floor for `nsapply run examples/all-kinds.json -- CMD`: only the
 * system calls the job needs, no parsing, no checks, no reporting.
 *
 *   unshare(all eight CLONE_NEW* flags); write setgroups, uid_map, gid_map
 *   (root in the new user namespace is the caller, as with
 *   `unshare --map-root-user`); fork (pid and time apply to children);
 *   the child execs CMD; the parent waits and exits with its status.
 *
 * Built by benches/compare: gcc -O2 -o raw benches/raw.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror(path);
		exit(1);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	char line[64];
	unsigned uid = getuid(), gid = getgid();
	int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
		    CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWNS | CLONE_NEWTIME;
	int status;
	pid_t child;

	if (argc < 2) {
		fprintf(stderr, "usage: raw CMD [ARG...]\n");
		return 2;
	}
	if (unshare(flags) < 0) {
		perror("unshare");
		return 1;
	}
	write_file("/proc/self/setgroups", "deny");
	snprintf(line, sizeof(line), "0 %u 1\n", uid);
	write_file("/proc/self/uid_map", line);
	snprintf(line, sizeof(line), "0 %u 1\n", gid);
	write_file("/proc/self/gid_map", line);
	child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		execvp(argv[1], argv + 1);
		perror("execvp");
		_exit(127);
	}
	if (waitpid(child, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
