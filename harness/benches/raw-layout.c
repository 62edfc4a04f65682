/*
 * The floor of nsapply's process layout (DESIGN §8, src/run/mod.rs) doing
 * the work of `nsapply run examples/all-kinds.json -- CMD` (issue 15):
 * the same four processes, the same two round trips, the same hand-over
 * and the same system calls of the layout, with fixed one-byte messages
 * instead of JSON and nothing of nsapply's own on top.
 *
 *   P0 (the caller): opens /proc and checks it is a procfs root; blocks the
 *      forwarded signals and reads them from a signalfd; forks K; takes K's
 *      pidfd; not dumpable; receives C1's pidfd from K (SCM_RIGHTS); then
 *      polls the signalfd, K's pidfd and the channel to C1:
 *        "id-mapping" -> writes C1's uid_map and gid_map (0 100000 65536)
 *          through the checked procfs, in the directory of the pid the
 *          procfs gives C1's pidfd (fdinfo, checked again after the
 *          open); answers;
 *        "applied"    -> answers "start" (the start gate);
 *        "exited"     -> CMD's status;
 *      until K has ended and the channel is closed; reaps K; exits with
 *      CMD's status.
 *   K (the keeper): blocks every signal; not dumpable; child subreaper;
 *      pidfd of P0; forks C1; leaves the process group; pidfd of C1, sent
 *      to P0 over a unix socket (SCM_RIGHTS); polls P0's and C1's pidfds
 *      until C1 ends; reaps it; reads its own children list (what C1
 *      left) through the checked procfs; exits.
 *   C1: dies with K (parent-death signal, checked against the race);
 *      every signal action to its default, then every signal blocked;
 *      dumpable (for the parent's map writes); child subreaper; the go and
 *      report pipes; unshare(user); "id-mapping" to P0, waits; not
 *      dumpable; setresgid/setresuid(0) keeping the parent-death signal;
 *      unshare of pid, uts, ipc, net, cgroup, mount, one kind a call
 *      (DESIGN §4); / recursively slave; unshare(time); timens_offsets
 *      (dumpable around the write); drops its parent-death signal and
 *      forks C2; pidfd of C2; "applied" to P0; waits for "start" (and
 *      watches K's pipe); checks K still lives; one byte on the go pipe;
 *      polls the channel, K's pipe, C2's pidfd and the report pipe until
 *      C2 ends; reaps it; reads its own children list; reads the report
 *      pipe to its end; "exited" with the status to P0.
 *   C2: parent-death signal; waits for the go byte; "exec" on the report
 *      pipe; empty signal mask; execv CMD.
 *
 * Left out, as nsapply's own and not the layout's: the config's JSON
 * parsing and validation, the plan and trace, JSON messages, the thread
 * count of /proc/self/stat, the caller's signal state saved and given back
 * (run() as a library function: SIGCHLD blocked around the first fork,
 * SIGPIPE/SIGXFSZ blocked for the trace file), the terminal checks of
 * forwarded signals, C2's second reset of every signal action (C1's
 * stands; C2 empties its mask), and every error path beyond exiting
 * non-zero.
 *
 * With --root-map, the map and offsets of harness/benches/root-map.json
 * (`0 0 1`, boottime 3600): the layout's floor for issue 15's first goal.
 *
 * Built by harness/benches/compare:
 *   gcc -O2 -Wall -Wextra -o raw-layout harness/benches/raw-layout.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

/* all-kinds.json's map and offsets; root-map.json's with --root-map. */
static const char *map = "0 100000 65536\n";
static const char *offsets = "monotonic 86400 0\nboottime 172800 500000000\n";

/* Messages: C1 -> P0 */
#define MSG_SYNC 'S'    /* id-mapping */
#define MSG_APPLIED 'A' /* the plan is applied, C2 waits */
#define MSG_EXITED 'X'  /* followed by CMD's status, one byte */
/* P0 -> C1 */
#define MSG_ACK 'K'
#define MSG_START 'G'

static int proc_root = -1;

static void die(const char *what)
{
	perror(what);
	_exit(1);
}

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* openat2 beneath the checked procfs root, as ProcRoot::open_in. */
static int proc_open(int dir, const char *path, int flags, int no_symlinks)
{
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_CLOEXEC),
		.resolve = RESOLVE_NO_XDEV | RESOLVE_BENEATH |
			   (no_symlinks ? RESOLVE_NO_SYMLINKS : 0),
	};
	return (int)syscall(SYS_openat2, dir, path, &how, sizeof(how));
}

