/*
 * probe.c - a lookup of <name>@<digest> that the last listing missed
 * (DESIGN §3: "asks this endpoint before answering ENOENT").
 *
 * The FUSE worker that asks never waits on the network itself: the request
 * goes to the probe thread (one connection, one request at a time) and the
 * worker waits at most wait_ms for the answer, then answers ENOENT; a late
 * answer still lands (a confirmed record joins the catalog, a miss is
 * remembered). Misses are remembered for CTL_NEG_TTL_MS, or until a new
 * listing arrives. What one flood of wrong names can cost the control
 * plane is bounded three ways: one request per distinct name while it is
 * remembered, at most CTL_PROBE_QUEUE requests waiting, and a token bucket
 * of CTL_PROBE_RATE requests a second (burst CTL_PROBE_BURST); a lookup
 * past those bounds is ENOENT at once. While the last poll could not reach
 * the control plane (or it refused the token), nothing is asked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../policy/af.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "ctl_int.h"

#define CTL_NEG_TTL_MS		5000
#define CTL_PROBE_QUEUE		32
#define CTL_PROBE_ENTRIES	4096
#define CTL_PROBE_RATE		10
#define CTL_PROBE_BURST		20
#define CTL_PROBE_TIMEOUT_MS	10000
#define CTL_PROBE_BUCKETS	512

enum probe_state {
	PROBE_QUEUED,
	PROBE_RUNNING,
	PROBE_DONE,
};

struct probe {
	char *project, *name, *digest;	/* immutable */
	uint64_t hash;			/* immutable */
	enum probe_state state;		/* lock */
	int result;			/* lock: 0 found, -ENOENT */
	long long expires_ms;		/* lock: when a miss is forgotten */
	unsigned waiters;		/* lock */
	struct probe *hnext;		/* lock */
	struct probe *qnext;		/* lock */
};

struct ctl_probes {
	const struct pol_config *cfg;
	struct ctl_remote *remote;
	ctl_probe_found_fn found;
	void *found_arg;

	pthread_mutex_t lock;
	pthread_cond_t work;		/* the thread: something queued, or stop */
	pthread_cond_t answered;	/* waiters: a probe is done */
	struct probe *buckets[CTL_PROBE_BUCKETS];	/* lock */
	size_t n_entries;		/* lock */
	struct probe *qhead, *qtail;	/* lock */
	unsigned queued;		/* lock: queued or running */
	double tokens;			/* lock */
	long long refill_ms;		/* lock */
	bool stop;			/* lock */
	bool cancel;			/* __atomic: aborts a request in flight */
	uint64_t refused;		/* lock: lookups not asked (budget) */
	long long refused_said_ms;	/* lock */

	pthread_t thread;
	bool started;
	struct ctl_conn *conn;		/* the probe thread */
};

static uint64_t key_hash(const char *p, const char *n, const char *d)
{
	const char *parts[3] = { p, n, d };
	uint64_t h = 1469598103934665603ULL;

	for (int i = 0; i < 3; i++) {
		for (const char *s = parts[i]; *s; s++)
			h = (h ^ (unsigned char)*s) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h;
}

static void probe_free(struct probe *e)
{
	free(e->project);
	free(e->name);
	free(e->digest);
	free(e);
}

int ctl_probes_new(const struct pol_config *cfg, struct ctl_remote *remote,
		   ctl_probe_found_fn found, void *arg,
		   struct ctl_probes **out)
{
	struct ctl_probes *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->cfg = cfg;
	p->remote = remote;
	p->found = found;
	p->found_arg = arg;
	p->tokens = CTL_PROBE_BURST;
	p->refill_ms = af_now_ms();
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&p->answered, &ca);
		pthread_condattr_destroy(&ca);
	}
	rc = ctl_conn_new(cfg, ctl_remote_token(remote), &p->conn);
	if (rc < 0) {
		ctl_probes_free(p);
		return rc;
	}
	ctl_conn_set_cancel(p->conn, &p->cancel);
	*out = p;
	return 0;
}

/* Unlinks e from its bucket; lock held. */
static void unlink_entry(struct ctl_probes *p, struct probe *e)
{
	struct probe **pp = &p->buckets[e->hash % CTL_PROBE_BUCKETS];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			p->n_entries--;
			return;
		}
}

