/*
 * A stand-in for qemu-system-x86_64 that misbehaves, for the start-deadline
 * tests ([qemu] binary = a link to it). What it does depends on the name it
 * is run under (argv[0]'s last component):
 *   fake-qemu-hang     never accepts on its QMP socket (fd 3): a hung QEMU
 *   fake-qemu-garbage  accepts and writes lines that are not QMP, forever
 * Either way it stays until killed.
 */
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	name = name ? name + 1 : argc > 0 ? argv[0] : "";
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(name, "fake-qemu-garbage") == 0) {
		int c = accept(3, NULL, NULL);
		static const char junk[] = "this is not QMP\n{\"nor\": \"this\"\n";
		while (c >= 0 && write(c, junk, sizeof(junk) - 1) > 0)
			sleep(1);
	}
	for (;;)
		pause();
}
