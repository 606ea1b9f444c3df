/*
 * direct.c - a reader's side of direct mapping (tcache.h: tc_map_fd):
 * ask the daemon where an open tensor's bytes lie (ioctl TC_IOC_MAP), then
 * map those pool pages as one range: an anonymous reservation of the
 * whole length, each extent mapped over its part with MAP_FIXED.  Every
 * extent but the last is whole blocks, so the parts meet exactly.  A
 * tensor of at most 2 KiB may share its block with others (packed): its
 * one extent starts inside a page, and the page is mapped with the
 * tensor's bytes at an offset in it.
 *
 * Runs in the reader's process, never the daemon's; touches no tc_store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tcache.h"

static size_t page_up(uint64_t n)
{
	return (size_t)((n + TC_BLOCK - 1) & ~(uint64_t)(TC_BLOCK - 1));
}

int tc_map_fd(int fd, const void **addr, size_t *len)
{
	static const char empty[1];
	struct tc_ioc_map m;
	uint64_t total = 0;

	if (sysconf(_SC_PAGESIZE) != TC_BLOCK)
		return -EOPNOTSUPP; /* extents would not meet at page bounds */
	if (ioctl(fd, TC_IOC_MAP, &m) < 0)
		return errno == EINVAL || errno == ENOSYS ? -ENOTTY : -errno;
	if (m.abi != TC_IOC_ABI || m.nextents > TC_IOC_MAX_EXTENTS ||
	    !m.pool[0] || m.pool[sizeof(m.pool) - 1])
		return -ENOTTY;
	/* a packed tensor: one extent, inside one page */
	size_t head = m.nextents == 1 ? (size_t)(m.ext[0].off % TC_BLOCK) : 0;
	if (head && head + m.ext[0].len > TC_BLOCK)
		return -EPROTO;
	for (uint32_t i = 0; i < m.nextents; i++) {
		if ((m.ext[i].off - head) % TC_BLOCK ||
		    (i + 1 < m.nextents && m.ext[i].len % TC_BLOCK))
			return -EPROTO;
		total += m.ext[i].len;
	}
	if (total != m.size)
		return -EPROTO;
	if (total == 0) {
		*addr = empty;
		*len = 0;
		return 0;
	}
	int pool = open(m.pool, O_RDONLY | O_CLOEXEC);
	if (pool < 0)
		return -errno;
	size_t span = page_up(head + total);
	uint8_t *base = mmap(NULL, span, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int r = 0;
	if (base == MAP_FAILED) {
		r = -errno;
	} else {
		size_t at = 0;
		for (uint32_t i = 0; i < m.nextents && !r; i++) {
			size_t n = page_up(head + m.ext[i].len);
			if (mmap(base + at, n, PROT_READ, MAP_SHARED | MAP_FIXED,
				 pool, (off_t)(m.ext[i].off - head)) == MAP_FAILED)
				r = -errno;
			at += n;
		}
		if (r)
			munmap(base, span);
	}
	close(pool);
	if (r)
		return r;
	*addr = base + head;
	*len = (size_t)total;
	return 0;
}

void tc_unmap(const void *addr, size_t len)
{
	size_t head = (uintptr_t)addr % TC_BLOCK;
	if (len)
		munmap((uint8_t *)addr - head, page_up(head + len));
}
