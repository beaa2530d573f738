/*
 * faultd - a fault-injecting HTTP/1.1 file server for the tests of
 * sources/ and the fetch engine (issue 3 §5). Plain C, libc and pthread
 * only; one thread per connection; keep-alive; listens on 127.0.0.1 only.
 *
 * Usage:
 *   faultd --root DIR [--port N] [--port-file FILE] [--log FILE]
 *          [--n N] [--stall SECONDS] [--die-after BYTES]
 *
 *   --port 0 (default) picks a free port; the port chosen is written to
 *   --port-file (atomically: written to FILE.tmp, then renamed).
 *   SIGTERM or SIGINT stops the server at once (exit status 0).
 *   --die-after BYTES: once BYTES of body (over all requests) are sent,
 *   the server writes "DIED sent_total=BYTES" to its log and exits at
 *   once, mid-response: a mirror that dies in the middle of a blob.
 *
 * Requests: GET or HEAD /<mode>/<file>[?key=value&...]
 *   <file> is a path below --root (no "..", no leading "/"). Range is
 *   honoured as "bytes=A-B", "bytes=A-" or "bytes=-N" (one range; anything
 *   else is ignored and the whole file sent with 200); a range that starts
 *   past the end is 416 with "Content-Range: bytes * /SIZE" (no space).
 *
 * Query keys:
 *   n=N      how many requests of this exact target (path and query, so a
 *            distinct query, e.g. k=test1, gives a fresh counter) fault
 *            before it is served normally; default --n (default 2). Applies
 *            to the modes marked [n]; the others fault on every request.
 *   s=S      seconds for modes stall and hang (default --stall, default 30).
 *   to=H:P   redirect target host:port for mode redirect (default: the
 *            request's Host).
 *
 * Modes:
 *   ok         serve normally (200, or 206 with Content-Range)
 *   503   [n]  503 Service Unavailable
 *   429   [n]  429 Too Many Requests with "Retry-After: 1"
 *   reset [n]  headers and half the body, then close with RST
 *   stall [n]  headers and half the body, then nothing for S seconds, close
 *   short [n]  headers (full Content-Length) and half the body, then close
 *   norange    ignore Range: 200 with the whole body
 *   badrange   206 whose Content-Range is shifted by one byte
 *   nocr       206 without Content-Range
 *   loop       302 to itself, forever
 *   pingpong   302 to /pingpong/<file>?p=<1-p> (p=0 by default): two URLs
 *              redirecting to each other
 *   chain      c=N (default 0): 302 to /chain/<file>?c=<N-1>&k=<k>, and
 *              at c=0 to /ok/<file>?k=<k>: N + 1 redirects in a row
 *   redirect   302 to http://<to>/ok/<file>
 *   badscheme  302 to ftp://127.0.0.1/<file>
 *   head405    HEAD answered 405; GET served normally
 *   flip       serve the file with the byte at offset size/2 inverted
 *   error      answer st=N (default 403) with an error body: fmt=xml (S3,
 *              Azure: <Error><Code>CODE</Code><Message>…</Message>…), json
 *              (GCS: {"error":{"errors":[{"reason":"CODE"}]…}}) or none,
 *              CODE from code= (default AccessDenied); hdr=1 also sends
 *              "x-ms-error-code: CODE". The message echoes "echo-secret"
 *              (the way S3 echoes the string to sign): a client must
 *              take the code, never the message.
 *   bearer     serve normally when "Authorization: Bearer TOK" came, TOK
 *              from tok=; otherwise 401 with a JSON error body
 *   sas        serve normally when the query has sig=good; otherwise 403
 *              with "x-ms-error-code: AuthenticationFailed"
 *   hang       read the request, answer nothing for S seconds, close
 *
 * Log (--log): one line per request, appended with one write(2):
 *   <METHOD> <target> range=<Range header or -> status=<code>
 *   sent=<body bytes sent> auth=<0|1 (an Authorization header came)>
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#define REQ_MAX		16384
#define COUNTERS_MAX	4096
#define SEND_CHUNK	65536

static const char *root_dir;
static int log_fd = -1;
static unsigned default_n = 2;
static unsigned default_stall = 30;
static uint64_t die_after;		/* 0: never; immutable after start */
static uint64_t body_total;		/* __atomic: body bytes sent */

