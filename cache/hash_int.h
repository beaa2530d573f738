/*
 * hash_int.h - digests for verification (OpenSSL EVP, the authority) and
 * xxh3-64 per chunk (local integrity only, never the authority; STYLE.md
 * "Integrity"). Private to cache/.
 */
#ifndef CACHE_HASH_INT_H
#define CACHE_HASH_INT_H

#include <stddef.h>
#include <stdint.h>

#include "../policy/policy.h"

/* Bounded read-back piece: never more than this in memory per reader. */
#define HASH_PIECE	((size_t)1 << 20)

struct hash;

/* Returns a new digest context for algo, or NULL (-ENOMEM). */
struct hash *hash_new(enum pol_algo algo);
/* A copy of src's running state, or NULL. */
struct hash *hash_dup(const struct hash *src);
void hash_free(struct hash *h);
int hash_update(struct hash *h, const void *buf, size_t len);
/* Finishes into *out (raw and canonical string). 0 or -EIO. */
int hash_final(struct hash *h, struct pol_digest *out);

/*
 * Feeds [off, off + len) of fd to h (may be NULL) and returns the xxh3-64 of
 * the range in *xxh (may be NULL), reading through buf (HASH_PIECE bytes).
 * Returns 0, -errno, or -EIO on a short file.
 */
int hash_fd_range(int fd, uint64_t off, uint64_t len, struct hash *h,
		  uint64_t *xxh, unsigned char *buf);

/* Full digest of the first size bytes of fd. 0 or -errno. */
int hash_fd(int fd, uint64_t size, enum pol_algo algo, struct pol_digest *out);

#endif
