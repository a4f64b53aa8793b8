/* Start-up harness: fork → the guest's first line, fork → exit and peak RSS
 * for several VMMs booting the same guest (bench/startup, issue 21).
 *
 *   cc -O2 -static -o startup startup.c     (run.sh does this)
 *   startup [-n RUNS] [-w WARMUP] [-t SECONDS] [-m MARKER] \
 *       NAME[,term] ARGV... -- NAME[,term] ARGV... -- ...
 *
 * Each run: a pipe for the child's stdout (stdin and stderr are /dev/null),
 * t0 = CLOCK_MONOTONIC just before fork(); the child execs the VMM. t_line
 * is when MARKER has arrived on the pipe, t_exit when the child has exited
 * (its pidfd polls readable) and wait4() has reaped it. ",term" sends the
 * VMM SIGTERM once the line is there, for a VMM that reboots where the
 * others exit (Cloud Hypervisor turns the guest's i8042 reset into a
 * reboot): its exit time is then "line + SIGTERM → reaped".
 *
 * Peak RSS is wait4()'s ru_maxrss. Linux keeps it per process in
 * signal->maxrss, and exec() raises it to the high-water mark of the mm it
 * replaces: here the forked copy of this harness, a static binary with a
 * few hundred KiB resident (printed as "floor": a child that exits right
 * after fork). A VMM above the floor reports its own peak, threads
 * included (they share its mm); a process the VMM forks and does not reap
 * (rvirt-vmm's teardown helper) is not counted. Spawning from a large
 * parent (Python's posix_spawn/vfork) would report the parent's RSS
 * instead, which is why this is C and forks.
 *
 * Runs rotate over the VMMs (the first of each round rotates too), so
 * drift in host load hits every VMM alike. Prints medians, ratios to the
 * first VMM and one line per sample with -v. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_VMMS 8

struct vmm {
	const char *name;
	char **argv;
	int term;
	double *line, *exit;
	long *rss;
	int n, failures;
};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* One run; returns 0 and fills the times, or -1 (with a reason on stderr). */
static int run_once(struct vmm *v, const char *marker, double timeout_ms,
		    double *line, double *exit_ms, long *rss)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return perror("pipe2"), -1;
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0)
		return perror("fork"), -1;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(p[1], 1);
		dup2(null, 2);
		execv(v->argv[0], v->argv);
		_exit(127);
	}
	close(p[1]);
	int pfd = pidfd_open(pid);
	char buf[4096], seen[256] = "";
	size_t mlen = strlen(marker), have = 0;
	double t_line = -1, deadline = t0 + timeout_ms;
	int open_pipe = 1, exited = 0, killed = 0;
	while (!exited) {
		double left = deadline - now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		struct pollfd fds[2] = { { open_pipe ? p[0] : -1, POLLIN, 0 },
					 { pfd, POLLIN, 0 } };
		int r = poll(fds, 2, (int)left + 1);
		if (r < 0 && errno != EINTR)
			return perror("poll"), -1;
		if (open_pipe && (fds[0].revents & (POLLIN | POLLHUP))) {
			ssize_t n = read(p[0], buf, sizeof buf);
			if (n <= 0) {
				open_pipe = 0;
			} else if (t_line < 0) {
				/* Keep the last mlen-1 bytes so a marker split
				 * across reads is found. */
				for (ssize_t i = 0; i < n; i++) {
					if (have == sizeof seen - 1) {
						memmove(seen, seen + have - (mlen - 1), mlen - 1);
						have = mlen - 1;
					}
					seen[have++] = buf[i];
				}
				seen[have] = 0;
				if (memmem(seen, have, marker, mlen)) {
					t_line = now_ms();
					if (v->term)
						kill(pid, SIGTERM);
				}
			}
		}
		if (pfd < 0 || (fds[1].revents & POLLIN))
			exited = 1; /* without a pidfd wait4 blocks below */
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0)
		return perror("wait4"), -1;
	double t_exit = now_ms();
	close(p[0]);
	if (pfd >= 0)
		close(pfd);
	if (killed || t_line < 0) {
		fprintf(stderr, "startup: %s: %s\n", v->name,
			killed ? "no exit before the deadline (killed)"
			       : "exited without the line");
		return -1;
	}
	*line = t_line - t0;
	*exit_ms = t_exit - t0;
	*rss = ru.ru_maxrss;
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int cmp_l(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static double med_d(const double *xs, int n)
{
	double *c = malloc(n * sizeof *c);
	memcpy(c, xs, n * sizeof *c);
	qsort(c, n, sizeof *c, cmp_d);
	double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return m;
}

static long med_l(const long *xs, int n)
{
	long *c = malloc(n * sizeof *c);
	memcpy(c, xs, n * sizeof *c);
	qsort(c, n, sizeof *c, cmp_l);
	long m = c[n / 2];
	free(c);
	return m;
}

/* ru_maxrss of a child that exits right after fork: the floor under every
 * figure (this harness's own resident pages). */
static long floor_rss(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	int st;
	struct rusage ru;
	wait4(pid, &st, 0, &ru);
	return ru.ru_maxrss;
}

static void usage(void)
{
	fprintf(stderr, "usage: startup [-n RUNS] [-w WARMUP] [-t SECONDS] [-m MARKER] [-v] "
			"NAME[,term] ARGV... -- ...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int runs = 10, warmup = 1, verbose = 0;
	double timeout_ms = 30000;
	const char *marker = "ONELINE";
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-v"))
			verbose = 1;
		else if (i + 1 >= argc)
			usage();
		else if (!strcmp(argv[i], "-n"))
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-w"))
			warmup = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-t"))
			timeout_ms = atof(argv[++i]) * 1e3;
		else if (!strcmp(argv[i], "-m"))
			marker = argv[++i];
		else
			usage();
	}
	if (runs < 1 || !*marker || strlen(marker) > 128)
		usage();
	struct vmm vmms[MAX_VMMS];
	int nv = 0;
	while (i < argc) {
		if (nv == MAX_VMMS)
			usage();
		struct vmm *v = &vmms[nv++];
		memset(v, 0, sizeof *v);
		char *name = argv[i++];
		char *comma = strchr(name, ',');
		if (comma) {
			if (strcmp(comma, ",term"))
				usage();
			*comma = 0;
			v->term = 1;
		}
		v->name = name;
		v->argv = &argv[i];
		while (i < argc && strcmp(argv[i], "--"))
			i++;
		if (&argv[i] == v->argv)
			usage();
		if (i < argc)
			argv[i++] = NULL;
		v->line = calloc(runs, sizeof(double));
		v->exit = calloc(runs, sizeof(double));
		v->rss = calloc(runs, sizeof(long));
	}
	if (nv == 0)
		usage();
	signal(SIGPIPE, SIG_IGN);

	double l, e;
	long r;
	for (int w = 0; w < warmup; w++)
		for (int k = 0; k < nv; k++)
			run_once(&vmms[k], marker, timeout_ms, &l, &e, &r);
	for (int round = 0; round < runs; round++) {
		for (int j = 0; j < nv; j++) {
			struct vmm *v = &vmms[(round + j) % nv];
			if (run_once(v, marker, timeout_ms, &l, &e, &r) < 0) {
				v->failures++;
				continue;
			}
			v->line[v->n] = l;
			v->exit[v->n] = e;
			v->rss[v->n] = r;
			v->n++;
			if (verbose)
				printf("sample %s line %.3f exit %.3f maxrss %ld\n", v->name, l, e, r);
		}
	}

	printf("floor (harness forked, no exec): maxrss %ld KiB\n", floor_rss());
	printf("%-18s %6s %12s %12s %14s\n", "vmm", "runs", "line ms", "exit ms", "peak RSS KiB");
	double base_l = 0, base_e = 0, base_r = 0;
	int rc = 0;
	for (int k = 0; k < nv; k++) {
		struct vmm *v = &vmms[k];
		if (v->n == 0) {
			printf("%-18s %6d %12s %12s %14s  (%d failed)\n", v->name, 0, "-", "-", "-",
			       v->failures);
			rc = 1;
			continue;
		}
		double ml = med_d(v->line, v->n), me = med_d(v->exit, v->n);
		long mr = med_l(v->rss, v->n);
		if (k == 0) {
			base_l = ml;
			base_e = me;
			base_r = mr;
		}
		printf("%-18s %6d %12.3f %12.3f %14ld", v->name, v->n, ml, me, mr);
		if (k > 0 && base_l > 0)
			printf("   %s/%s: line %.3f exit %.3f RSS %.3f", vmms[0].name, v->name,
			       base_l / ml, base_e / me, base_r / mr);
		if (v->term)
			printf("   (exit: SIGTERM at the line)");
		if (v->failures) {
			printf("   (%d failed)", v->failures);
			rc = 1;
		}
		printf("\n");
	}
	return rc;
}
