/*
 * A stand-in for qemu-system-x86_64 that misbehaves, for the start-deadline
 * tests ([qemu] binary = a link to it). What it does depends on the name it
 * is run under (argv[0]'s last component):
 *   fake-qemu-hang     never accepts on its QMP socket (fd 3): a hung QEMU
 *   fake-qemu-garbage  accepts and writes lines that are not QMP, forever
 *   fake-qemu-nocont   speaks QMP, answers every command but cont, which it
 *                      never answers: a start that stays in flight
 *   fake-qemu-late     sleeps 12 s, then becomes the real QEMU with the same
 *                      arguments and fds: a QEMU on a host too busy to greet
 *                      on QMP within qsupd's 10 s command deadline
 *   fake-qemu-slow     the same after 3 s: a start that takes long
 * The others stay until killed.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Answer each command line with an empty return and its id, but cont. */
static void nocont(int c)
{
	static const char greeting[] = "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, "
		"\"minor\": 2, \"micro\": 0}, \"package\": \"\"}, \"capabilities\": []}}\n";
	char line[65536], out[256];
	size_t len = 0;
	if (write(c, greeting, sizeof(greeting) - 1) < 0)
		return;
	for (ssize_t n; (n = read(c, line + len, sizeof(line) - 1 - len)) > 0;) {
		len += (size_t)n;
		line[len] = '\0';
		char *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			const char *id = strstr(line, "\"id\":");
			int w = 0;
			if (!strstr(line, "\"cont\"") && id)
				w = snprintf(out, sizeof(out), "{\"return\": {}, \"id\": %.*s}\n",
				             (int)strcspn(id + 5, ",}"), id + 5);
			if (w > 0 && write(c, out, (size_t)w) < 0)
				return;
			len -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, len + 1);
		}
	}
}

int main(int argc, char **argv)
{
	const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	name = name ? name + 1 : argc > 0 ? argv[0] : "";
	if (strcmp(name, "fake-qemu-late") == 0 || strcmp(name, "fake-qemu-slow") == 0) {
		sleep(strcmp(name, "fake-qemu-late") == 0 ? 12 : 3);
		argv[0] = (char *)"/usr/bin/qemu-system-x86_64";
		execv(argv[0], argv);
		perror(argv[0]);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(name, "fake-qemu-nocont") == 0)
		nocont(accept(3, NULL, NULL));
	if (strcmp(name, "fake-qemu-garbage") == 0) {
		int c = accept(3, NULL, NULL);
		static const char junk[] = "this is not QMP\n{\"nor\": \"this\"\n";
		while (c >= 0 && write(c, junk, sizeof(junk) - 1) > 0)
			sleep(1);
	}
	for (;;)
		pause();
}
