/*
 * pause: the process that holds a pod's namespaces open.
 *
 * It sleeps until told to stop, exits 0 on SIGTERM or SIGINT, and, being PID 1 of the pod when
 * the PID namespace is shared, reaps orphaned children so they never linger as zombies.
 * Built static (gcc -static -Os) so the image needs nothing but this one file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PAUSE_VERSION
#define PAUSE_VERSION "unknown"
#endif

static void stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void reap(int sig)
{
	int saved = errno;
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static void on_signal(int sig, void (*handler)(int), int flags)
{
	struct sigaction act;
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	act.sa_flags = flags;
	sigemptyset(&act.sa_mask);
	if (sigaction(sig, &act, NULL) < 0) {
		perror("sigaction");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		printf("pause (k8s-ha-lab) %s\n", PAUSE_VERSION);
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not running as PID 1\n");

	on_signal(SIGINT, stop, 0);
	on_signal(SIGTERM, stop, 0);
	on_signal(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART);

	for (;;)
		pause();
	return 1;
}
