/*
 * policy.c - the policy document (DESIGN §4) and the read decision.
 * Unknown fields in a policy are errors, not ignored: an old node that
 * silently skipped a new restriction would fail open.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pol_int.h"

#define POL_RULES_MAX		4096
#define POL_PREFIX_MAX		4096

struct pol_rule {
	enum pol_source_type type;
	char *prefix;
	char **projects;	/* NULL: every project */
	size_t n_projects;
};

struct pol_project {
	char *name;
	bool has_gid;
	gid_t gid;
};

struct pol_policy {
	unsigned algos;		/* bit (1 << enum pol_algo) */
	unsigned lifecycles;	/* bit (1 << enum pol_lifecycle) */
	enum pol_trust min_trust;
	struct pol_rule *rules;
	size_t n_rules;
	struct pol_project *projects;
	size_t n_projects;
	struct pol_attest_keys keys;	/* attestation_keys (DESIGN §12) */
};


void pol_policy_free(struct pol_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_rules; i++) {
		free(p->rules[i].prefix);
		for (size_t j = 0; j < p->rules[i].n_projects; j++)
			free(p->rules[i].projects[j]);
		free(p->rules[i].projects);
	}
	free(p->rules);
	for (size_t i = 0; i < p->n_projects; i++)
		free(p->projects[i].name);
	free(p->projects);
	pol_attest_keys_release(&p->keys);
	free(p);
}

static int parse_algos(struct pol_perr *c, json_t *v, struct pol_policy *p)
{
	char safe[POL_SAFE_BUF], field[64];
	enum pol_algo a;
	size_t i;
	json_t *e;

	if (!v) {
		p->algos = 1u << POL_ALGO_SHA256 | 1u << POL_ALGO_SHA512;
		return 0;
	}
	if (!json_is_array(v))
		return pol_perr_fail(c, "digest_algorithms", "must be an array");
	json_array_foreach(v, i, e) {
		snprintf(field, sizeof(field), "digest_algorithms[%zu]", i);
		if (!json_is_string(e))
			return pol_perr_fail(c, field, "must be a string");
		if (pol_algo_parse(json_string_value(e), &a) < 0)
			return pol_perr_fail(c, field, "unknown algorithm \"%s\"",
				     pol_safe(json_string_value(e),
					      POL_SAFE_LEN, safe,
					      sizeof(safe)));
		p->algos |= 1u << a;
	}
	return 0;
}

static int parse_lifecycles(struct pol_perr *c, json_t *v, struct pol_policy *p)
{
	char safe[POL_SAFE_BUF], field[64];
	enum pol_lifecycle s;
	size_t i;
	json_t *e;

	if (!v) {
		p->lifecycles = 1u << POL_LC_ACTIVE | 1u << POL_LC_DEPRECATED;
		return 0;
	}
	if (!json_is_array(v))
		return pol_perr_fail(c, "readable_lifecycle_states",
			     "must be an array");
	json_array_foreach(v, i, e) {
		snprintf(field, sizeof(field), "readable_lifecycle_states[%zu]",
			 i);
		if (!json_is_string(e))
			return pol_perr_fail(c, field, "must be a string");
		if (pol_lifecycle_parse(json_string_value(e), &s) < 0)
			return pol_perr_fail(c, field, "unknown lifecycle state \"%s\"",
				     pol_safe(json_string_value(e),
					      POL_SAFE_LEN, safe,
					      sizeof(safe)));
		/* DESIGN §2: revoked is never readable, whatever policy says. */
		if (s == POL_LC_REVOKED)
			return pol_perr_fail(c, field, "revoked is never readable");
		p->lifecycles |= 1u << s;
	}
	return 0;
}

static int parse_rule(struct pol_perr *c, size_t idx, json_t *v,
		      struct pol_rule *rule)
{
	static const char *const keys[] = { "source_type", "uri_prefix",
					    "projects", NULL };
	char safe[POL_SAFE_BUF], where[48], field[96];
	const char *s;
	json_t *pv;
	size_t i, n;
	int ret;