static ssize_t proc_read(const char *path, char *buf, size_t size)
{
	int fd = proc_open(proc_root, path, O_RDONLY, 0);
	ssize_t n;
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

static void open_proc_root(void)
{
	struct statfs fs;
	struct stat st;
	proc_root = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (proc_root < 0 || fstatfs(proc_root, &fs) < 0 ||
	    fs.f_type != PROC_SUPER_MAGIC || fstat(proc_root, &st) < 0 ||
	    st.st_ino != 1)
		die("/proc");
}

/* The pid the checked procfs gives a pidfd (its fdinfo's Pid: line). */
static int pid_of(int pidfd)
{
	char path[64], buf[4096], *p;
	snprintf(path, sizeof(path), "self/fdinfo/%d", pidfd);
	if (proc_read(path, buf, sizeof(buf)) < 0 || !(p = strstr(buf, "Pid:")))
		die("fdinfo");
	return atoi(p + 4);
}

static void write_at(int dir, const char *name, const char *text)
{
	int fd = proc_open(dir, name, O_WRONLY, 1);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die(name);
	close(fd);
}

/* P0's work at id-mapping: C1's maps, in the /proc directory of its
 * pidfd, checked to still be its pid after the open. */
static void write_id_maps(int c1)
{
	char name[16];
	int n = pid_of(c1), dir;
	if (n <= 0)
		die("pid of C1");
	snprintf(name, sizeof(name), "%d", n);
	dir = proc_open(proc_root, name, O_PATH | O_DIRECTORY, 1);
	if (dir < 0 || pid_of(c1) != n)
		die("/proc/C1");
	write_at(dir, "uid_map", map);
	write_at(dir, "gid_map", map);
	close(dir);
}

static void send_byte(int fd, char b)
{
	if (send(fd, &b, 1, MSG_NOSIGNAL) != 1)
		die("send");
}

static int recv_byte(int fd)
{
	char b;
	ssize_t n = read(fd, &b, 1);
	return n == 1 ? (unsigned char)b : -1;
}

static int status_of(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void set_pdeathsig(int sig)
{
	if (prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) < 0)
		die("PR_SET_PDEATHSIG");
}

/* Parent-death signal, and the race with a parent already gone. */
static void die_with_parent(pid_t parent)
{
	set_pdeathsig(SIGKILL);
	if (getppid() != parent)
		_exit(128 + SIGKILL);
}

static void block_all(void)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

/* Every action to its default, the real-time ones included (through the
 * system call: glibc refuses 32 and 33). */
static void default_actions(void)
{
	unsigned long act[4] = {0, 0, 0, 0};
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, act, NULL, 8);
}

/* Kills and reaps the children of this process, found through the
 * checked procfs (what C1 or CMD left behind): one read when none. */
static void end_children(void)
{
	char buf[4096], *p, *end;
	if (proc_read("thread-self/children", buf, sizeof(buf)) <= 0)
		return;
	for (p = buf; *p; p = end) {
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		kill((pid_t)pid, SIGKILL);
		waitpid((pid_t)pid, NULL, 0);
	}
}

static void unshare_one(int flag)
{
	if (unshare(flag) < 0)
		die("unshare");
}

/* C2: waits for the go byte, reports "exec", execs CMD. */
static void command_main(int go, int report, char **argv)
{
	sigset_t none;
	if (recv_byte(go) != 1)
		_exit(1);
	if (write(report, "E", 1) != 1)
		_exit(1);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(argv[1], argv + 1);
	_exit(127);
}