static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;
static char *counter_keys[COUNTERS_MAX];	/* counters_lock */
static unsigned counter_vals[COUNTERS_MAX];	/* counters_lock */
static size_t n_counters;			/* counters_lock */

struct req {
	char method[8];
	char target[2048];
	char mode[32];
	char file[1024];
	char query[1024];
	char range[128];
	char host[256];
	bool has_range;
	bool auth;
	char authz[512];		/* the Authorization value */
	bool close;
};

/* Counts one more request of key; returns the new count. */
static unsigned counter_bump(const char *key)
{
	unsigned v = 0;

	pthread_mutex_lock(&counters_lock);
	for (size_t i = 0; i < n_counters; i++) {
		if (strcmp(counter_keys[i], key) == 0) {
			v = ++counter_vals[i];
			goto out;
		}
	}
	if (n_counters < COUNTERS_MAX) {
		counter_keys[n_counters] = strdup(key);
		if (counter_keys[n_counters] != NULL) {
			counter_vals[n_counters] = 1;
			n_counters++;
		}
	}
	v = 1;
out:
	pthread_mutex_unlock(&counters_lock);
	return v;
}

static bool send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void log_req(const struct req *r, int status, uint64_t sent)
{
	char line[4096];
	int n;

	if (log_fd < 0)
		return;
	n = snprintf(line, sizeof(line),
		     "%s %s range=%s status=%d sent=%" PRIu64 " auth=%d\n",
		     r->method, r->target, r->has_range ? r->range : "-",
		     status, sent, r->auth ? 1 : 0);
	if (n > 0)
		(void)!write(log_fd, line, (size_t)n < sizeof(line) ?
			     (size_t)n : sizeof(line) - 1);
}

/* Value of key in the query string, or NULL. */
static bool query_get(const char *q, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);

	while (*q != '\0') {
		const char *amp = strchr(q, '&');
		size_t seg = amp ? (size_t)(amp - q) : strlen(q);

		if (seg > kl && strncmp(q, key, kl) == 0 && q[kl] == '=') {
			size_t vl = seg - kl - 1;

			if (vl >= outlen)
				vl = outlen - 1;
			memcpy(out, q + kl + 1, vl);
			out[vl] = '\0';
			return true;
		}
		q += seg;
		if (*q == '&')
			q++;
	}
	return false;
}

static unsigned query_uint(const char *q, const char *key, unsigned dflt)
{
	char v[32];
	char *end;
	unsigned long n;

	if (!query_get(q, key, v, sizeof(v)))
		return dflt;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n > UINT_MAX)
		return dflt;
	return (unsigned)n;
}

