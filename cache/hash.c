/*
 * hash.c - verification digests (EVP) and per-chunk xxh3 over file ranges.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "hash_int.h"

struct hash {
	EVP_MD_CTX *ctx;
	enum pol_algo algo;
};

struct hash *hash_new(enum pol_algo algo)
{
	const EVP_MD *md;
	struct hash *h;

	switch (algo) {
	case POL_ALGO_SHA256:
		md = EVP_sha256();
		break;
	case POL_ALGO_SHA512:
		md = EVP_sha512();
		break;
	default:
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->algo = algo;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, md, NULL) != 1) {
		hash_free(h);
		return NULL;
	}
	return h;
}

struct hash *hash_dup(const struct hash *src)
{
	struct hash *h;

	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->algo = src->algo;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_MD_CTX_copy_ex(h->ctx, src->ctx) != 1) {
		hash_free(h);
		return NULL;
	}
	return h;
}

void hash_free(struct hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int hash_update(struct hash *h, const void *buf, size_t len)
{
	if (!len)
		return 0;
	return EVP_DigestUpdate(h->ctx, buf, len) == 1 ? 0 : -EIO;
}

int hash_final(struct hash *h, struct pol_digest *out)
{
	unsigned char raw[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(h->ctx, raw, &n) != 1)
		return -EIO;
	return pol_digest_from_raw(h->algo, raw, n, out) ? -EIO : 0;
}

int hash_fd_range(int fd, uint64_t off, uint64_t len, struct hash *h,
		  uint64_t *xxh, unsigned char *buf)
{
	XXH3_state_t *xs = NULL;
	int rc = 0;

	if (xxh) {
		xs = XXH3_createState();
		if (!xs)
			return -ENOMEM;
		XXH3_64bits_reset(xs);
	}
	/*
	 * pread, never a mapping: a data file that shrinks under us (another
	 * process, a full disk, an operator) must give a short read (-EIO),
	 * not SIGBUS on a page past the new end (issue 10 item 10).
	 */
	while (len) {
		size_t want = len < HASH_PIECE ? (size_t)len : HASH_PIECE;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out_state;
		}
		if (n == 0) {
			rc = -EIO;
			goto out_state;
		}
		if (xs)
			XXH3_64bits_update(xs, buf, (size_t)n);
		if (h) {
			rc = hash_update(h, buf, (size_t)n);
			if (rc)
				goto out_state;
		}
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	if (rc == 0 && xs)
		*xxh = XXH3_64bits_digest(xs);

out_state:
	if (xs)
		XXH3_freeState(xs);
	return rc;
}

int hash_fd(int fd, uint64_t size, enum pol_algo algo, struct pol_digest *out)
{
	unsigned char *buf;
	struct hash *h;
	int rc;

	h = hash_new(algo);
	if (!h)
		return -ENOMEM;
	buf = malloc(HASH_PIECE);
	if (!buf) {
		rc = -ENOMEM;
		goto out_hash;
	}
	rc = hash_fd_range(fd, 0, size, h, NULL, buf);
	if (!rc)
		rc = hash_final(h, out);
	free(buf);
out_hash:
	hash_free(h);
	return rc;
}