	snprintf(where, sizeof(where), "sources[%zu]", idx);
	if (!json_is_object(v))
		return pol_perr_fail(c, where, "must be an object");
	ret = pol_perr_keys(c, v, where, keys);
	if (ret < 0)
		return ret;

	snprintf(field, sizeof(field), "%s.source_type", where);
	pv = json_object_get(v, "source_type");
	if (!pv)
		return pol_perr_fail(c, field, "missing");
	if (!json_is_string(pv))
		return pol_perr_fail(c, field, "must be a string");
	if (pol_source_type_parse(json_string_value(pv), &rule->type) < 0)
		return pol_perr_fail(c, field, "unknown source type \"%s\"",
			     pol_safe(json_string_value(pv), POL_SAFE_LEN,
				      safe, sizeof(safe)));

	snprintf(field, sizeof(field), "%s.uri_prefix", where);
	pv = json_object_get(v, "uri_prefix");
	if (!pv)
		return pol_perr_fail(c, field, "missing");
	if (!json_is_string(pv))
		return pol_perr_fail(c, field, "must be a string");
	s = json_string_value(pv);
	n = strlen(s);
	if (n == 0 || n > POL_PREFIX_MAX || !strstr(s, "://"))
		return pol_perr_fail(c, field,
			     "must be a uri prefix such as \"https://host/path/\"");
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return pol_perr_fail(c, field,
				     "has a space, control or non-ASCII byte");
	rule->prefix = strdup(s);
	if (!rule->prefix)
		return pol_perr_fail(c, field, "out of memory");

	return pol_perr_projects(c, v, where, &rule->projects,
				 &rule->n_projects);
}

