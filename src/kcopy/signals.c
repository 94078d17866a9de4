/* signals.c - the signals kcopy answers, read from a signalfd by the main
 * thread: SIGINT, SIGTERM and SIGHUP stop the copy after the I/O in
 * flight, a second SIGINT exits at once, SIGUSR1 prints a status line,
 * SIGWINCH fits the progress bar to the terminal's new width;
 * SIGPIPE and SIGXFSZ are ignored.  While the main thread waits in an NBD
 * open, a watcher thread reads them instead (signals_watch_start).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "kcopy.h"

/* Block the signals kcopy answers and return a signalfd for them, or
 * -errno.  Called before the engine thread starts, so that it inherits the
 * mask and every signal comes to the signalfd.
 *
 * SIGPIPE and SIGXFSZ are ignored: a closed pipe (--report -, progress
 * into head) is EPIPE of that one output, and a file reaching the size
 * limit (ulimit -f) is EFBIG of that one destination, not the end of the
 * run for all. */
int signals_block(void)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

bool signals_poll(struct kcopy *k)
{
	struct signalfd_siginfo si;

	while (read(k->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGUSR1) {
			progress_status_line(k);
		} else if (sig == SIGWINCH) {
			if (k->progress.bar)
				progress_resize(k);
		} else if (k->signal && sig == SIGINT) {
			say(&k->out, MSG_ERROR, "interrupted again: exiting "
			    "without waiting");
			/* The documented way out (kcopy(1)): no drain, no
			 * flush, no report; the only exit outside main(). */
			_exit(128 + sig);
		} else if (!k->signal) {
			k->signal = sig;
			say(&k->out, MSG_NOTE, "%s: stopping after the I/O in "
			    "flight", strsignal(sig));
			kcopyd_client_stop(k->kc);
		}
	}
	return k->signal != 0;
}

/* The first stopping signal, taken and answered by the client's stop;
 * the others are read and dropped.  Until done_fd is signalled. */
static void *watch(void *arg)
{
	struct signals_watch *w = arg;
	struct pollfd pfd[2] = { { .fd = w->k->sig_fd, .events = POLLIN },
				 { .fd = w->done_fd, .events = POLLIN } };
	struct signalfd_siginfo si;

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		while (read(w->k->sig_fd, &si, sizeof(si)) == sizeof(si)) {
			int sig = (int)si.ssi_signo;

			if (w->signal || (sig != SIGINT && sig != SIGTERM &&
					  sig != SIGHUP))
				continue;
			w->signal = sig;
			kcopyd_client_stop(w->k->kc);
		}
	}
	return NULL;
}

int signals_watch_start(struct kcopy *k, struct signals_watch *w)
{
	int r;

	w->k = k;
	w->signal = 0;
	w->done_fd = eventfd(0, EFD_CLOEXEC);
	if (w->done_fd < 0)
		return -errno;
	r = pthread_create(&w->thread, NULL, watch, w);
	if (r) {
		close(w->done_fd);
		return -r;
	}
	return 0;
}

void signals_watch_end(struct signals_watch *w)
{
	uint64_t one = 1;

	if (write(w->done_fd, &one, sizeof(one)) != sizeof(one))
		abort();	/* an eventfd's write cannot fail here */
	pthread_join(w->thread, NULL);
	close(w->done_fd);
	if (w->signal && !w->k->signal)
		w->k->signal = w->signal;
}