/* Drops answered entries nobody waits on (expired ones unless all); lock held. */
static void purge_locked(struct ctl_probes *p, bool all)
{
	long long now = af_now_ms();

	for (size_t i = 0; i < CTL_PROBE_BUCKETS; i++) {
		struct probe **pp = &p->buckets[i];

		while (*pp) {
			struct probe *e = *pp;

			if (e->state == PROBE_DONE && e->waiters == 0 &&
			    (all || now >= e->expires_ms)) {
				*pp = e->hnext;
				p->n_entries--;
				probe_free(e);
				continue;
			}
			pp = &e->hnext;
		}
	}
}

void ctl_probes_clear_negative(struct ctl_probes *p)
{
	pthread_mutex_lock(&p->lock);
	purge_locked(p, true);
	pthread_mutex_unlock(&p->lock);
}

void ctl_probes_free(struct ctl_probes *p)
{
	if (!p)
		return;
	if (p->started) {
		__atomic_store_n(&p->cancel, true, __ATOMIC_RELAXED);
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_broadcast(&p->work);
		pthread_cond_broadcast(&p->answered);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	/* Waiters (there are none once FUSE stopped) would see stop. */
	for (size_t i = 0; i < CTL_PROBE_BUCKETS; i++) {
		struct probe *e = p->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			probe_free(e);
		}
	}
	ctl_conn_free(p->conn);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->answered);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* Takes one request from the bucket; lock held. */
static bool take_token(struct ctl_probes *p)
{
	long long now = af_now_ms();

	p->tokens += (double)(now - p->refill_ms) * CTL_PROBE_RATE / 1000.0;
	if (p->tokens > CTL_PROBE_BURST)
		p->tokens = CTL_PROBE_BURST;
	p->refill_ms = now;
	if (p->tokens < 1.0)
		return false;
	p->tokens -= 1.0;
	return true;
}

/* Asks the control plane for one registration (the probe thread). */
static int ask_remote(struct ctl_probes *p, const struct probe *e)
{
	struct pol_registration *r = NULL;
	struct ctl_resp resp;
	char path[1024], ref[512], why[512], err[512];
	long long started = af_now_ms();
	size_t pos;
	int rc;

	pos = (size_t)snprintf(path, sizeof(path), "v1/projects/");
	snprintf(ref, sizeof(ref), "%s@%s", e->name, e->digest);
	if (ctl_path_segment(path, sizeof(path), &pos, e->project) < 0 ||
	    pos + 8 >= sizeof(path))
		return -ENOENT;
	memcpy(path + pos, "/blobs/", 8);
	pos += 7;
	if (ctl_path_segment(path, sizeof(path), &pos, ref) < 0)
		return -ENOENT;
	rc = ctl_conn_get(p->conn, path, NULL, NULL, CTL_PROBE_TIMEOUT_MS,
			  &resp, why, sizeof(why));
	if (rc < 0) {
		af_warn("registry: lookup of %s/%s: %s", e->project, ref, why);
		return -ENOENT;
	}
	if (resp.status != 200) {
		if (resp.status != 404)
			af_warn("registry: lookup of %s/%s: status %d",
				e->project, ref, resp.status);
		ctl_resp_release(&resp);
		return -ENOENT;
	}
	rc = pol_registration_parse(resp.body, resp.len, path, &r, err,
				    sizeof(err));
	ctl_resp_release(&resp);
	if (rc < 0) {
		af_warn("registry: %s", err);
		return -ENOENT;
	}
	/* The answer must be the record asked for, nothing else. */
	if (strcmp(r->project, e->project) != 0 ||
	    strcmp(r->name, e->name) != 0 ||
	    strcmp(r->digest.str, e->digest) != 0) {
		af_warn("registry: %s: the control plane answered another record (%s/%s@%s): ignored",
			path, r->project, r->name, r->digest.str);
		pol_registration_free(r);
		return -ENOENT;
	}
	rc = p->found(p->found_arg, r, started) ? 0 : -ENOENT;
	pol_registration_free(r);
	return rc;
}