/* Parses "bytes=A-B" etc. against size. 1 ok, 0 ignore, -1 unsatisfiable. */
static int parse_range(const char *s, uint64_t size, uint64_t *first,
		       uint64_t *last)
{
	unsigned long long a, b;
	char *end;

	if (strncmp(s, "bytes=", 6) != 0 || strchr(s, ',') != NULL)
		return 0;
	s += 6;
	if (*s == '-') {
		b = strtoull(s + 1, &end, 10);
		if (end == s + 1 || *end != '\0')
			return 0;
		if (b == 0 || size == 0)
			return -1;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	a = strtoull(s, &end, 10);
	if (end == s || *end != '-')
		return 0;
	s = end + 1;
	if (*s == '\0') {
		b = size ? size - 1 : 0;
	} else {
		b = strtoull(s, &end, 10);
		if (*end != '\0' || b < a)
			return 0;
	}
	if (a >= size)
		return -1;
	if (b >= size)
		b = size - 1;
	*first = a;
	*last = b;
	return 1;
}

/* Reads one request head; leftover bytes stay in buf. */
static int read_request(int fd, char *buf, size_t *have, struct req *r)
{
	char *end, *line, *next;

	for (;;) {
		ssize_t n;

		buf[*have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end != NULL)
			break;
		if (*have >= REQ_MAX - 1)
			return -1;
		n = recv(fd, buf + *have, REQ_MAX - 1 - *have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
	*end = '\0';
	memset(r, 0, sizeof(*r));
	line = buf;
	next = strstr(line, "\r\n");
	if (next != NULL)
		*next = '\0';
	if (sscanf(line, "%7s %2047s", r->method, r->target) != 2)
		return -1;
	while (next != NULL) {
		line = next + 2;
		next = strstr(line, "\r\n");
		if (next != NULL)
			*next = '\0';
		if (strncasecmp(line, "Range:", 6) == 0) {
			const char *v = line + 6;

			while (*v == ' ')
				v++;
			snprintf(r->range, sizeof(r->range), "%s", v);
			r->has_range = true;
		} else if (strncasecmp(line, "Authorization:", 14) == 0) {
			const char *v = line + 14;

			while (*v == ' ')
				v++;
			snprintf(r->authz, sizeof(r->authz), "%s", v);
			r->auth = true;
		} else if (strncasecmp(line, "Host:", 5) == 0) {
			const char *v = line + 5;

			while (*v == ' ')
				v++;
			snprintf(r->host, sizeof(r->host), "%s", v);
		} else if (strncasecmp(line, "Connection:", 11) == 0 &&
			   strcasestr(line, "close") != NULL) {
			r->close = true;
		}
	}
	/* Shift what follows the head (a pipelined request) to the front. */
	{
		size_t used = (size_t)(end + 4 - buf);

		memmove(buf, buf + used, *have - used);
		*have -= used;
	}
	/* /<mode>/<file>[?query] */
	{
		const char *t = r->target, *slash, *q;

		if (*t != '/')
			return -1;
		t++;
		slash = strchr(t, '/');
		if (slash == NULL || (size_t)(slash - t) >= sizeof(r->mode))
			return 0;
		memcpy(r->mode, t, (size_t)(slash - t));
		q = strchr(slash + 1, '?');
		if (q != NULL) {
			snprintf(r->query, sizeof(r->query), "%s", q + 1);
			snprintf(r->file, sizeof(r->file), "%.*s",
				 (int)(q - slash - 1), slash + 1);
		} else {
			snprintf(r->file, sizeof(r->file), "%s", slash + 1);
		}
	}
	return 0;
}

static bool send_simple(int fd, struct req *r, int status, const char *text,
			const char *extra)
{
	char head[5120];
	const char *body = "fault\n";
	bool head_only = strcmp(r->method, "HEAD") == 0;
	int n;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Length: 6\r\n"
		     "Content-Type: text/plain\r\n%s\r\n",
		     status, text, extra ? extra : "");
	log_req(r, status, head_only ? 0 : 6);
	if (!send_all(fd, head, (size_t)n))
		return false;
	return head_only || send_all(fd, body, 6);
}

/* An error with a body, the way object stores answer (mode error). */
static bool send_error(int fd, struct req *r, int status, const char *fmt,
		       const char *code, bool hdr)
{
	char head[1024], body[1024], extra[256] = "";
	bool head_only = strcmp(r->method, "HEAD") == 0;
	int n, b = 0;

	if (strcmp(fmt, "xml") == 0)
		b = snprintf(body, sizeof(body),
			     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			     "<Error><Code>%s</Code><Message>echo-secret "
			     "in the message</Message><StringToSign>"
			     "echo-secret</StringToSign></Error>", code);
	else if (strcmp(fmt, "json") == 0)
		b = snprintf(body, sizeof(body),
			     "{\"error\": {\"code\": %d, \"message\": "
			     "\"echo-secret\", \"errors\": [{\"message\": "
			     "\"echo-secret\", \"reason\": \"%s\"}]}}",
			     status, code);
	if (hdr)
		snprintf(extra, sizeof(extra), "x-ms-error-code: %s\r\n", code);
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d Error\r\nContent-Length: %d\r\n"
		     "Content-Type: application/xml\r\n%s\r\n", status, b,
		     extra);
	log_req(r, status, head_only ? 0 : (uint64_t)b);
	if (!send_all(fd, head, (size_t)n))
		return false;
	return head_only || b == 0 || send_all(fd, body, (size_t)b);
}

/*
 * --die-after: sends what is left of the budget from buf, logs the total
 * and ends the process (every connection closes). Only the first thread
 * to get here writes and exits; any other waits for that.
 */
static void die_now(int fd, const char *buf, uint64_t before)
{
	static int dying;
	char line[64];
	int n;

	if (__atomic_exchange_n(&dying, 1, __ATOMIC_SEQ_CST) == 0) {
		if (before < die_after)
			send_all(fd, buf, (size_t)(die_after - before));
		n = snprintf(line, sizeof(line), "DIED sent_total=%" PRIu64 "\n",
			     die_after);
		if (log_fd >= 0 && n > 0)
			(void)!write(log_fd, line, (size_t)n);
		_exit(0);
	}
	for (;;)
		pause();
}

/* Sends bytes [first, first + len) of the file; flips one if asked. */
static bool send_body(int fd, int file, uint64_t first, uint64_t len,
		      bool flip, uint64_t flip_at)
{
	static __thread char buf[SEND_CHUNK];

	while (len > 0) {
		size_t want = len < SEND_CHUNK ? (size_t)len : SEND_CHUNK;
		ssize_t n = pread(file, buf, want, (off_t)first);

		if (n <= 0)
			return false;
		if (flip && flip_at >= first && flip_at < first + (uint64_t)n)
			buf[flip_at - first] ^= (char)0xff;
		if (die_after) {
			uint64_t before = __atomic_fetch_add(&body_total,
							     (uint64_t)n,
							     __ATOMIC_SEQ_CST);

			if (before + (uint64_t)n >= die_after)
				die_now(fd, buf, before);
		}
		if (!send_all(fd, buf, (size_t)n))
			return false;
		first += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return true;
}

static void close_with_rst(int fd)
{
	struct linger lg = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Serves one request. Returns true to keep the connection open. */
static bool serve(int fd, struct req *r)
{
	const char *m = r->mode;
	bool head = strcmp(r->method, "HEAD") == 0;
	bool faulty = false, partial = false, flip = false;
	char path[PATH_MAX + 1100], head_buf[5120], extra[4400];
	uint64_t size, first = 0, last = 0, len, sent;
	struct stat st;
	int status, rr = 0, file, n;

	if (strcmp(r->method, "GET") != 0 && !head)
		return send_simple(fd, r, 405, "Method Not Allowed", NULL) &&
		       !r->close;
	if (r->mode[0] == '\0' || r->file[0] == '\0' ||
	    strstr(r->file, "..") != NULL || r->file[0] == '/')
		return send_simple(fd, r, 404, "Not Found", NULL) && !r->close;

	if (strcmp(m, "503") == 0 || strcmp(m, "429") == 0 ||
	    strcmp(m, "reset") == 0 || strcmp(m, "stall") == 0 ||
	    strcmp(m, "short") == 0) {
		unsigned cnt = counter_bump(r->target);

		faulty = cnt <= query_uint(r->query, "n", default_n);
	}
	if (faulty && strcmp(m, "503") == 0)
		return send_simple(fd, r, 503, "Service Unavailable", NULL) &&
		       !r->close;
	if (faulty && strcmp(m, "429") == 0)
		return send_simple(fd, r, 429, "Too Many Requests",
				   "Retry-After: 1\r\n") && !r->close;
	if (strcmp(m, "hang") == 0) {
		unsigned hs = query_uint(r->query, "s", default_stall);

		log_req(r, 0, 0);
		while (hs > 0)
			hs = sleep(hs);
		return false;
	}
	if (strcmp(m, "loop") == 0) {
		snprintf(extra, sizeof(extra), "Location: %s\r\n", r->target);
		return send_simple(fd, r, 302, "Found", extra) && !r->close;
	}
	if (strcmp(m, "pingpong") == 0) {
		snprintf(extra, sizeof(extra),
			 "Location: /pingpong/%s?p=%u\r\n", r->file,
			 1 - (query_uint(r->query, "p", 0) & 1));
		return send_simple(fd, r, 302, "Found", extra) && !r->close;
	}
	if (strcmp(m, "chain") == 0) {
		unsigned c = query_uint(r->query, "c", 0);
		char k[64] = "";

		query_get(r->query, "k", k, sizeof(k));
		if (c > 0)
			snprintf(extra, sizeof(extra),
				 "Location: /chain/%s?c=%u&k=%s\r\n", r->file,
				 c - 1, k);
		else
			snprintf(extra, sizeof(extra),
				 "Location: /ok/%s?k=%s\r\n", r->file, k);
		return send_simple(fd, r, 302, "Found", extra) && !r->close;
	}
	if (strcmp(m, "redirect") == 0) {
		char to[256];

		if (!query_get(r->query, "to", to, sizeof(to)))
			snprintf(to, sizeof(to), "%s", r->host);
		snprintf(extra, sizeof(extra),
			 "Location: http://%s/ok/%s\r\n", to, r->file);
		return send_simple(fd, r, 302, "Found", extra) && !r->close;
	}
	if (strcmp(m, "badscheme") == 0) {
		snprintf(extra, sizeof(extra),
			 "Location: ftp://127.0.0.1/%s\r\n", r->file);
		return send_simple(fd, r, 302, "Found", extra) && !r->close;
	}
	if (strcmp(m, "error") == 0) {
		char fmt[16] = "xml", code[64] = "AccessDenied", h[8] = "0";

		query_get(r->query, "fmt", fmt, sizeof(fmt));
		query_get(r->query, "code", code, sizeof(code));
		query_get(r->query, "hdr", h, sizeof(h));
		return send_error(fd, r, (int)query_uint(r->query, "st", 403),
				  fmt, code, h[0] == '1') && !r->close;
	}
	if (strcmp(m, "bearer") == 0) {
		char tok[256] = "", want[300];

		query_get(r->query, "tok", tok, sizeof(tok));
		snprintf(want, sizeof(want), "Bearer %s", tok);
		if (strcmp(r->authz, want) != 0)
			return send_error(fd, r, 401, "json", "authError",
					  false) && !r->close;
	}
	if (strcmp(m, "sas") == 0) {
		char sig[64] = "";

		if (!query_get(r->query, "sig", sig, sizeof(sig)) ||
		    strcmp(sig, "good") != 0)
			return send_error(fd, r, 403, "xml",
					  "AuthenticationFailed", true) &&
			       !r->close;
	}
	if (strcmp(m, "head405") == 0 && head)
		return send_simple(fd, r, 405, "Method Not Allowed",
				   "Allow: GET\r\n") && !r->close;

	snprintf(path, sizeof(path), "%s/%s", root_dir, r->file);
	file = open(path, O_RDONLY | O_CLOEXEC);
	if (file < 0 || fstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (file >= 0)
			close(file);
		return send_simple(fd, r, 404, "Not Found", NULL) && !r->close;
	}
	size = (uint64_t)st.st_size;
	flip = strcmp(m, "flip") == 0;
	if (r->has_range && strcmp(m, "norange") != 0)
		rr = parse_range(r->range, size, &first, &last);
	if (rr < 0) {
		close(file);
		snprintf(extra, sizeof(extra),
			 "Content-Range: bytes */%" PRIu64 "\r\n", size);
		return send_simple(fd, r, 416, "Range Not Satisfiable", extra) &&
		       !r->close;
	}
	extra[0] = '\0';
	if (rr > 0) {
		status = 206;
		len = last - first + 1;
		if (strcmp(m, "badrange") == 0)
			snprintf(extra, sizeof(extra),
				 "Content-Range: bytes %" PRIu64 "-%" PRIu64
				 "/%" PRIu64 "\r\n", first + 1, last + 1,
				 size + 1);
		else if (strcmp(m, "nocr") != 0)
			snprintf(extra, sizeof(extra),
				 "Content-Range: bytes %" PRIu64 "-%" PRIu64
				 "/%" PRIu64 "\r\n", first, last, size);
	} else {
		status = 200;
		first = 0;
		len = size;
	}
	n = snprintf(head_buf, sizeof(head_buf),
		     "HTTP/1.1 %d %s\r\nContent-Length: %" PRIu64 "\r\n"
		     "Content-Type: application/octet-stream\r\n"
		     "Accept-Ranges: bytes\r\n%s%s\r\n",
		     status, status == 206 ? "Partial Content" : "OK", len,
		     extra, r->close ? "Connection: close\r\n" : "");
	partial = faulty && !head;
	sent = head ? 0 : partial ? len / 2 : len;
	log_req(r, status, sent);
	if (!send_all(fd, head_buf, (size_t)n) ||
	    !send_body(fd, file, first, sent, flip, size / 2)) {
		close(file);
		return false;
	}
	close(file);
	if (!partial)
		return !r->close;
	if (strcmp(m, "reset") == 0) {
		close_with_rst(fd);
	} else if (strcmp(m, "stall") == 0) {
		unsigned s = query_uint(r->query, "s", default_stall);

		while (s > 0)
			s = sleep(s);
	}
	return false;
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = malloc(REQ_MAX);
	size_t have = 0;
	struct req r;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (buf != NULL && read_request(fd, buf, &have, &r) == 0) {
		if (!serve(fd, &r))
			break;
	}
	free(buf);
	close(fd);
	return NULL;
}

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

static void usage(void)
{
	fprintf(stderr, "usage: faultd --root DIR [--port N] [--port-file FILE]"
		" [--log FILE] [--n N] [--stall SECONDS] [--die-after BYTES]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *port_file = NULL, *log_file = NULL;
	struct sockaddr_in sa = { 0 };
	socklen_t sl = sizeof(sa);
	unsigned port = 0;
	int lfd, one = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--root") == 0)
			root_dir = argv[++i];
		else if (strcmp(a, "--port") == 0)
			port = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--port-file") == 0)
			port_file = argv[++i];
		else if (strcmp(a, "--log") == 0)
			log_file = argv[++i];
		else if (strcmp(a, "--n") == 0)
			default_n = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--stall") == 0)
			default_stall = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--die-after") == 0)
			die_after = strtoull(argv[++i], NULL, 10);
		else
			usage();
	}
	if (root_dir == NULL || port > 65535)
		usage();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	if (log_file != NULL) {
		log_fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			      0644);
		if (log_fd < 0) {
			perror(log_file);
			return 1;
		}
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		perror("socket");
		return 1;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 128) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
		perror("bind");
		return 1;
	}
	if (port_file != NULL) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		f = fopen(tmp, "w");
		if (f == NULL || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 ||
		    fclose(f) != 0 || rename(tmp, port_file) != 0) {
			perror(port_file);
			return 1;
		}
	}
	for (;;) {
		pthread_t t;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE)
				continue;
			perror("accept");
			return 1;
		}
		if (pthread_create(&t, NULL, conn_main,
				   (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
}
