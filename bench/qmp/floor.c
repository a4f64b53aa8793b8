/* The floor for bench/qmp: a single-threaded server on a UNIX socket that
 * answers every line with a canned query-status reply (and exits after a
 * line containing "quit"). It does no JSON parsing, so its round trip is
 * what the Python client, the kernel and the scheduler cost on their own.
 * Usage: floor SOCKET_PATH   (built by run.sh with gcc -O2). */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char greeting[] =
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, "
	"\"major\": 0}, \"package\": \"floor\"}, \"capabilities\": []}}\r\n";
static const char reply[] =
	"{\"return\": {\"running\": false, \"singlestep\": false, "
	"\"status\": \"prelaunch\"}}\r\n";

static void put(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w <= 0)
			exit(1);
		s += w;
		n -= (size_t)w;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char buf[65536];
	int lfd, fd, quit = 0;

	if (argc != 2 || strlen(argv[1]) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "usage: floor SOCKET_PATH\n");
		return 2;
	}
	strcpy(addr.sun_path, argv[1]);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 1) < 0) {
		perror("floor");
		return 1;
	}
	fd = accept(lfd, NULL, NULL);
	unlink(argv[1]);
	if (fd < 0)
		return 1;
	put(fd, greeting, sizeof(greeting) - 1);
	while (!quit) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n')
				continue;
			put(fd, reply, sizeof(reply) - 1);
		}
		if (memmem(buf, (size_t)n, "quit", 4))
			quit = 1;
	}
	return 0;
}
