/*
 * The floor for `nsapply run examples/all-kinds.json -- CMD` doing the same
 * work (issue 15): only the system calls the job needs, no parsing, no
 * checks, no supervision, no reporting.
 *
 * A map of 65,536 ids (`0 100000 65536`) needs a writer with CAP_SETUID in
 * the parent user namespace (user_namespaces(7)), so the process that
 * unshares the user namespace cannot write it itself: its parent does,
 * after a sync over a pipe pair. Then:
 *
 *   P: fork C; wait for C's byte; write C's uid_map and gid_map; answer
 *   C: unshare(CLONE_NEWUSER); byte to P; wait; setresgid/setresuid(0);
 *      unshare(pid, uts, ipc, net, cgroup, mount, time); make / rslave;
 *      dumpable; write timens_offsets; fork G (pid and time apply to children)
 *   G: execvp CMD
 *
 * C waits for G and P for C; P exits with CMD's status. Three processes,
 * one sync: nsapply adds a keeper and the checks of DESIGN §8.
 *
 * Built by benches/compare: gcc -O2 -o raw-all-kinds benches/raw-all-kinds.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
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
		_exit(1);
	}
	close(fd);
}

static int status_of(pid_t pid)
{
	int status;
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void child(int to_parent, int from_parent, char **argv)
{
	char byte = 0;
	pid_t g;
	if (unshare(CLONE_NEWUSER) < 0) {
		perror("unshare(user)");
		_exit(1);
	}
	if (write(to_parent, &byte, 1) != 1 || read(from_parent, &byte, 1) != 1)
		_exit(1);
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
		perror("setresuid");
		_exit(1);
	}
	if (unshare(CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
		    CLONE_NEWCGROUP | CLONE_NEWNS | CLONE_NEWTIME) < 0) {
		perror("unshare");
		_exit(1);
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
		perror("mount");
		_exit(1);
	}
	/* The id change made C not dumpable: its /proc files would be the
	 * parent namespace's root's, which C is not. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	write_file("/proc/self/timens_offsets",
		   "monotonic 86400 0\nboottime 172800 500000000\n");
	g = fork();
	if (g < 0) {
		perror("fork");
		_exit(1);
	}
	if (g == 0) {
		execvp(argv[1], argv + 1);
		perror("execvp");
		_exit(127);
	}
	_exit(status_of(g));
}

int main(int argc, char **argv)
{
	int up[2], down[2];
	char byte, path[64];
	pid_t c;

	if (argc < 2) {
		fprintf(stderr, "usage: raw-all-kinds CMD [ARG...]\n");
		return 2;
	}
	if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0) {
		perror("pipe2");
		return 1;
	}
	c = fork();
	if (c < 0) {
		perror("fork");
		return 1;
	}
	if (c == 0)
		child(up[1], down[0], argv);
	if (read(up[0], &byte, 1) != 1) {
		fprintf(stderr, "raw-all-kinds: the child ended before its sync\n");
		return status_of(c);
	}
	snprintf(path, sizeof(path), "/proc/%d/uid_map", c);
	write_file(path, "0 100000 65536\n");
	snprintf(path, sizeof(path), "/proc/%d/gid_map", c);
	write_file(path, "0 100000 65536\n");
	if (write(down[1], &byte, 1) != 1)
		return 1;
	return status_of(c);
}