/* C1: applies the plan, forks C2, lets it go on P0's start, supervises. */
static void applier_main(int channel, int keeper_alive, pid_t keeper, char **argv)
{
	int go[2], report[2], c2fd, status = 0, exec_reported = 0;
	unsigned char st;
	pid_t c2, was_parent;

	die_with_parent(keeper);
	default_actions();
	block_all();
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		die("subreaper");
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0)
		die("pipe2");

	unshare_one(CLONE_NEWUSER);
	send_byte(channel, MSG_SYNC);
	if (recv_byte(channel) != MSG_ACK)
		_exit(1);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* The id change clears the parent-death signal: set it back. */
	was_parent = getppid();
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		die("setresuid");
	set_pdeathsig(SIGKILL);
	if (getppid() != was_parent)
		raise(SIGKILL);
	unshare_one(CLONE_NEWPID);
	unshare_one(CLONE_NEWUTS);
	unshare_one(CLONE_NEWIPC);
	unshare_one(CLONE_NEWNET);
	unshare_one(CLONE_NEWCGROUP);
	unshare_one(CLONE_NEWNS);
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		die("mount");
	unshare_one(CLONE_NEWTIME);
	/* Not dumpable since the id change: /proc/self is host root's then. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	{
		int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, offsets, strlen(offsets)) != (ssize_t)strlen(offsets))
			die("timens_offsets");
		close(fd);
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	/* C1 lives to end CMD when P0 dies; C2 dies with C1. */
	set_pdeathsig(0);
	c2 = fork();
	if (c2 < 0)
		die("fork C2");
	if (c2 == 0) {
		set_pdeathsig(SIGKILL);
		close(channel);
		close(keeper_alive);
		close(go[1]);
		close(report[0]);
		command_main(go[0], report[1], argv);
	}
	close(go[0]);
	close(report[1]);
	c2fd = pidfd_open(c2);
	if (c2fd < 0)
		die("pidfd_open C2");

	send_byte(channel, MSG_APPLIED);
	for (;;) {
		struct pollfd fds[2] = {{channel, POLLIN, 0}, {keeper_alive, POLLIN, 0}};
		if (poll(fds, 2, -1) < 0)
			die("poll");
		if (fds[1].revents)
			_exit(1); /* the keeper died */
		if (fds[0].revents) {
			if (recv_byte(channel) != MSG_START)
				_exit(1);
			break;
		}
	}
	{
		struct pollfd k = {keeper_alive, POLLIN, 0};
		if (poll(&k, 1, 0) != 0)
			_exit(1);
	}
	if (write(go[1], "\1", 1) != 1)
		die("go");

	for (;;) {
		struct pollfd fds[4] = {
			{channel, POLLIN, 0},
			{keeper_alive, POLLIN, 0},
			{c2fd, POLLIN, 0},
			{report[0], POLLIN, 0},
		};
		int nfds = report[0] >= 0 ? 4 : 3;
		char buf[64];
		if (poll(fds, nfds, -1) < 0)
			die("poll");
		if (nfds == 4 && fds[3].revents) {
			ssize_t n = read(report[0], buf, sizeof(buf));
			if (n > 0)
				exec_reported |= memchr(buf, 'E', (size_t)n) != NULL;
			else {
				close(report[0]);
				report[0] = -1;
			}
		}
		if (fds[0].revents && recv_byte(channel) < 0)
			_exit(1); /* P0 is gone (C2 dies with us) */
		if (fds[1].revents)
			_exit(1); /* the keeper died */
		if (fds[2].revents && waitpid(c2, &status, WNOHANG) == c2)
			break;
	}
	end_children();
	if (report[0] >= 0) {
		char buf[64];
		ssize_t n;
		while ((n = read(report[0], buf, sizeof(buf))) > 0)
			exec_reported |= memchr(buf, 'E', (size_t)n) != NULL;
	}
	if (!exec_reported)
		_exit(1);
	st = (unsigned char)status_of(status);
	{
		char msg[2] = {MSG_EXITED, (char)st};
		if (send(channel, msg, 2, MSG_NOSIGNAL) != 2)
			_exit(1);
	}
	_exit(0);
}

/* K: the keeper. */
/* The keeper's one message: C1's pid, with room for one fd (SCM_RIGHTS). */
struct fd_message {
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg;
};

/* Sets up `m` to carry `*pid` and one fd; its first control header. */
static struct cmsghdr *fd_message(struct fd_message *m, int32_t *pid)
{
	memset(m, 0, sizeof(*m));
	m->iov.iov_base = pid;
	m->iov.iov_len = sizeof(*pid);
	m->msg.msg_iov = &m->iov;
	m->msg.msg_iovlen = 1;
	m->msg.msg_control = m->u.buf;
	m->msg.msg_controllen = sizeof(m->u.buf);
	return CMSG_FIRSTHDR(&m->msg);
}

