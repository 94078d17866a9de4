/* nbd.c - NBD exports as storage: libnbd's asynchronous API, driven by the
 * engine thread's poll.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * An export is opened (kcopyd_open_uri; kcopyd_open_command, from a server
 * libnbd starts by socket activation and stops when the first connection
 * is closed) from the caller's thread: the
 * connections are made and probed synchronously, then the export goes on
 * kc->files as a struct kc_file whose descriptor is a stand-in (an
 * eventfd) the caller puts in its io_regions.  From then on only the
 * engine thread touches the handles, with kc->lock held: requests are
 * queued by the job code (kc_nbd_ops.queue), issued in the engine's
 * submission step (kc_nbd_ops.submit: libnbd may run a completion from inside
 * any call, and the job code must never see its own request end before
 * queue returns), and their sockets are polled beside the engine's eventfd
 * (kc_nbd_ops.poll_prepare / poll_done).  libnbd runs its completion
 * callbacks inside its own calls, with the handle's lock held: they only
 * put the request on the client's done list (struct kc_nbd_client), and
 * its io->end_io is called once libnbd has returned, so that the job code (which drops and takes kc->lock
 * around its hooks) never runs under a handle's lock.
 *
 * A connection is only polled while it has requests: an export no job uses
 * is idle, so kcopyd_close_uri may close it from the caller's thread.  A
 * request outstanding longer than the client's timeout drops its connection
 * (shutdown of the socket): libnbd then fails every request in flight on
 * it, so a dead or stalled server is an error, never a hang.
 *
 * What NBD keeps for the whole client (libnbd, the queues, the timeout)
 * is its backend's client-wide part, struct kc_nbd_client, made by the
 * first kcopyd_open_uri or kcopyd_set_timeout and freed with the client
 * (kc_nbd_backend.client_destroy), which closes the exports left open.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kcopyd-private.h"

#ifdef HAVE_LIBNBD
#include <dlfcn.h>
#include <libnbd.h>

/* kcopyd_set_timeout's default: a request to an NBD export that has not
 * completed in a minute means a dead server or network, not a slow one
 * (nbdkit's and qemu-nbd's requests of 32 MiB take well under a second on
 * any link kcopy is for). */
#define NBD_DEFAULT_TIMEOUT_S 60

/* libnbd is loaded with the first export a client opens, not with
 * libkcopyd: it and what it needs (gnutls, libxml2 with ICU and libstdc++,
 * p11-kit, nettle) are 3.5 MiB of resident pages and their start-up in
 * every program, NBD or not (smaps of a running kcopy).  The functions
 * used, looked up once per client. */
#define NBD_FUNCS(X) \
	X(create) X(close) X(shutdown) X(get_errno) X(get_error) X(poll) \
	X(get_uri) X(kill_subprocess) X(aio_connect_systemd_socket_activation) \
	X(set_uri_allow_local_file) X(add_meta_context) X(can_meta_context) \
	X(get_size) X(get_block_size) X(is_read_only) X(can_flush) \
	X(can_multi_conn) X(can_zero) X(aio_connect_uri) \
	X(aio_is_connecting) X(aio_is_ready) X(aio_is_dead) X(aio_is_closed) \
	X(aio_get_fd) X(aio_get_direction) X(aio_notify_read) \
	X(aio_notify_write) X(aio_command_completed) X(aio_pread) \
	X(aio_pwrite) X(aio_zero) X(aio_flush) X(aio_block_status)

struct kc_nbd_lib {
	void *so;
#define NBD_FN(name) __typeof__(nbd_##name) *name;
	NBD_FUNCS(NBD_FN)
#undef NBD_FN
};

/* NBD's client-wide part (kc_nbd_backend), guarded by kc->lock. */
struct kc_nbd_client {
	struct kc_nbd_lib *lib;		/* libnbd, loaded by the first open */
	struct kc_iocb *queue;		/* requests not yet issued */
	struct kc_iocb **tail;
	struct kc_iocb *done;		/* ended, owners not yet told */
	struct kc_iocb **done_tail;
	uint64_t timeout_us;		/* kcopyd_set_timeout; 0 = none */
	pthread_cond_t map_cond;	/* an export's map fetch ended */
};

static const struct kc_backend kc_nbd_backend;

/* The soname of the libnbd the library was built against. */
#define LIBNBD_SONAME "libnbd.so.0"

/* Load libnbd for nc, once: 0, or -ELIBACC if it cannot be (not
 * installed: the message is in the caller's errno-less world). */