static void *probe_main(void *arg)
{
	struct ctl_probes *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct probe *e;
		int result;

		while (!p->qhead && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		e = p->qhead;
		p->qhead = e->qnext;
		if (!p->qhead)
			p->qtail = NULL;
		e->state = PROBE_RUNNING;
		pthread_mutex_unlock(&p->lock);

		result = ask_remote(p, e);

		pthread_mutex_lock(&p->lock);
		p->queued--;
		e->state = PROBE_DONE;
		e->result = result;
		e->expires_ms = af_now_ms() + CTL_NEG_TTL_MS;
		/* A confirmed record is in the catalog now: nothing to remember. */
		if (result == 0 && e->waiters == 0) {
			unlink_entry(p, e);
			probe_free(e);
		}
		pthread_cond_broadcast(&p->answered);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int ctl_probes_start(struct ctl_probes *p)
{
	int rc = pthread_create(&p->thread, NULL, probe_main, p);

	if (rc)
		return -rc;
	p->started = true;
	return 0;
}

static struct probe *find_locked(struct ctl_probes *p, uint64_t h,
				 const char *project, const char *name,
				 const char *digest)
{
	for (struct probe *e = p->buckets[h % CTL_PROBE_BUCKETS]; e;
	     e = e->hnext)
		if (e->hash == h && strcmp(e->project, project) == 0 &&
		    strcmp(e->name, name) == 0 &&
		    strcmp(e->digest, digest) == 0)
			return e;
	return NULL;
}

/* Says, at most once a minute, that lookups went unasked. Lock held. */
static void note_refused(struct ctl_probes *p)
{
	long long now = af_now_ms();

	p->refused++;
	if (now - p->refused_said_ms < 60000)
		return;
	af_warn("registry: %llu lookups of unlisted names answered ENOENT without asking the control plane (probe budget: %d a second)",
		(unsigned long long)p->refused, CTL_PROBE_RATE);
	p->refused_said_ms = now;
	p->refused = 0;
}

int ctl_probes_ask(struct ctl_probes *p, const char *project,
		   const char *name, const char *digest, long wait_ms)
{
	uint64_t h = key_hash(project, name, digest);
	struct timespec until;
	struct probe *e;
	int result = -ENOENT;

	if (!ctl_remote_reachable(p->remote))
		return -ENOENT;
	until = af_deadline(CLOCK_MONOTONIC, wait_ms);
	pthread_mutex_lock(&p->lock);
	if (p->stop)
		goto out_unlock;
	e = find_locked(p, h, project, name, digest);
	if (e && e->state == PROBE_DONE) {
		if (e->result == 0) {
			/* Confirmed: in the catalog now. */
			result = 0;
			goto out_unlock;
		}
		if (af_now_ms() < e->expires_ms || e->waiters > 0)
			goto out_unlock;	/* a remembered miss */
		unlink_entry(p, e);
		probe_free(e);
		e = NULL;
	}
	if (!e) {
		if (p->n_entries >= CTL_PROBE_ENTRIES / 2)
			purge_locked(p, false);
		if (p->queued >= CTL_PROBE_QUEUE ||
		    p->n_entries >= CTL_PROBE_ENTRIES || !take_token(p)) {
			note_refused(p);
			goto out_unlock;
		}
		e = calloc(1, sizeof(*e));
		if (!e)
			goto out_unlock;
		e->project = strdup(project);
		e->name = strdup(name);
		e->digest = strdup(digest);
		if (!e->project || !e->name || !e->digest) {
			probe_free(e);
			goto out_unlock;
		}
		e->hash = h;
		e->state = PROBE_QUEUED;
		e->hnext = p->buckets[h % CTL_PROBE_BUCKETS];
		p->buckets[h % CTL_PROBE_BUCKETS] = e;
		p->n_entries++;
		if (p->qtail)
			p->qtail->qnext = e;
		else
			p->qhead = e;
		p->qtail = e;
		p->queued++;
		pthread_cond_signal(&p->work);
	}
	e->waiters++;
	while (e->state != PROBE_DONE && !p->stop)
		if (pthread_cond_timedwait(&p->answered, &p->lock, &until) != 0)
			break;	/* the bounded wait is over: ENOENT for now */
	e->waiters--;
	if (e->state == PROBE_DONE) {
		result = e->result;
		if (result == 0 && e->waiters == 0) {
			unlink_entry(p, e);
			probe_free(e);
		}
	}
out_unlock:
	pthread_mutex_unlock(&p->lock);
	return result;
}
