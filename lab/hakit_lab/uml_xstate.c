/*
 * hakit-lab: LD_PRELOAD for Debian bookworm's linux.uml (6.1) on hosts whose XSAVE area is larger
 * than AVX's 832 bytes (AVX-512, AMX).
 *
 * UML 6.1 saves and restores a guest task's FPU state with PTRACE_GETREGSET/SETREGSET of
 * NT_X86_XSTATE and a buffer of sizeof(struct _xstate) = 832 bytes. The host kernel answers a GET
 * of any length, but refuses a SET that is not the whole XSAVE area (xstateregs_set: EFAULT), so on
 * such a CPU init dies at its first context switch ("ptrace set fp regs failed, errno = 14",
 * "Attempted to kill init"). Newer UML kernels size the buffer from the host (seen working: 7.2).
 *
 * This wrapper keeps, per UML buffer (one per guest task), the whole area the host returned on the
 * last GET; a SET lays UML's 832 bytes over that copy and hands the host the whole area. So every
 * guest task keeps its full register state across switches. Not covered: a signal frame in the
 * guest carries only the 832 bytes, so a handler that uses AVX-512 registers clobbers them for the
 * interrupted code (as on a host kernel that does not know AVX-512).
 *
 * On a host whose area is 832 bytes the wrapper passes every call through untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

#define SLOTS 4096 /* guest tasks alive at once, per kernel; more fall back to a fresh GET */

struct slot {
	void *key; /* UML's buffer */
	int filled; /* full holds a GET of that task */
	unsigned char *full;
};

static struct slot slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ptrace_fn real_ptrace;
static size_t host_size; /* 0: not known yet */

static long call(int req, pid_t pid, void *addr, void *data)
{
	if (!real_ptrace)
		real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
	return real_ptrace(req, pid, addr, data);
}

static struct slot *slot_for(void *key, int create)
{
	size_t h = ((uintptr_t)key >> 4) % SLOTS;
	for (size_t i = 0; i < SLOTS; i++) {
		struct slot *s = &slots[(h + i) % SLOTS];
		if (s->key == key)
			return s;
		if (!s->key) {
			if (!create)
				return NULL;
			s->full = malloc(host_size);
			if (!s->full)
				return NULL;
			s->key = key;
			s->filled = 0;
			return s;
		}
	}
	return NULL;
}

/* The whole area of pid into buf (host_size bytes); learns host_size on first use. */
static long get_full(pid_t pid, unsigned char *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	long rc = call(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov);
	if (rc == 0 && !host_size)
		host_size = iov.iov_len;
	return rc;
}

static long xstate(int req, pid_t pid, struct iovec *iov)
{
	if (!host_size) {
		static unsigned char probe[65536];
		long rc = get_full(pid, probe, sizeof(probe));
		if (rc != 0)
			return rc;
	}
	if (iov->iov_len >= host_size)
		return call(req, pid, (void *)NT_X86_XSTATE, iov);

	pthread_mutex_lock(&lock);
	long rc;
	struct slot *s = slot_for(iov->iov_base, 1);
	unsigned char *full = s ? s->full : malloc(host_size);
	if (!full) {
		pthread_mutex_unlock(&lock);
		errno = ENOMEM;
		return -1;
	}
	if (req == PTRACE_GETREGSET) {
		rc = get_full(pid, full, host_size);
		if (rc == 0) {
			memcpy(iov->iov_base, full, iov->iov_len);
			if (s)
				s->filled = 1;
		}
	} else {
		/* A buffer never read back (a new task's copy of its parent's): start from pid's own. */
		rc = s && s->filled ? 0 : get_full(pid, full, host_size);
		if (rc == 0) {
			if (s)
				s->filled = 1;
			struct iovec whole = { .iov_base = full, .iov_len = host_size };
			memcpy(full, iov->iov_base, iov->iov_len);
			rc = call(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
		}
	}
	if (!s)
		free(full);
	pthread_mutex_unlock(&lock);
	return rc;
}

long ptrace(enum __ptrace_request request, ...)
{
	va_list ap;
	va_start(ap, request);
	pid_t pid = va_arg(ap, pid_t);
	void *addr = va_arg(ap, void *);
	void *data = va_arg(ap, void *);
	va_end(ap);

	if ((request == PTRACE_GETREGSET || request == PTRACE_SETREGSET) &&
	    (uintptr_t)addr == NT_X86_XSTATE && data)
		return xstate(request, pid, (struct iovec *)data);
	return call(request, pid, addr, data);
}
