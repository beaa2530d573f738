/*
 * ratelimit.c - per-key event rate limit with a suppressed count
 * (ratelimit.h). A fixed window per key, a table of max_keys slots.
 */
#include <stdlib.h>

#include "ratelimit.h"

struct slot {
	bool used;
	uint32_t key;
	long long start_ms;	/* the current window began */
	unsigned count;		/* events allowed in it */
	uint64_t suppressed;	/* events refused in it */
};

struct pol_ratelimit {
	unsigned burst;
	long long interval_ms;
	size_t n;		/* slots, the last one for POL_RATELIMIT_OTHERS */
	struct slot *slots;
};

struct pol_ratelimit *pol_ratelimit_new(unsigned burst, long long interval_ms,
					size_t max_keys)
{
	struct pol_ratelimit *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return NULL;
	rl->burst = burst;
	rl->interval_ms = interval_ms > 0 ? interval_ms : 1;
	rl->n = (max_keys ? max_keys : 1) + 1;
	rl->slots = calloc(rl->n, sizeof(*rl->slots));
	if (!rl->slots) {
		free(rl);
		return NULL;
	}
	rl->slots[rl->n - 1].used = true;
	rl->slots[rl->n - 1].key = POL_RATELIMIT_OTHERS;
	return rl;
}

void pol_ratelimit_free(struct pol_ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->slots);
	free(rl);
}

/* The slot of key: its own, a free one, or the shared last one. */
static struct slot *slot_of(struct pol_ratelimit *rl, uint32_t key,
			    long long now_ms)
{
	struct slot *free_slot = NULL;

	for (size_t i = 0; i + 1 < rl->n; i++) {
		struct slot *s = &rl->slots[i];

		if (s->used && s->key == key)
			return s;
		/* Idle for a whole interval with nothing to report: reusable. */
		if (!free_slot && (!s->used ||
				   (now_ms - s->start_ms >= rl->interval_ms &&
				    s->suppressed == 0)))
			free_slot = s;
	}
	if (!free_slot)
		return &rl->slots[rl->n - 1];
	free_slot->used = true;
	free_slot->key = key;
	free_slot->start_ms = now_ms;
	free_slot->count = 0;
	free_slot->suppressed = 0;
	return free_slot;
}

bool pol_ratelimit_allow(struct pol_ratelimit *rl, uint32_t key,
			 long long now_ms)
{
	struct slot *s = slot_of(rl, key, now_ms);

	if (now_ms - s->start_ms >= rl->interval_ms && s->suppressed == 0) {
		s->start_ms = now_ms;
		s->count = 0;
	}
	if (s->count < rl->burst && now_ms - s->start_ms < rl->interval_ms) {
		s->count++;
		return true;
	}
	s->suppressed++;
	return false;
}

void pol_ratelimit_flush(struct pol_ratelimit *rl, long long now_ms, bool all,
			 void (*fn)(void *arg, uint32_t key, uint64_t count),
			 void *arg)
{
	for (size_t i = 0; i < rl->n; i++) {
		struct slot *s = &rl->slots[i];

		if (!s->used)
			continue;
		if (!all && now_ms - s->start_ms < rl->interval_ms)
			continue;
		if (s->suppressed)
			fn(arg, s->key, s->suppressed);
		else if (i + 1 < rl->n && !all)
			s->used = false;	/* idle: forgotten */
		s->start_ms = now_ms;
		s->count = 0;
		s->suppressed = 0;
	}
}
