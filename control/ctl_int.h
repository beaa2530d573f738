/*
 * ctl_int.h - private to control/: the refcounted parts snapshots are made
 * of.
 *
 *   catalog.c  snapshots, publishing, the reload thread, the file registry
 */
#ifndef CTL_CTL_INT_H
#define CTL_CTL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct pol_config;
struct pol_registration;
struct pol_registry;
struct pol_policy;
struct ctl_catalog;

/* ---- parts -------------------------------------------------------------- */

/*
 * An immutable object (a pol_registry, a pol_policy) shared by the
 * snapshots that contain it, with its own count (atomic).
 */
struct ctl_part {
	void *obj;
	void (*free_fn)(void *obj);
	int refs;			/* __atomic */
};

/* Wraps obj (taken; freed on failure). NULL on -ENOMEM. */
struct ctl_part *ctl_part_new(void *obj, void (*free_fn)(void *obj));
struct ctl_part *ctl_part_get(struct ctl_part *p);
/* p == NULL does nothing. */
void ctl_part_put(struct ctl_part *p);
struct ctl_part *ctl_part_registry(struct pol_registry *g);
struct ctl_part *ctl_part_policy(struct pol_policy *p);

/* One project of a snapshot: its name and its records (a pol_registry). */
struct ctl_proj {
	char *name;
	struct ctl_part *part;
};

/* Frees n projects (names, part references) and the array. */
void ctl_projs_free(struct ctl_proj *v, size_t n);

/* Problems found while loading (a bad record, a refused document). */
typedef void (*ctl_report_fn)(void *arg, const char *msg);

#endif
