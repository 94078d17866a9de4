/* no-uring - run a command in a process where io_uring is refused.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: no-uring [--getevents] ERRNO COMMAND [ARG]...
 * Installs a seccomp filter under which io_uring_setup fails with the
 * errno numbered ERRNO (EPERM as under kernel.io_uring_disabled=2, ENOSYS
 * as in a container whose profile lacks it), then runs COMMAND.  Needs no
 * privilege (PR_SET_NO_NEW_PRIVS).  The tests use it to see libkcopyd fall
 * back to libaio.  With --getevents it is io_getevents (and
 * io_pgetevents) that fails instead: libaio's completions cannot be
 * reaped, which the library must report rather than wait for ever.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int getevents = argc > 1 && !strcmp(argv[1], "--getevents");
	int err = argc > 2 + getevents ? atoi(argv[1 + getevents]) : 0;
	/* io_uring_setup is 425 on every architecture */
	unsigned int nr = getevents ? __NR_io_getevents : __NR_io_uring_setup;
	unsigned int nr2 = getevents ? __NR_io_pgetevents : nr;
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | (SECCOMP_RET_DATA & (unsigned)err)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(code) / sizeof(code[0]), code };

	argv += getevents;

	if (err <= 0) {
		fprintf(stderr, "usage: no-uring [--getevents] ERRNO COMMAND "
			"[ARG]...\n");
		return 2;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("no-uring: seccomp");
		return 2;
	}
	execvp(argv[2], argv + 2);
	perror(argv[2]);
	return 127;
}
