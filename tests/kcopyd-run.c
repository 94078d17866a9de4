/* kcopyd-run - run one libkcopyd job from the command line, for the shell
 * tests of the library on real devices.
 *
 *   kcopyd-run [-p PAGES] [-c SUBJOB_BYTES] [-f FLAG,...] [-t PERCENT]
 *              SRC:SECTOR:COUNT DST:SECTOR:COUNT...
 *   kcopyd-run -z [...] DST:SECTOR:COUNT...
 *
 * FLAG: ignore, seq, drop, nodirect.  Prints "read_err=R write_err=W", one
 * "bad SECTOR COUNT" line per bad range, and "peak_pages=P budget=B".
 * Exit status: 0 the job ran (whatever its errors), 3 kcopyd_copy refused
 * it (the errno is printed), 2 usage.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcopyd.h"

static int read_err = -1;
static unsigned int write_err;

static void notify(int r, unsigned int w, void *context)
{
	read_err = r;
	write_err = w;
}

static void usage(void)
{
	fprintf(stderr, "usage: kcopyd-run [-p PAGES] [-c BYTES] [-f FLAGS] "
		"[-t PERCENT] [-z] SRC:SECTOR:COUNT DST:SECTOR:COUNT...\n");
	exit(2);
}

static void parse_region(char *arg, int flags, struct io_region *r)
{
	char *c2 = strrchr(arg, ':'), *c1;

	if (!c2)
		usage();
	*c2 = 0;
	c1 = strrchr(arg, ':');
	if (!c1)
		usage();
	*c1 = 0;
	r->sector = strtoull(c1 + 1, NULL, 0);
	r->count = strtoull(c2 + 1, NULL, 0);
	r->fd = open(arg, flags, 0644);
	if (r->fd < 0) {
		perror(arg);
		exit(2);
	}
}

static unsigned int parse_flags(char *s)
{
	unsigned int flags = 0;
	char *tok;

	for (tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (!strcmp(tok, "ignore"))
			flags |= KCOPYD_IGNORE_ERROR;
		else if (!strcmp(tok, "seq"))
			flags |= KCOPYD_WRITE_SEQ;
		else if (!strcmp(tok, "drop"))
			flags |= KCOPYD_DROP_FAILED_DESTS;
		else if (!strcmp(tok, "nodirect"))
			flags |= KCOPYD_NO_DIRECT;
		else
			usage();
	}
	return flags;
}

int main(int argc, char **argv)
{
	unsigned int pages = 256, subjob = 0, flags = 0, throttle = 100;
	unsigned int i, n;
	int opt, zero = 0, ret;
	struct io_region src, dests[KCOPYD_MAX_DESTS + 1];
	struct kcopyd_client *kc;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	struct io_region *bad;
	size_t nbad;

	while ((opt = getopt(argc, argv, "p:c:f:t:z")) != -1) {
		switch (opt) {
		case 'p': pages = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'c': subjob = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'f': flags = parse_flags(optarg); break;
		case 't': throttle = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'z': zero = 1; break;
		default: usage();
		}
	}
	if (optind + (zero ? 1 : 2) > argc)
		usage();
	if (!zero)
		parse_region(argv[optind++], O_RDONLY, &src);
	n = (unsigned int)(argc - optind);
	if (n > KCOPYD_MAX_DESTS + 1)
		usage();
	for (i = 0; i < n; i++)
		parse_region(argv[optind + (int)i], O_RDWR | O_CREAT, &dests[i]);

	ret = kcopyd_client_create(pages, &kc);
	if (ret < 0) {
		printf("create: %d %s\n", ret, strerror(-ret));
		return 3;
	}
	if (subjob && (ret = kcopyd_set_subjob_size(kc, subjob)) < 0) {
		printf("subjob: %d %s\n", ret, strerror(-ret));
		return 3;
	}
	if (throttle != 100 && (ret = kcopyd_set_throttle(kc, throttle)) < 0) {
		printf("throttle: %d %s\n", ret, strerror(-ret));
		return 3;
	}
	ret = zero ? kcopyd_zero(kc, n, dests, flags, notify, NULL)
		   : kcopyd_copy(kc, &src, n, dests, flags, notify, NULL);
	if (ret < 0) {
		printf("copy: %d %s\n", ret, strerror(-ret));
		printf("why: %s\n", kcopyd_get_error());
		kcopyd_client_destroy(kc);
		return 3;
	}
	kcopyd_wait(kc);
	printf("read_err=%d write_err=%u\n", read_err, write_err);
	if (kcopyd_get_bad_ranges(kc, &bad, &nbad) == 0) {
		for (i = 0; i < nbad; i++)
			printf("bad %" PRIu64 " %" PRIu64 "\n", bad[i].sector,
			       bad[i].count);
		free(bad);
	}
	kcopyd_get_stats(kc, &st);
	printf("peak_pages=%u budget=%u\n", st.pages_peak, st.pages_budget);
	kcopyd_client_destroy(kc);
	for (i = 0; i < n; i++)
		if (fdatasync(dests[i].fd) < 0)
			printf("fdatasync %u: %s\n", i, strerror(errno));
	return 0;
}
