/*
 * ratelimit.h - how many events of one kind each key (a uid) may write
 * per interval, and how many it had suppressed (DESIGN §8: a flood of
 * wrong names must not fill the disk; past the limit, one line per
 * interval carries the count suppressed). Pure bookkeeping: the caller
 * passes the time and holds whatever lock guards the object.
 */
#ifndef POL_RATELIMIT_H
#define POL_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pol_ratelimit;

/*
 * burst events per key per interval_ms; at most max_keys keys tracked at
 * once (more share one slot, key POL_RATELIMIT_OTHERS). NULL on -ENOMEM.
 */
#define POL_RATELIMIT_OTHERS	UINT32_MAX
struct pol_ratelimit *pol_ratelimit_new(unsigned burst, long long interval_ms,
					size_t max_keys);
void pol_ratelimit_free(struct pol_ratelimit *rl);

/*
 * True when an event of key at now_ms may be written; false when it is
 * suppressed (and counted).
 */
bool pol_ratelimit_allow(struct pol_ratelimit *rl, uint32_t key,
			 long long now_ms);

/*
 * For each key whose interval has ended (at now_ms) with events
 * suppressed, calls fn(arg, key, count) once and starts it afresh; with
 * all, every key with a count, ended or not (at the end). Keys idle for
 * an interval are forgotten.
 */
void pol_ratelimit_flush(struct pol_ratelimit *rl, long long now_ms, bool all,
			 void (*fn)(void *arg, uint32_t key, uint64_t count),
			 void *arg);

#endif