static int parse_rules(struct pol_perr *c, json_t *v, struct pol_policy *p)
{
	size_t i, n;
	json_t *e;
	int ret;

	if (!v)
		return 0;
	if (!json_is_array(v))
		return pol_perr_fail(c, "sources", "must be an array");
	n = json_array_size(v);
	if (n > POL_RULES_MAX)
		return pol_perr_fail(c, "sources", "more than %d rules", POL_RULES_MAX);
	if (n == 0)
		return 0;
	p->rules = calloc(n, sizeof(*p->rules));
	if (!p->rules)
		return pol_perr_fail(c, "sources", "out of memory");
	json_array_foreach(v, i, e) {
		p->n_rules = i + 1;
		ret = parse_rule(c, i, e, &p->rules[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int project_cmp(const void *a, const void *b)
{
	const struct pol_project *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static int parse_projects(struct pol_perr *c, json_t *v, struct pol_policy *p)
{
	static const char *const keys[] = { "gid", NULL };
	char safe[POL_SAFE_BUF], field[128];
	const char *key;
	json_t *e, *g;
	size_t n;
	int ret;

	if (!v)
		return 0;
	if (!json_is_object(v))
		return pol_perr_fail(c, "projects", "must be an object");
	n = json_object_size(v);
	if (n > POL_PROJECTS_MAX)
		return pol_perr_fail(c, "projects", "too many projects");
	if (n == 0)
		return 0;
	p->projects = calloc(n, sizeof(*p->projects));
	if (!p->projects)
		return pol_perr_fail(c, "projects", "out of memory");
	json_object_foreach(v, key, e) {
		struct pol_project *pr = &p->projects[p->n_projects];

		snprintf(field, sizeof(field), "projects.%s",
			 pol_safe(key, POL_SAFE_LEN, safe, sizeof(safe)));
		if (!pol_project_valid(key))
			return pol_perr_fail(c, field, "invalid project name");
		if (!json_is_object(e))
			return pol_perr_fail(c, field, "must be an object");
		ret = pol_perr_keys(c, e, field, keys);
		if (ret < 0)
			return ret;
		pr->name = strdup(key);
		if (!pr->name)
			return pol_perr_fail(c, field, "out of memory");
		p->n_projects++;
		g = json_object_get(e, "gid");
		if (!g || json_is_null(g))
			continue;
		/* gid_t is 32 bits; (gid_t)-1 means "no change" to chown. */
		if (!json_is_integer(g) || json_integer_value(g) < 0 ||
		    json_integer_value(g) >= 4294967295LL)
			return pol_perr_fail(c, field,
				     "gid must be an integer from 0 to 4294967294");
		pr->has_gid = true;
		pr->gid = (gid_t)json_integer_value(g);
	}
	qsort(p->projects, p->n_projects, sizeof(*p->projects), project_cmp);
	return 0;
}

int pol_policy_parse(const char *buf, size_t len, const char *origin,
		     struct pol_policy **out, char *err, size_t errlen)
{
	static const char *const keys[] = { "digest_algorithms",
					    "readable_lifecycle_states",
					    "min_trust_state", "sources",
					    "projects", "attestation_keys",
					    NULL };
	struct pol_perr c = { origin ? origin : "policy", err, errlen };
	char safe[POL_SAFE_BUF];
	struct pol_policy *p = NULL;
	json_error_t jerr;
	json_t *root, *v;
	int ret;

	*out = NULL;
	if (!buf) {
		pol_seterr(err, errlen, "%s: no input", c.origin);
		return AF_EPARSE;
	}
	root = json_loadb(buf, len,
			  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		pol_seterr(err, errlen, "%s:%d:%d: invalid JSON: %s", c.origin,
			   jerr.line, jerr.column, jerr.text);
		return AF_EPARSE;
	}
	if (!json_is_object(root)) {
		pol_seterr(err, errlen, "%s: must be a JSON object", c.origin);
		ret = AF_EPARSE;
		goto out_root;
	}
	ret = pol_perr_keys(&c, root, NULL, keys);
	if (ret < 0)
		goto out_root;
	p = calloc(1, sizeof(*p));
	if (!p) {
		ret = -ENOMEM;
		goto out_root;
	}
	ret = parse_algos(&c, json_object_get(root, "digest_algorithms"), p);
	if (ret < 0)
		goto out_root;
	ret = parse_lifecycles(&c,
			       json_object_get(root,
					       "readable_lifecycle_states"), p);
	if (ret < 0)
		goto out_root;
	p->min_trust = POL_TRUST_VERIFIED;
	v = json_object_get(root, "min_trust_state");
	if (v) {
		if (!json_is_string(v)) {
			ret = pol_perr_fail(&c, "min_trust_state", "must be a string");
			goto out_root;
		}
		if (pol_trust_parse(json_string_value(v), &p->min_trust) < 0) {
			ret = pol_perr_fail(&c, "min_trust_state",
				    "unknown trust state \"%s\"",
				    pol_safe(json_string_value(v),
					     POL_SAFE_LEN, safe,
					     sizeof(safe)));
			goto out_root;
		}
	}
	ret = parse_rules(&c, json_object_get(root, "sources"), p);
	if (ret < 0)
		goto out_root;
	ret = parse_projects(&c, json_object_get(root, "projects"), p);
	if (ret < 0)
		goto out_root;
	ret = pol_attest_keys_parse(&c, json_object_get(root, "attestation_keys"),
				    &p->keys);
	if (ret < 0)
		goto out_root;
	*out = p;
	p = NULL;
out_root:
	pol_policy_free(p);
	json_decref(root);
	return ret;
}

int pol_policy_load(const char *path, struct pol_policy **out, char *err,
		    size_t errlen)
{
	size_t len;
	char *buf;
	int ret;

	*out = NULL;
	ret = pol_read_file(path, &buf, &len);
	if (ret < 0) {
		pol_seterr(err, errlen, "%s: %s", path, af_strerror(ret));
		return ret;
	}
	ret = pol_policy_parse(buf, len, path, out, err, errlen);
	free(buf);
	return ret;
}

/*
 * Prefix match of uri against a rule. A prefix that ends inside the host
 * ("https://models.internal") must not match a longer host
 * ("https://models.internal.evil.example/"): the next character of the uri
 * then has to end the host.
 */
static bool prefix_matches(const char *prefix, const char *uri)
{
	size_t n = strlen(prefix);
	const char *auth = strstr(prefix, "://");
	char next;

	if (strncmp(uri, prefix, n) != 0)
		return false;
	if (!auth || strchr(auth + 3, '/'))
		return true;
	next = uri[n];
	return !((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
		 (next >= '0' && next <= '9') || next == '.' || next == '-' ||
		 next == '_');
}

static bool rule_matches(const struct pol_rule *rule,
			 const struct pol_registration *r)
{
	if (rule->type != r->source_type)
		return false;
	if (!prefix_matches(rule->prefix, r->uri))
		return false;
	if (!rule->projects)
		return true;
	for (size_t i = 0; i < rule->n_projects; i++)
		if (strcmp(rule->projects[i], r->project) == 0)
			return true;
	return false;
}

int pol_policy_decide(const struct pol_policy *p,
		      const struct pol_registration *r, char *reason,
		      size_t reasonlen)
{
	char red[512];
	const char *name;

	if (!p) {
		pol_seterr(reason, reasonlen, "no policy loaded");
		return AF_EDENIED;
	}
	if (!r || !r->uri || !r->project) {
		pol_seterr(reason, reasonlen, "no registration");
		return AF_EDENIED;
	}
	if ((unsigned)r->digest.algo >= 32 ||
	    !(p->algos & 1u << r->digest.algo)) {
		name = pol_algo_name(r->digest.algo);
		pol_seterr(reason, reasonlen,
			   "digest algorithm %s not allowed by policy",
			   name ? name : "unknown");
		return AF_EDENIED;
	}
	if (r->lifecycle == POL_LC_REVOKED || (unsigned)r->lifecycle >= 32 ||
	    !(p->lifecycles & 1u << r->lifecycle)) {
		name = pol_lifecycle_name(r->lifecycle);
		pol_seterr(reason, reasonlen,
			   "lifecycle state %s is not readable",
			   name ? name : "unknown");
		return AF_EDENIED;
	}
	if (r->trust < p->min_trust) {
		name = pol_trust_name(r->trust);
		pol_seterr(reason, reasonlen,
			   "trust state %s is below minimum %s",
			   name ? name : "unknown",
			   pol_trust_name(p->min_trust));
		return AF_EDENIED;
	}
	/*
	 * DESIGN §12: attested is the node's finding, not the registration's
	 * word. Unconfirmed, the record counts as verified, which only a
	 * minimum of attested refuses (so only then is the evidence looked at).
	 */
	if (p->min_trust > POL_TRUST_VERIFIED) {
		struct pol_attest_result ar;

		pol_attest_get(p, r, &ar);
		if (ar.status != POL_ATTEST_VERIFIED) {
			pol_seterr(reason, reasonlen,
				   "attestation not verified: %s; trust counts as verified, below minimum %s",
				   ar.text, pol_trust_name(p->min_trust));
			return AF_EDENIED;
		}
	}
	if (r->allowlist_decision &&
	    strcmp(r->allowlist_decision, "allow") != 0) {
		pol_seterr(reason, reasonlen,
			   "registration allowlist decision is %s",
			   r->allowlist_decision);
		return AF_EDENIED;
	}
	for (size_t i = 0; i < p->n_rules; i++)
		if (rule_matches(&p->rules[i], r))
			return 0;
	pol_uri_redact(r->uri, red, sizeof(red));
	pol_seterr(reason, reasonlen,
		   "source %s not allowlisted for project %s", red, r->project);
	return AF_EDENIED;
}

bool pol_policy_project_gid(const struct pol_policy *p, const char *project,
			    gid_t *gid)
{
	struct pol_project key, *hit;

	if (!p || !project || p->n_projects == 0)
		return false;
	key.name = (char *)project;
	hit = bsearch(&key, p->projects, p->n_projects, sizeof(*p->projects),
		      project_cmp);
	if (!hit || !hit->has_gid)
		return false;
	if (gid)
		*gid = hit->gid;
	return true;
}

const struct pol_attest_keys *pol_policy_attest_keys(const struct pol_policy *p)
{
	return &p->keys;
}
