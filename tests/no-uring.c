/* no-uring - run a command in a process where io_uring is refused.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: no-uring ERRNO COMMAND [ARG]...
 * Installs a seccomp filter under which io_uring_setup fails with the
 * errno numbered ERRNO (EPERM as under kernel.io_uring_disabled=2, ENOSYS
 * as in a container whose profile lacks it), then runs COMMAND.  Needs no
 * privilege (PR_SET_NO_NEW_PRIVS).  The tests use it to see libkcopyd fall
 * back to libaio.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int err = argc > 2 ? atoi(argv[1]) : 0;
	struct sock_filter code[] = {
		/* io_uring_setup is 425 on every architecture */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | (SECCOMP_RET_DATA & (unsigned)err)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(code) / sizeof(code[0]), code };

	if (err <= 0) {
		fprintf(stderr, "usage: no-uring ERRNO COMMAND [ARG]...\n");
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