static void keeper_main(pid_t p0, int report, int channel, char **argv)
{
	int alive[2], p0fd, c1fd;
	pid_t c1, me = getpid();

	block_all();
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		die("subreaper");
	p0fd = pidfd_open(p0);
	if (p0fd < 0)
		die("pidfd_open P0");
	if (getppid() != p0)
		_exit(1);
	if (pipe2(alive, O_CLOEXEC) < 0)
		die("pipe2");
	c1 = fork();
	if (c1 < 0)
		die("fork C1");
	if (c1 == 0) {
		close(report);
		close(p0fd);
		close(alive[1]);
		applier_main(channel, alive[0], me, argv);
	}
	if (setpgid(0, 0) < 0)
		die("setpgid");
	close(channel);
	close(alive[0]);
	c1fd = pidfd_open(c1);
	if (c1fd < 0)
		die("pidfd_open C1");
	{
		int32_t pid = c1;
		struct fd_message m;
		struct cmsghdr *c = fd_message(&m, &pid);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &c1fd, sizeof(int));
		if (sendmsg(report, &m.msg, MSG_NOSIGNAL) < 0)
			die("sendmsg");
	}
	close(report);
	for (;;) {
		struct pollfd fds[2] = {{p0fd, POLLIN, 0}, {c1fd, POLLIN, 0}};
		if (poll(fds, 2, -1) < 0)
			break;
		if (fds[1].revents)
			break;
		if (fds[0].revents) {
			struct pollfd c = {c1fd, POLLIN, 0};
			if (poll(&c, 1, 10000) <= 0)
				kill(c1, SIGKILL);
			break;
		}
	}
	waitpid(c1, NULL, 0);
	end_children();
	close(alive[1]);
	_exit(0);
}

/* P0: receives C1's pidfd from K. */
static int receive_applier(int socket)
{
	int32_t pid;
	int fd = -1;
	struct fd_message m;
	struct cmsghdr *c;
	fd_message(&m, &pid);
	if (recvmsg(socket, &m.msg, MSG_CMSG_CLOEXEC) != sizeof(pid))
		die("recvmsg");
	c = CMSG_FIRSTHDR(&m.msg);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (fd < 0)
		die("no pidfd from the keeper");
	return fd;
}

int main(int argc, char **argv)
{
	int chan[2], rep[2], sfd, kfd, c1fd, exit_status = -1, keeper_ended = 0;
	int channel_open = 1, status;
	sigset_t fwd;
	pid_t p0 = getpid(), keeper;

	if (argc > 1 && strcmp(argv[1], "--root-map") == 0) {
		map = "0 0 1\n";
		offsets = "monotonic 86400 0\nboottime 3600 0\n";
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: raw-layout [--root-map] CMD [ARG...]\n");
		return 2;
	}
	open_proc_root();
	sigemptyset(&fwd);
	sigaddset(&fwd, SIGTERM);
	sigaddset(&fwd, SIGINT);
	sigaddset(&fwd, SIGHUP);
	sigaddset(&fwd, SIGQUIT);
	sigaddset(&fwd, SIGUSR1);
	sigaddset(&fwd, SIGUSR2);
	sigaddset(&fwd, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &fwd, NULL) < 0)
		die("sigprocmask");
	sfd = signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die("signalfd");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rep) < 0)
		die("socketpair");
	keeper = fork();
	if (keeper < 0)
		die("fork K");
	if (keeper == 0) {
		close(chan[0]);
		close(rep[0]);
		close(sfd);
		keeper_main(p0, rep[1], chan[1], argv);
	}
	close(chan[1]);
	close(rep[1]);
	kfd = pidfd_open(keeper);
	if (kfd < 0)
		die("pidfd_open K");
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	c1fd = receive_applier(rep[0]);
	close(rep[0]);

	while (channel_open || !keeper_ended) {
		struct pollfd fds[3] = {
			{sfd, POLLIN, 0},
			{keeper_ended ? -1 : kfd, POLLIN, 0},
			{channel_open ? chan[0] : -1, POLLIN, 0},
		};
		if (poll(fds, 3, -1) < 0)
			die("poll");
		if (fds[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				; /* forwarding left out: none comes in the bench */
		}
		if (fds[2].revents) {
			unsigned char msg[2];
			ssize_t n = read(chan[0], msg, 1);
			if (n <= 0) {
				channel_open = 0;
				close(chan[0]);
			} else if (msg[0] == MSG_SYNC) {
				write_id_maps(c1fd);
				send_byte(chan[0], MSG_ACK);
			} else if (msg[0] == MSG_APPLIED) {
				send_byte(chan[0], MSG_START);
			} else if (msg[0] == MSG_EXITED) {
				if (read(chan[0], msg + 1, 1) != 1)
					die("exited");
				exit_status = msg[1];
			}
		}
		if (!keeper_ended && fds[1].revents)
			keeper_ended = 1;
	}
	if (waitpid(keeper, &status, 0) < 0)
		die("waitpid K");
	if (exit_status < 0) {
		fprintf(stderr, "raw-layout: the run ended without CMD's status\n");
		return 1;
	}
	return exit_status;
}
