/* commands.c - the regions written "[ CMD ARGS... ]" on the command line:
 * an NBD server kcopy starts (nbdcopy's spelling), gathered from the
 * arguments before popt sees them.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A "[" argument opens a command, the next "]" argument closes it; what is
 * between is the server's argv, taken as it is (its options are not
 * kcopy's).  The closing argument may carry the region's fields, as a
 * path does: "]:SECTOR[:COUNT]".  Each command becomes one argument, its
 * text ("[ qemu-nbd -f qcow2 a.qcow2 ]"), for popt to pass on among the
 * other region specs; take_specs knows it by that text (popt hands back
 * copies, not the pointers it was given) and by its place: popt keeps the
 * order of the arguments, so the n-th argument with a command's text is
 * the n-th command of that text (two commands of one text may have
 * different "]:SECTOR:COUNT" fields).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcopy.h"

static bool is_open(const char *arg)
{
	return !strcmp(arg, "[");
}

static bool is_close(const char *arg)
{
	return arg[0] == ']' && (arg[1] == 0 || arg[1] == ':');
}

/* "[ W1 W2 ... ]": the words of argv[from..to) between brackets. */
static char *join(const char *const *argv, int from, int to)
{
	size_t len = sizeof("[ ]");
	char *text;
	int i;

	for (i = from; i < to; i++)
		len += strlen(argv[i]) + 1;
	text = malloc(len);
	if (!text)
		return NULL;
	strcpy(text, "[");
	for (i = from; i < to; i++) {
		strcat(text, " ");
		strcat(text, argv[i]);
	}
	strcat(text, " ]");
	return text;
}

/* The command of argv[from..to), not empty, as k->cmds[k->num_cmds]. */
static int add_command(struct kcopy *k, const char **argv, int from, int to)
{
	struct command_region *c, *cmds;
	int i;

	if (to <= from)
		return -EINVAL;
	cmds = realloc(k->cmds, (k->num_cmds + 1) * sizeof(*cmds));
	if (!cmds)
		return -ENOMEM;
	k->cmds = cmds;
	c = &cmds[k->num_cmds];
	c->close = argv[to];
	c->taken = false;
	c->text = join(argv, from, to);
	c->argv = calloc((size_t)(to - from) + 1, sizeof(*c->argv));
	if (!c->text || !c->argv) {
		free(c->text);
		free(c->argv);
		return -ENOMEM;
	}
	for (i = from; i < to; i++)
		c->argv[i - from] = (char *)argv[i];
	k->num_cmds++;
	return 0;
}

int commands_gather(struct kcopy *k, int *argc, const char **argv,
		    bool (*takes_value)(const char *arg),
		    char *why, size_t len)
{
	bool options = true;
	int i, out = 1;

	for (i = 1; i < *argc; i++) {
		int open = i, r;

		if (options && !strcmp(argv[i], "--"))
			options = false;
		if (options && takes_value(argv[i]) && i + 1 < *argc) {
			argv[out++] = argv[i++];	/* its value */
			argv[out++] = argv[i];
			continue;
		}
		if (is_close(argv[i])) {
			snprintf(why, len, "'%s' (argument %d) closes no '['",
				 argv[i], i);
			return -EINVAL;
		}
		if (!is_open(argv[i])) {
			argv[out++] = argv[i];
			continue;
		}
		for (i++; i < *argc && !is_close(argv[i]); i++) {
			if (is_open(argv[i])) {
				snprintf(why, len, "'[' (argument %d) inside "
					 "the command of '[' (argument %d): "
					 "commands do not nest", i, open);
				return -EINVAL;
			}
		}
		if (i == *argc) {
			snprintf(why, len, "'[' (argument %d) has no matching "
				 "']'", open);
			return -EINVAL;
		}
		if (i == open + 1) {
			snprintf(why, len, "'[ %s' (arguments %d-%d): no "
				 "command between the brackets", argv[i],
				 open, i);
			return -EINVAL;
		}
		r = add_command(k, argv, open + 1, i);
		if (r < 0) {
			snprintf(why, len, "out of memory");
			return r;
		}
		argv[out++] = k->cmds[k->num_cmds - 1].text;
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

const struct command_region *commands_take(struct kcopy *k,
					   const char *arg)
{
	unsigned int i;

	for (i = 0; i < k->num_cmds; i++) {
		if (!k->cmds[i].taken && !strcmp(arg, k->cmds[i].text)) {
			k->cmds[i].taken = true;
			return &k->cmds[i];
		}
	}
	return NULL;
}

int commands_spec(const struct command_region *c, struct kc_spec *spec,
		  const char **why)
{
	struct kc_spec fields;
	int r = kc_parse_spec(c->close, NULL, NULL, &fields, why);

	if (r == 0 && strcmp(fields.path, "]")) {
		*why = "not ']' or ']:SECTOR[:COUNT]'";
		r = -EINVAL;
	}
	if (r < 0) {
		kc_spec_free(&fields);
		return r;
	}
	free(fields.path);
	fields.path = strdup(c->text);
	if (!fields.path) {
		*why = "out of memory";
		return -ENOMEM;
	}
	*spec = fields;
	return 0;
}

void commands_free(struct kcopy *k)
{
	unsigned int i;

	for (i = 0; i < k->num_cmds; i++) {
		free(k->cmds[i].text);
		free(k->cmds[i].argv);
	}
	free(k->cmds);
	k->cmds = NULL;
	k->num_cmds = 0;
}