static int lib_load(struct kc_nbd_client *nc)
{
	struct kc_nbd_lib *lib;

	if (nc->lib)
		return 0;
	lib = calloc(1, sizeof(*lib));
	if (!lib)
		return -ENOMEM;
	lib->so = dlopen(LIBNBD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib->so) {
		free(lib);
		return -ELIBACC;
	}
#define NBD_FN(name) \
	if (!(lib->name = (__typeof__(nbd_##name) *)dlsym(lib->so, \
							  "nbd_" #name))) \
		goto missing;
	NBD_FUNCS(NBD_FN)
#undef NBD_FN
	nc->lib = lib;
	return 0;
missing:
	dlclose(lib->so);
	free(lib);
	return -ELIBACC;
}

/* Connections per export where the server allows multi-conn: nbdcopy's
 * default, and enough to keep a remote server's queue full from one
 * client. */
#define NBD_CONNS 4
/* The largest request when the server states no maximum: the NBD
 * protocol's common 32 MiB limit (nbdkit's and qemu-nbd's). */
#define NBD_DEFAULT_MAX_REQUEST (32u * 1024 * 1024)
/* How much of the export one block status request asks about.  The reply
 * may cover less; a map of a 64 GiB image costs at most 64 round trips,
 * each while the engine waits, and a server's reply to 1 GiB of a
 * fragmented image stays small (nbdkit's and qemu-nbd's merge extents). */
#define NBD_MAP_WINDOW (1ull << 30)

/* One extent of the export's map (base:allocation). */
struct extent {
	uint64_t end;		/* the byte after it */
	bool data;		/* false: reads as zeros (STATE_ZERO) */
};

struct conn {
	struct kc_nbd *export;
	struct nbd_handle *h;
	unsigned int in_flight;		/* commands issued, not completed */
	uint64_t last_us;		/* when it last made progress */
	bool dropped;			/* timed out: socket shut down */
};

struct kc_nbd {
	struct kcopyd_client *kc;
	struct kc_nbd_client *nc;	/* kc's NBD part */
	struct conn conns[NBD_CONNS];
	unsigned int num_conns;
	uint64_t max_request;		/* bytes per command */
	/* The source's map, from the last block status reply: extents
	 * from map_start to map[num_map - 1].end, in order.  Guarded by
	 * kc->lock; fetched by one thread at a time (map_busy), the engine's
	 * or kcopyd_map's caller's. */
	bool can_extents;		/* the server offers base:allocation */
	bool map_wanted;		/* a reply is awaited: store it */
	bool map_busy;			/* a thread is fetching the map */
	uint64_t map_start;
	struct extent *map;
	size_t num_map, map_cap;
	size_t map_hint;		/* the extent found last */
	int map_err;			/* from the extent callback */
};

/* The error of the last failed libnbd call, as a negative errno. */
static int nbd_err(const struct kc_nbd_lib *lib)
{
	int e = lib->get_errno();

	return e > 0 ? -e : -EIO;
}

static void nbd_queue(struct kcopyd_client *kc, struct kc_iocb *io);

/* io is over: its owner hears of it in hand_back(). */
static void ended(struct kc_nbd_client *nc, struct kc_iocb *io)
{
	io->qnext = NULL;
	*nc->done_tail = io;
	nc->done_tail = &io->qnext;
}

static struct conn *pick_conn(struct kc_nbd *x);

/* Is c gone: dropped for silence, or dead or closed in libnbd's eyes (the
 * server went away, the socket was reset)?  Called outside libnbd's
 * callbacks, which run under the handle's lock. */
static bool conn_lost(const struct conn *c)
{
	const struct kc_nbd_lib *lib = c->export->nc->lib;

	return c->dropped || lib->aio_is_dead(c->h) > 0 ||
	       lib->aio_is_closed(c->h) > 0;
}

/* Hand the requests that ended to their owners; called outside libnbd.
 * A request that failed because its connection was lost is issued again
 * on another connection of the export if one is left; else it ends with
 * an error the job code takes for a lost connection (kc_err_lost):
 * -ETIMEDOUT for a connection dropped for silence, -ENOTCONN otherwise,
 * whatever libnbd said, never mistaken for a bad sector. */
static void hand_back(struct kcopyd_client *kc, struct kc_nbd_client *nc)
{
	while (nc->done) {
		struct kc_iocb *io = nc->done;
		struct conn *c = io->own.ptr;

		nc->done = io->qnext;
		if (!nc->done)
			nc->done_tail = &nc->done;
		if (io->own.err && c && conn_lost(c)) {
			if (pick_conn(c->export)) {
				nbd_queue(kc, io);
				continue;
			}
			io->own.err = c->dropped ? -ETIMEDOUT : -ENOTCONN;
		}
		io->end_io(kc, io, io->own.err);
	}
}

/* One command of io ended (libnbd's completion callback). */
static int part_done(void *user_data, int *error)
{
	struct kc_iocb *io = user_data;
	struct conn *c = io->own.ptr;
	struct kcopyd_client *kc = c->export->kc;

	assert(c->in_flight > 0 && io->own.count > 0);
	c->in_flight--;
	c->last_us = kc_now_us();
	if (*error && !io->own.err)
		io->own.err = c->dropped ? -ETIMEDOUT : -*error;
	if (--io->own.count == 0) {
		if (io->is_zero && (io->own.err == -ENOTSUP ||
				    io->own.err == -EOPNOTSUPP ||
				    io->own.err == -EINVAL)) {
			/* Zeroing refused after all: remember, and write
			 * the zeroed buffer instead. */
			io->file->can_zero = false;
			io->is_zero = false;
			nbd_queue(kc, io);
			return 1;
		}
		if (!io->own.err) {
			if (io->op == KC_IO_WRITE)
				kc->stats.bytes_written += io->len - io->done;
			else if (io->op == KC_IO_FLUSH)
				;	/* no bytes */
			else
				kc->stats.bytes_read += io->len - io->done;
			io->done = io->len;
		}
		ended(c->export->nc, io);
	}
	return 1;	/* retire the command */
}

static void nbd_queue(struct kcopyd_client *kc, struct kc_iocb *io)
{
	struct kc_nbd *x = io->file->priv;

	(void)kc;
	if (io->op == KC_IO_WRITE)
		x->num_map = 0;	/* the map remembered may be out of date */
	io->qnext = NULL;
	*x->nc->tail = io;
	x->nc->tail = &io->qnext;
}

static int nbd_extents(struct kcopyd_client *kc, struct kc_file *f,
		       uint64_t pos, uint64_t len, uint64_t *run);
static unsigned int nbd_poll_fds(const struct kc_file *f);
static unsigned int nbd_poll_prepare(struct kcopyd_client *kc,
				     struct pollfd *pfds, void **polled,
				     unsigned int max, int *timeout_ms);
static void nbd_poll_done(struct kcopyd_client *kc,
			  const struct pollfd *pfds, void *const *polled,
			  unsigned int n);
static void nbd_submit(struct kcopyd_client *kc);

/* A socket's EPIPE, and a connection dropped for silence (ETIMEDOUT: on a
 * local device a timed-out command is a request's failure). */
static bool nbd_lost(int err)
{
	return err == -EPIPE || err == -ETIMEDOUT;
}

static unsigned int nbd_poll_fds(const struct kc_file *f)
{
	return f->connections;
}

static const char *nbd_describe(const struct kc_file *f,
				struct kcopyd_fd_info *info)
{
	(void)f;
	if (info)
		info->is_remote = 1;
	return "NBD export";
}

/* NBD exports: reads, writes (is_zero: WRITE_ZEROES), flushes (where the
 * server offers them) and the map (block status) over libnbd; no zero
 * member: zeroing is an is_zero request. */
static const struct kc_file_ops kc_nbd_ops = {
	.name = "nbd",
	.queue = nbd_queue,
	.extents = nbd_extents,
	.lost = nbd_lost,
	.poll_fds = nbd_poll_fds,
	.poll_prepare = nbd_poll_prepare,
	.poll_done = nbd_poll_done,
	.submit = nbd_submit,
	.describe = nbd_describe,
};

/* The live connection with the fewest commands in flight, or NULL. */
static struct conn *pick_conn(struct kc_nbd *x)
{
	const struct kc_nbd_lib *lib = x->nc->lib;
	struct conn *best = NULL;
	unsigned int i;

	for (i = 0; i < x->num_conns; i++) {
		struct conn *c = &x->conns[i];

		if (c->dropped || lib->aio_is_dead(c->h) > 0 ||
		    lib->aio_is_closed(c->h) > 0)
			continue;
		if (!best || c->in_flight < best->in_flight)
			best = c;
	}
	return best;
}

/* One command of io on c: len bytes at io->pos + off (a flush: none). */
static void send_part(struct conn *c, struct kc_iocb *io, uint64_t off,
		      size_t len)
{
	const struct kc_nbd_lib *lib = c->export->nc->lib;
	nbd_completion_callback cb = { .callback = part_done,
				       .user_data = io };
	int64_t cookie;

	if (c->in_flight == 0)
		c->last_us = kc_now_us();
	c->in_flight++;
	io->own.count++;
	if (io->op == KC_IO_FLUSH)
		cookie = lib->aio_flush(c->h, cb, 0);
	else if (io->is_zero)
		cookie = lib->aio_zero(c->h, len, io->pos + off, cb, 0);
	else if (io->op == KC_IO_WRITE)
		cookie = lib->aio_pwrite(c->h, io->buf + off, len,
					io->pos + off, cb, 0);
	else
		cookie = lib->aio_pread(c->h, io->buf + off, len,
				       io->pos + off, cb, 0);
	if (cookie < 0) {
		/* Not issued: the callback will not run. */
		c->in_flight--;
		io->own.count--;
		io->own.err = nbd_err(lib);
	}
}

/* Issue io as commands of at most max_request bytes on one connection; a
 * flush as one command on any connection: with multi-conn it covers the
 * writes completed on all of them (the NBD protocol), and a server that
 * cannot flush has nothing to flush.  parts holds one extra count while
 * they are issued, so that a completion run from inside libnbd cannot end
 * io early. */
static void issue(struct kcopyd_client *kc, struct kc_iocb *io)
{
	struct kc_nbd *x = io->file->priv;
	struct conn *c = pick_conn(x);
	uint64_t off = io->done;

	io->own.err = c ? 0 : -ENOTCONN;
	io->own.count = 1;
	io->own.ptr = c;
	if (c && io->op == KC_IO_FLUSH) {
		if (io->file->can_flush)
			send_part(c, io, 0, 0);
		c = NULL;
	}
	while (c && off < io->len && !io->own.err) {
		size_t len = io->len - off < x->max_request
			     ? io->len - off : x->max_request;

		send_part(c, io, off, len);
		off += len;
	}
	if (--io->own.count == 0)
		ended(x->nc, io);
}

/* Requests that end here (no connection left, a command libnbd would not
 * take) end outside the engine's poll: it is kicked to go round again. */
static void nbd_submit(struct kcopyd_client *kc)
{
	struct kc_nbd_client *nc = kc_backend_state(kc, &kc_nbd_backend);

	while (nc->queue) {
		struct kc_iocb *io = nc->queue;

		nc->queue = io->qnext;
		if (!nc->queue)
			nc->tail = &nc->queue;
		issue(kc, io);
	}
	if (nc->done)
		kc->kick = true;
	hand_back(kc, nc);
	if (nc->queue)
		kc->kick = true;	/* queued by the owners told */
}

/* Drop a connection that stopped answering: libnbd sees the end of the
 * socket on the next notify and fails what is in flight on it. */
static void drop(struct conn *c)
{
	const struct kc_nbd_lib *lib = c->export->nc->lib;
	int fd = lib->aio_get_fd(c->h);

	c->dropped = true;
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static unsigned int nbd_poll_prepare(struct kcopyd_client *kc,
				     struct pollfd *pfds, void **polled,
				     unsigned int max, int *timeout_ms)
{
	const struct kc_nbd_client *nc = kc_backend_state(kc, &kc_nbd_backend);
	const struct kc_nbd_lib *lib = nc->lib;
	uint64_t timeout_us = nc->timeout_us;
	uint64_t now = kc_now_us();
	unsigned int n = 0, i;
	struct kc_file *f;

	for (f = kc->files; f; f = f->next) {
		struct kc_nbd *x = f->priv;

		if (f->ops != &kc_nbd_ops)
			continue;
		for (i = 0; i < x->num_conns && n < max; i++) {
			struct conn *c = &x->conns[i];
			unsigned int dir;
			int fd;

			if (!c->in_flight)
				continue;
			if (timeout_us && !c->dropped &&
			    now - c->last_us > timeout_us)
				drop(c);
			fd = lib->aio_get_fd(c->h);
			if (fd < 0)
				continue;
			dir = lib->aio_get_direction(c->h);
			pfds[n].fd = fd;
			pfds[n].events = (dir & LIBNBD_AIO_DIRECTION_READ
					  ? POLLIN : 0) |
					 (dir & LIBNBD_AIO_DIRECTION_WRITE
					  ? POLLOUT : 0);
			pfds[n].revents = 0;
			polled[n++] = c;
			if (timeout_us) {
				uint64_t left = c->last_us + timeout_us - now;
				int ms = c->dropped ? 100 : kc_ms_of_us(left);

				if (*timeout_ms < 0 || ms < *timeout_ms)
					*timeout_ms = ms;
			}
		}
	}
	return n;
}

static void nbd_poll_done(struct kcopyd_client *kc,
			  const struct pollfd *pfds, void *const *polled,
			  unsigned int n)
{
	struct kc_nbd_client *nc = kc_backend_state(kc, &kc_nbd_backend);
	const struct kc_nbd_lib *lib = nc->lib;
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct conn *c = polled[i];
		short ev = pfds[i].revents;

		/* A failed notify means the connection is dead: libnbd has
		 * failed its commands, through their callbacks. */
		if (ev & (POLLIN | POLLHUP | POLLERR))
			lib->aio_notify_read(c->h);
		else if (ev & POLLOUT)
			lib->aio_notify_write(c->h);
		else if (c->dropped)
			lib->aio_notify_read(c->h);
	}
	hand_back(kc, nc);
}

/* ------------------------------------------------------------ the map */

/* Part of a block status reply (libnbd's extent callback): entries are
 * (length, flags) pairs from offset on.  Kept only while its request is
 * awaited: a reply that comes after a timeout is ignored. */
static int map_part(void *user_data, const char *metacontext,
		    uint64_t offset, uint32_t *entries, size_t nr_entries,
		    int *error)
{
	struct kc_nbd *x = user_data;
	uint64_t pos = offset;
	size_t i;

	if (!x->map_wanted || strcmp(metacontext,
				     LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
		return 0;
	if (*error) {
		x->map_err = -*error;
		return 0;
	}
	if (offset != x->map_start) {
		x->map_err = -EPROTO;
		return 0;
	}
	x->num_map = 0;
	for (i = 0; i + 1 < nr_entries; i += 2) {
		bool data = !(entries[i + 1] & LIBNBD_STATE_ZERO);

		if (entries[i] == 0)
			break;
		pos += entries[i];
		if (x->num_map && x->map[x->num_map - 1].data == data) {
			x->map[x->num_map - 1].end = pos;
			continue;
		}
		if (x->num_map == x->map_cap) {
			size_t cap = x->map_cap ? 2 * x->map_cap : 64;
			struct extent *m = realloc(x->map, cap * sizeof(*m));

			if (!m) {
				x->map_err = -ENOMEM;
				x->num_map = 0;
				return 0;
			}
			x->map = m;
			x->map_cap = cap;
		}
		x->map[x->num_map++] = (struct extent){ pos, data };
	}
	return 0;
}

/* Wait for command cookie on c until the deadline (0: none): 0 once it has
 * completed, or a negative errno.  Called with kc->lock held, which is
 * dropped around the wait on the socket (never held while waiting on the
 * network) and taken again to let libnbd read or write it, as the engine
 * does: its completion callbacks (of other commands too) run under
 * kc->lock. */
static int map_wait(struct kcopyd_client *kc, struct conn *c, int64_t cookie,
		    uint64_t deadline)
{
	const struct kc_nbd_lib *lib = c->export->nc->lib;

	for (;;) {
		int r = lib->aio_command_completed(c->h, (uint64_t)cookie);
		uint64_t now = kc_now_us();
		struct pollfd pfd;
		unsigned int dir;

		if (r != 0)
			return r < 0 ? nbd_err(lib) : 0;
		if (deadline && now >= deadline)
			return -ETIMEDOUT;
		pfd.fd = lib->aio_get_fd(c->h);
		if (pfd.fd < 0)
			return -ENOTCONN;
		dir = lib->aio_get_direction(c->h);
		pfd.events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
			     (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
		pfd.revents = 0;
		pthread_mutex_unlock(&kc->lock);
		r = poll(&pfd, 1, deadline ? kc_ms_of_us(deadline - now) : -1);
		if (r < 0)
			r = errno == EINTR ? 0 : -errno;
		pthread_mutex_lock(&kc->lock);
		if (r < 0)
			return r;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
			lib->aio_notify_read(c->h);
		else if (pfd.revents & POLLOUT)
			lib->aio_notify_write(c->h);
	}
}

/* Ask the server for the map from pos on, and wait for the reply within
 * the client's timeout, without kc->lock while waiting (map_wait): one
 * fetch at a time per export (x->map_busy), since the map is kept in x.
 * Other commands on the connection go on and end meanwhile (their owners
 * hear of it in the engine's next hand_back; the engine is woken for it
 * when the fetch is not its own). */
static int map_fetch(struct kcopyd_client *kc, struct kc_file *f,
		     uint64_t pos, uint64_t len)
{
	struct kc_nbd *x = f->priv;
	struct kc_nbd_client *nc = x->nc;
	const struct kc_nbd_lib *lib = nc->lib;
	nbd_extent_callback cb = { .callback = map_part, .user_data = x };
	uint64_t count = len > NBD_MAP_WINDOW ? len : NBD_MAP_WINDOW;
	uint64_t deadline = nc->timeout_us ? kc_now_us() + nc->timeout_us : 0;
	struct conn *c;
	int64_t cookie;
	int r = 0;

	while (x->map_busy)
		pthread_cond_wait(&nc->map_cond, &kc->lock);
	c = pick_conn(x);
	if (!c)
		return -ENOTCONN;
	if (count > NBD_MAP_WINDOW)
		count = NBD_MAP_WINDOW;
	if (count > f->size - pos)
		count = f->size - pos;
	x->map_busy = true;
	x->map_start = pos;
	x->num_map = 0;
	x->map_hint = 0;
	x->map_err = 0;
	x->map_wanted = true;
	cookie = lib->aio_block_status(c->h, count, pos, cb,
				      NBD_NULL_COMPLETION, 0);
	r = cookie < 0 ? nbd_err(lib) : map_wait(kc, c, cookie, deadline);
	x->map_wanted = false;
	if (r >= 0)
		r = x->map_err;
	if (r == 0 && x->num_map == 0)
		r = -EPROTO;	/* a reply that says nothing of pos */
	if (r < 0)
		x->num_map = 0;
	x->map_busy = false;
	pthread_cond_broadcast(&nc->map_cond);
	if ((nc->done || nc->queue) &&
	    !pthread_equal(pthread_self(), kc->engine))
		kc_engine_wake(kc);
	return r < 0 ? r : 0;
}

/* The export's map, from the server's base:allocation block status: a
 * range the server says reads as zeros (NBD_STATE_ZERO) is a hole, holes
 * that are not known to read as zeros are data.  One request answers for
 * NBD_MAP_WINDOW bytes; sub-jobs ask in ascending order. */
static int nbd_extents(struct kcopyd_client *kc, struct kc_file *f,
		       uint64_t pos, uint64_t len, uint64_t *run)
{
	struct kc_nbd *x = f->priv;
	const struct extent *e;
	int r;

	if (!x->can_extents)
		return -EOPNOTSUPP;
	if (!x->num_map || pos < x->map_start ||
	    pos >= x->map[x->num_map - 1].end) {
		r = map_fetch(kc, f, pos, len);
		if (r < 0)
			return r;
	}
	if (x->map_hint >= x->num_map ||
	    (x->map_hint && pos < x->map[x->map_hint - 1].end))
		x->map_hint = 0;
	while (x->map[x->map_hint].end <= pos)
		x->map_hint++;
	e = &x->map[x->map_hint];
	*run = e->end - pos < len ? e->end - pos : len;
	return e->data;
}

/* ------------------------------------------------------ open and close */

/* A server is started by libnbd's fork in the calling thread, and would
 * inherit its signal mask: a caller that blocks SIGTERM to read it from a
 * signalfd (kcopy does) would leave the server deaf to the SIGTERM with
 * which libnbd stops it when the handle is closed, and the close, which
 * then waits for it, would hang.  So the child of a fork made while this
 * thread starts a server (starting_server, copied into the child with the
 * thread) unblocks every signal before libnbd execs the server; other
 * forks of the process are left alone.  It also becomes the leader of its
 * own process group: a server that fails to start is killed with all it
 * started (a wrapper's children: kill_server), and a terminal's Ctrl-C
 * reaches the caller only, which stops the server when it closes the
 * export, after its writes were flushed.  The child writes its pid, once
 * its group exists, into server_pid, a page shared with the parent (libnbd
 * 1.14 has no nbd_get_subprocess_pid).  Process-wide by nature: the
 * handler is registered once per process, and is glibc's to drop when
 * the library is unloaded. */
static __thread bool starting_server;
static __thread pid_t *server_pid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void child_unblock(void)
{
	sigset_t none;

	if (!starting_server)
		return;
	setpgid(0, 0);
	if (server_pid)
		__atomic_store_n(server_pid, getpid(), __ATOMIC_RELEASE);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void atfork_register(void)
{
	pthread_atfork(NULL, NULL, child_unblock);
}

/* Start the server of argv on h (libnbd's socket activation): the fork is
 * made inside the call; its child writes its pid into *pid (shared with
 * it, see child_unblock) before it execs. */
static int start_server(const struct kc_nbd_lib *lib, struct nbd_handle *h,
			char *const argv[], pid_t *pid)
{
	int r;

	pthread_once(&atfork_once, atfork_register);
	server_pid = pid;
	starting_server = true;
	r = lib->aio_connect_systemd_socket_activation(h, (char **)argv);
	starting_server = false;
	server_pid = NULL;
	return r;
}

/* Kill the server started on h that failed, and its process group: what
 * a wrapper (sh -c) started too.  A pid not written yet is that of a child
 * that has not run its atfork handler, so has not exec'd nor started
 * anything: libnbd's kill of its child is enough. */
static void kill_server(const struct kc_nbd_lib *lib, struct nbd_handle *h,
			const pid_t *pid)
{
	pid_t p = pid ? __atomic_load_n(pid, __ATOMIC_ACQUIRE) : 0;

	if (p > 0)
		kill(-p, SIGKILL);
	lib->kill_subprocess(h, SIGKILL);
}

/* r, a failed connection's error; with say, libnbd's message (what; NULL
 * if it has none) is the thread's reason too (kcopyd_get_error). */
static int conn_failed(bool say, int r, const char *what)
{
	return say ? kc_set_error(r, "%s", what ? what : strerror(-r)) : r;
}

/* The slice in which a connection's handshake is waited for: how soon an
 * open notices kcopyd_client_stop. */
#define NBD_CONNECT_SLICE_MS 100

/* Has kcopyd_client_stop been called on kc since its count was stops? */
static bool stopped_since(struct kcopyd_client *kc, unsigned int stops)
{
	return atomic_load(&kc->stops) != stops;
}

/* Connect to uri, or to a server started from argv (uri NULL) by systemd
 * socket activation, within timeout_us (0: no limit), as requests are
 * bounded: a server that accepts the connection and then says nothing is
 * an error (-ETIMEDOUT), not a hang.  The wait is given up with -EINTR
 * once kcopyd_client_stop has been called on kc since its count was
 * stops (another thread's: the caller's is here).  On failure, with say,
 * the reason is the thread's error (kcopyd_get_error: libnbd's message); a
 * server started for the connection is killed with its process group: it
 * serves nobody, and closing its handle waits for it to exit. */
static int connect_one(struct kcopyd_client *kc, unsigned int stops,
		       const struct kc_nbd_lib *lib, const char *uri,
		       char *const argv[], uint64_t timeout_us, bool say,
		       struct nbd_handle **hp)
{
	struct nbd_handle *h = lib->create();
	uint64_t deadline = kc_now_us() + timeout_us;
	pid_t *pid = NULL;
	int r = 0;

	if (!h)
		return conn_failed(say, nbd_err(lib), lib->get_error());
	if (!uri) {
		pid = mmap(NULL, sizeof(*pid), PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (pid == MAP_FAILED) {
			r = -errno;
			lib->close(h);
			return conn_failed(say, r, NULL);
		}
		*pid = 0;
	}
	/* The caller's URI is trusted, as a path would be: its tls-psk-file
	 * and tls-certificates parameters may name local files. */
	if (lib->set_uri_allow_local_file(h, true) < 0 ||
	    lib->add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	    (uri ? lib->aio_connect_uri(h, uri)
	     : start_server(lib, h, argv, pid)) < 0)
		r = conn_failed(say, nbd_err(lib), lib->get_error());
	while (r == 0 && lib->aio_is_connecting(h) > 0) {
		uint64_t now = kc_now_us();
		int ms = NBD_CONNECT_SLICE_MS;

		if (timeout_us && deadline - now < (uint64_t)ms * 1000)
			ms = kc_ms_of_us(deadline - now);
		if (stopped_since(kc, stops))
			r = conn_failed(say, -EINTR, "interrupted "
					"(kcopyd_client_stop)");
		else if (timeout_us && now >= deadline)
			r = conn_failed(say, -ETIMEDOUT, "the server did not "
					"finish the NBD handshake in time");
		else if (lib->poll(h, ms) < 0)
			r = conn_failed(say, nbd_err(lib), lib->get_error());
	}
	if (r == 0 && lib->aio_is_ready(h) <= 0)
		r = conn_failed(say, nbd_err(lib), lib->get_error());
	if (r < 0) {
		if (!uri)
			kill_server(lib, h, pid);
		lib->close(h);
	} else {
		*hp = h;
	}
	if (pid)
		munmap(pid, sizeof(*pid));
	return r;
}

static void export_free(struct kc_nbd *x)
{
	const struct kc_nbd_lib *lib = x->nc->lib;
	unsigned int i;

	/* The first connection last: for a server kcopy started, closing
	 * it waits for the server to exit, which it does once its last
	 * client has gone. */
	for (i = x->num_conns; i-- > 0;) {
		if (!x->conns[i].dropped)
			lib->shutdown(x->conns[i].h, 0);
		lib->close(x->conns[i].h);
	}
	free(x->map);
	free(x);
}

/* Probe what the export offers into f. */
static int probe(const struct kc_nbd_lib *lib, struct nbd_handle *h,
		 int flags, struct kc_file *f, uint64_t *max_request)
{
	int64_t size = lib->get_size(h);
	int64_t min = lib->get_block_size(h, LIBNBD_SIZE_MINIMUM);
	int64_t pref = lib->get_block_size(h, LIBNBD_SIZE_PREFERRED);
	int64_t max = lib->get_block_size(h, LIBNBD_SIZE_MAXIMUM);

	if (size < 0)
		return nbd_err(lib);
	f->read_only = lib->is_read_only(h) > 0;
	if ((flags & O_ACCMODE) != O_RDONLY && f->read_only)
		return -EROFS;
	f->size = (uint64_t)size;
	f->lbs = KCOPYD_SECTOR_SIZE;
	while (min > 0 && f->lbs < (uint64_t)min && f->lbs < KCOPYD_PAGE_SIZE)
		f->lbs <<= 1;
	f->pref_block = pref > 0 ? (unsigned int)pref : 0;
	f->can_flush = lib->can_flush(h) > 0;
	f->can_multi_conn = lib->can_multi_conn(h) > 0;
	f->can_zero = lib->can_zero(h) > 0;
	*max_request = max > 0 && (uint64_t)max < NBD_DEFAULT_MAX_REQUEST
		       ? (uint64_t)max : NBD_DEFAULT_MAX_REQUEST;
	/* Keep every command a multiple of the logical block. */
	*max_request -= *max_request % f->lbs;
	return 0;
}

/* How long a server kcopy started may take to greet a further connection:
 * it is local and already serving one, so it greets at once, unless it
 * does not take more connections than it has (qemu-nbd --shared=2 offers
 * multi-conn and leaves a third waiting): then the export goes on with
 * those it has, without a wait of the whole timeout. */
#define NBD_LOCAL_MORE_TIMEOUT_US 2000000ull

/* More connections to the server of conns[0] (its URI; for a server kcopy
 * started, that of the socket libnbd made for it), up to NBD_CONNS.  One
 * that fails is no error, and leaves the thread's reason alone. */
static void connect_more(struct kc_nbd *x, unsigned int stops,
			 const char *uri, uint64_t timeout_us)
{
	const struct kc_nbd_lib *lib = x->nc->lib;
	char *made = uri ? NULL : lib->get_uri(x->conns[0].h);

	if (!uri && !made)
		return;		/* one connection is enough to go on */
	if (!uri && (!timeout_us || timeout_us > NBD_LOCAL_MORE_TIMEOUT_US))
		timeout_us = NBD_LOCAL_MORE_TIMEOUT_US;
	while (x->num_conns < NBD_CONNS &&
	       connect_one(x->kc, stops, lib, uri ? uri : made, NULL,
			   timeout_us, false, &x->conns[x->num_conns].h) == 0)
		x->num_conns++;
	free(made);
}

/* Open an export by its URI, or (uri NULL) by starting the server argv. */
static int open_export(struct kcopyd_client *kc, const char *uri,
		       char *const argv[], int flags, int *fd)
{
	const struct kc_nbd_lib *lib = NULL;
	struct kc_nbd *x;
	struct kc_file *f;
	uint64_t timeout_us = 0;
	unsigned int stops, i;
	void *state;
	int r;

	if (!kc || (!uri && (!argv || !argv[0])) || !fd ||
	    ((flags & O_ACCMODE) != O_RDONLY && (flags & O_ACCMODE) != O_RDWR))
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	f = calloc(1, sizeof(*f));
	if (!x || !f) {
		free(x);
		free(f);
		return -ENOMEM;
	}
	x->kc = kc;
	stops = atomic_load(&kc->stops);	/* a stop from now on: -EINTR */
	pthread_mutex_lock(&kc->lock);
	r = kc_backend_use(kc, &kc_nbd_backend, &state);
	if (r == 0) {
		x->nc = state;
		timeout_us = x->nc->timeout_us;
		r = lib_load(x->nc);
		lib = x->nc->lib;
	}
	pthread_mutex_unlock(&kc->lock);
	if (r < 0)
		goto fail_free;
	r = connect_one(kc, stops, lib, uri, argv, timeout_us, true,
			&x->conns[0].h);
	if (r < 0)
		goto fail_free;
	x->num_conns = 1;
	r = probe(lib, x->conns[0].h, flags, f, &x->max_request);
	x->can_extents = lib->can_meta_context(x->conns[0].h,
				LIBNBD_CONTEXT_BASE_ALLOCATION) > 0;
	/* More connections where the server says they see one another's
	 * writes; the page budget still bounds what is in flight. */
	if (r == 0 && f->can_multi_conn)
		connect_more(x, stops, uri, timeout_us);
	/* A stop while the export was probed or further connections made
	 * interrupts the open too. */
	if (r == 0 && stopped_since(kc, stops))
		r = kc_set_error(-EINTR, "interrupted (kcopyd_client_stop)");
	for (i = 0; i < x->num_conns; i++)
		x->conns[i].export = x;
	f->fd = r == 0 ? eventfd(0, EFD_CLOEXEC) : -1;
	if (r == 0 && f->fd < 0)
		r = -errno;
	if (r < 0) {
		export_free(x);
		free(f);
		return r;
	}
	f->ops = &kc_nbd_ops;
	f->priv = x;
	f->needs_whole_blocks = true;
	f->fixed_size = true;
	f->standin_fd = true;
	f->can_extents = x->can_extents;
	f->accmode = flags & O_ACCMODE;
	f->connections = x->num_conns;
	f->refs = 1;	/* the open's, until kcopyd_close_uri */
	pthread_mutex_lock(&kc->lock);
	f->next = kc->files;
	kc->files = f;
	pthread_mutex_unlock(&kc->lock);
	*fd = f->fd;
	return 0;

fail_free:
	free(x);
	free(f);
	return r;
}

int kcopyd_open_uri(struct kcopyd_client *kc, const char *uri, int flags,
		    int *fd)
{
	return uri ? open_export(kc, uri, NULL, flags, fd) : -EINVAL;
}

int kcopyd_open_command(struct kcopyd_client *kc, char *const argv[],
			int flags, int *fd)
{
	return argv && argv[0] ? open_export(kc, NULL, argv, flags, fd)
			       : -EINVAL;
}

/* Unlink the export with stand-in fd from kc->files; -EBADF, or -EBUSY
 * while a job uses it.  Called with kc->lock held. */
static int unlink_export(struct kcopyd_client *kc, int fd,
			 struct kc_file **out)
{
	struct kc_file **p;

	for (p = &kc->files; *p; p = &(*p)->next) {
		if ((*p)->standin_fd && (*p)->fd == fd) {
			if ((*p)->refs > 1)
				return -EBUSY;
			*out = *p;
			*p = (*p)->next;
			return 0;
		}
	}
	return -EBADF;
}

static void close_export(struct kc_file *f)
{
	export_free(f->priv);
	close(f->fd);
	free(f);
}

int kcopyd_close_uri(struct kcopyd_client *kc, int fd)
{
	struct kc_file *f = NULL;
	int r;

	if (!kc)
		return -EINVAL;
	pthread_mutex_lock(&kc->lock);
	r = unlink_export(kc, fd, &f);
	pthread_mutex_unlock(&kc->lock);
	if (r == 0)
		close_export(f);	/* idle: the engine does not poll it */
	return r;
}

int kcopyd_set_timeout(struct kcopyd_client *kc, unsigned int seconds)
{
	struct kc_nbd_client *nc;
	void *state;
	int r;

	if (!kc)
		return -EINVAL;
	pthread_mutex_lock(&kc->lock);
	r = kc_backend_use(kc, &kc_nbd_backend, &state);
	if (r == 0) {
		nc = state;
		nc->timeout_us = (uint64_t)seconds * 1000000;
	}
	pthread_mutex_unlock(&kc->lock);
	return r;
}

static int nbd_client_create(struct kcopyd_client *kc, void **state)
{
	struct kc_nbd_client *nc = calloc(1, sizeof(*nc));

	(void)kc;
	if (!nc)
		return -ENOMEM;
	nc->tail = &nc->queue;
	nc->done_tail = &nc->done;
	nc->timeout_us = NBD_DEFAULT_TIMEOUT_S * 1000000ull;
	pthread_cond_init(&nc->map_cond, NULL);
	*state = nc;
	return 0;
}

/* The exports the caller left open are closed, libnbd unloaded. */
static void nbd_client_destroy(struct kcopyd_client *kc, void *state)
{
	struct kc_nbd_client *nc = state;
	struct kc_file **p = &kc->files, *f;

	while ((f = *p)) {
		if (f->ops == &kc_nbd_ops) {
			*p = f->next;
			close_export(f);
		} else {
			p = &f->next;
		}
	}
	if (nc->lib) {
		dlclose(nc->lib->so);
		free(nc->lib);
	}
	pthread_cond_destroy(&nc->map_cond);
	free(nc);
}

static const struct kc_backend kc_nbd_backend = {
	.name = "nbd",
	.client_create = nbd_client_create,
	.client_destroy = nbd_client_destroy,
};

#else /* !HAVE_LIBNBD */

/* Built without libnbd: no export can be opened, and the timeout of
 * requests to one has nothing to apply to. */
int kcopyd_set_timeout(struct kcopyd_client *kc, unsigned int seconds)
{
	(void)seconds;
	return kc ? 0 : -EINVAL;
}

int kcopyd_open_uri(struct kcopyd_client *kc, const char *uri, int flags,
		    int *fd)
{
	(void)kc; (void)uri; (void)flags; (void)fd;
	return -EPROTONOSUPPORT;
}

int kcopyd_open_command(struct kcopyd_client *kc, char *const argv[],
			int flags, int *fd)
{
	(void)kc; (void)argv; (void)flags; (void)fd;
	return -EPROTONOSUPPORT;
}

int kcopyd_close_uri(struct kcopyd_client *kc, int fd)
{
	(void)kc; (void)fd;
	return -EBADF;
}

#endif /* HAVE_LIBNBD */
