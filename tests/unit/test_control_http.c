/*
 * test_control_http.c - the control plane's HTTP connection
 * (control/http.c) against a real server on 127.0.0.1 run by the test:
 * the token (trimmed, re-read when its file is replaced, never sent to
 * another origin after a redirect), conditional requests and validators,
 * redirects refused to cleartext hosts off loopback and past 5 hops, a
 * document over CTL_DOC_MAX, a server that never answers (bounded), path
 * segments percent-encoded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "control/ctl_int.h"
#include "policy/af.h"
#include "policy/config.h"

/* One scripted server: answers each request with the next reply. */
struct srv {
	int fd;
	int port;
	pthread_t thread;
	pthread_mutex_t lock;
	char requests[16][2048];	/* the request heads received */
	int n;
	const char *replies[16];	/* a reply per request, in order */
	size_t big;			/* >0: the reply is a 200 this long */
	bool silent;			/* accept, never answer */
	int client;			/* the connection being served, or -1 */
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		int c = accept(s->fd, NULL, NULL);
		char buf[4096];
		size_t len = 0;

		if (c < 0)
			return NULL;
		pthread_mutex_lock(&s->lock);
		s->client = c;
		pthread_mutex_unlock(&s->lock);
		for (;;) {
			ssize_t got;
			char *end;

			got = read(c, buf + len, sizeof(buf) - 1 - len);
			if (got <= 0)
				break;
			len += (size_t)got;
			buf[len] = '\0';
			end = strstr(buf, "\r\n\r\n");
			if (!end)
				continue;
			pthread_mutex_lock(&s->lock);
			if (s->n < 16)
				snprintf(s->requests[s->n], sizeof(s->requests[0]),
					 "%.*s", (int)(end - buf + 2), buf);
			s->n++;
			pthread_mutex_unlock(&s->lock);
			if (s->silent) {
				sleep(3);
				break;
			}
			if (s->big) {
				char head[128];
				char *chunk = calloc(1, 65536);

				snprintf(head, sizeof(head),
					 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
					 s->big);
				if (write(c, head, strlen(head)) < 0)
					break;
				memset(chunk, '[', 65536);
				for (size_t sent = 0; sent < s->big; sent += 65536)
					if (write(c, chunk, 65536) < 0)
						break;
				free(chunk);
				break;
			}
			{
				const char *r = s->replies[(s->n - 1) % 16];

				if (!r)
					r = "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";
				if (write(c, r, strlen(r)) < 0)
					break;
			}
			len = 0;
		}
		pthread_mutex_lock(&s->lock);
		s->client = -1;
		close(c);
		pthread_mutex_unlock(&s->lock);
	}
}

static void srv_start(struct srv *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->client = -1;
	pthread_mutex_init(&s->lock, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 16), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
	/* A kept-alive connection would block the thread in read(). */
	pthread_mutex_lock(&s->lock);
	if (s->client >= 0)
		shutdown(s->client, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	shutdown(s->fd, SHUT_RDWR);
	close(s->fd);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
}

static const char *req(struct srv *s, int i)
{
	return s->requests[i];
}

struct world {
	char dir[64];
	char token[128];
	char url[128];
	struct pol_config cfg;
	struct ctl_token *tok;
	struct ctl_conn *conn;
	struct srv srv;
};

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	snprintf(w->dir, sizeof(w->dir), "/tmp/aftest-cphttp.XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(w->token, sizeof(w->token), "%s/token", w->dir);
	put(w->token, "  tok-one\n");
	srv_start(&w->srv);
	assert_int_equal(pol_config_init(&w->cfg), 0);
	snprintf(w->url, sizeof(w->url), "http://127.0.0.1:%d/api/", w->srv.port);
	w->cfg.registry_url = strdup(w->url);
	w->cfg.connect_timeout_ms = 2000;
	w->cfg.low_speed_timeout_ms = 2000;
	assert_int_equal(ctl_token_new(w->token, &w->tok), 0);
	assert_int_equal(ctl_conn_new(&w->cfg, w->tok, &w->conn), 0);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	char cmd[128];

	ctl_conn_free(w->conn);
	ctl_token_free(w->tok);
	srv_stop(&w->srv);
	pol_config_release(&w->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
	assert_int_equal(system(cmd), 0);
	free(w);
	return 0;
}

static void test_path_segment(void **state)
{
	char buf[64] = "v1/";
	size_t pos = 3;

	(void)state;
	assert_int_equal(ctl_path_segment(buf, sizeof(buf), &pos,
					  "m.bin@sha256:ab"), 0);
	assert_string_equal(buf, "v1/m.bin%40sha256%3Aab");
	pos = 0;
	assert_int_equal(ctl_path_segment(buf, sizeof(buf), &pos, "a/b c~_-."), 0);
	assert_string_equal(buf, "a%2Fb%20c~_-.");
	pos = 0;
	assert_int_equal(ctl_path_segment(buf, 8, &pos, "@@@"), -ENAMETOOLONG);
}

static void test_get_conditional(void **state)
{
	struct world *w = *state;
	struct ctl_resp r;
	char why[256];

	w->srv.replies[0] = "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\n"
		"Last-Modified: Mon, 09 Mar 2026 12:00:00 GMT\r\n"
		"Content-Length: 2\r\n\r\n[]";
	w->srv.replies[1] = "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n";
	assert_int_equal(ctl_conn_get(w->conn, "v1/projects", NULL, NULL, 5000,
				      &r, why, sizeof(why)), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 2);
	assert_string_equal(r.body, "[]");
	assert_string_equal(r.etag, "\"v1\"");
	assert_string_equal(r.last_modified, "Mon, 09 Mar 2026 12:00:00 GMT");
	/* The base URL's trailing slash is not doubled; the token trimmed. */
	assert_non_null(strstr(req(&w->srv, 0), "GET /api/v1/projects HTTP/1.1"));
	assert_non_null(strstr(req(&w->srv, 0), "Authorization: Bearer tok-one\r\n"));
	assert_null(strstr(req(&w->srv, 0), "If-None-Match"));
	ctl_resp_release(&r);

	assert_int_equal(ctl_conn_get(w->conn, "v1/projects", "\"v1\"",
				      "Mon, 09 Mar 2026 12:00:00 GMT", 5000,
				      &r, why, sizeof(why)), 0);
	assert_int_equal(r.status, 304);
	assert_null(r.body);
	assert_non_null(strstr(req(&w->srv, 1), "If-None-Match: \"v1\""));
	assert_non_null(strstr(req(&w->srv, 1),
			       "If-Modified-Since: Mon, 09 Mar 2026 12:00:00 GMT"));
	ctl_resp_release(&r);
}

static void test_token_rotation(void **state)
{
	struct world *w = *state;
	struct ctl_resp r;
	char why[256], tmp[160];

	for (int i = 0; i < 4; i++)
		w->srv.replies[i] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
	assert_int_equal(ctl_conn_get(w->conn, "a", NULL, NULL, 5000, &r, why,
				      sizeof(why)), 0);
	ctl_resp_release(&r);
	/* Replaced by rename: the next request carries the new token. */
	snprintf(tmp, sizeof(tmp), "%s.new", w->token);
	put(tmp, "tok-two");
	assert_int_equal(rename(tmp, w->token), 0);
	assert_int_equal(ctl_conn_get(w->conn, "b", NULL, NULL, 5000, &r, why,
				      sizeof(why)), 0);
	ctl_resp_release(&r);
	assert_non_null(strstr(req(&w->srv, 1), "Authorization: Bearer tok-two\r\n"));
	/* An empty token file: no request goes out, the error says why. */
	put(tmp, " \n");
	assert_int_equal(rename(tmp, w->token), 0);
	assert_true(ctl_conn_get(w->conn, "c", NULL, NULL, 5000, &r, why,
				 sizeof(why)) < 0);
	assert_non_null(strstr(why, "token file"));
	assert_int_equal(w->srv.n, 2);
	/* A missing file likewise. */
	assert_int_equal(unlink(w->token), 0);
	assert_true(ctl_conn_get(w->conn, "c", NULL, NULL, 5000, &r, why,
				 sizeof(why)) < 0);
	assert_int_equal(w->srv.n, 2);
}

static void test_redirect_other_origin(void **state)
{
	struct world *w = *state;
	struct srv other;
	struct ctl_resp r;
	char why[256], loc[256];

	srv_start(&other);
	other.replies[0] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
	snprintf(loc, sizeof(loc),
		 "HTTP/1.1 302 Found\r\nLocation: http://localhost:%d/x\r\n"
		 "Content-Length: 0\r\n\r\n", other.port);
	w->srv.replies[0] = loc;
	assert_int_equal(ctl_conn_get(w->conn, "v1/projects", NULL, NULL, 5000,
				      &r, why, sizeof(why)), 0);
	assert_int_equal(r.status, 200);
	ctl_resp_release(&r);
	assert_non_null(strstr(req(&w->srv, 0), "Authorization: Bearer"));
	assert_int_equal(other.n, 1);
	/* Another origin (host and port differ): no token. */
	assert_null(strstr(req(&other, 0), "Authorization"));
	assert_null(strstr(req(&other, 0), "tok-one"));
	srv_stop(&other);
}

static void test_redirect_refused(void **state)
{
	struct world *w = *state;
	struct ctl_resp r;
	char why[256];

	w->srv.replies[0] = "HTTP/1.1 301 Moved\r\nLocation: http://192.0.2.1/x\r\n"
		"Content-Length: 0\r\n\r\n";
	assert_int_equal(ctl_conn_get(w->conn, "v1/policy", NULL, NULL, 5000,
				      &r, why, sizeof(why)), AF_ESOURCE);
	assert_non_null(strstr(why, "refused"));
	assert_int_equal(w->srv.n, 1);
	/* A loop: at most 5 redirects followed. */
	for (int i = 0; i < 16; i++)
		w->srv.replies[i] = "HTTP/1.1 307 Again\r\nLocation: /api/again\r\n"
			"Content-Length: 0\r\n\r\n";
	assert_int_equal(ctl_conn_get(w->conn, "v1/policy", NULL, NULL, 5000,
				      &r, why, sizeof(why)), AF_ESOURCE);
	assert_non_null(strstr(why, "more than 5 redirects"));
	assert_int_equal(w->srv.n, 1 + 6);
}

static void test_too_big(void **state)
{
	struct world *w = *state;
	struct ctl_resp r;
	char why[256];

	w->srv.big = CTL_DOC_MAX + 65536;
	assert_int_equal(ctl_conn_get(w->conn, "v1/projects/p/blobs", NULL, NULL,
				      20000, &r, why, sizeof(why)), -E2BIG);
	assert_non_null(strstr(why, "larger than 16 MiB"));
	assert_null(r.body);
}

static void test_never_answers(void **state)
{
	struct world *w = *state;
	struct ctl_resp r;
	char why[256];
	long long t0 = af_now_ms();

	w->srv.silent = true;
	assert_int_equal(ctl_conn_get(w->conn, "v1/projects", NULL, NULL, 800,
				      &r, why, sizeof(why)), AF_ETIMEDOUT);
	assert_true(af_now_ms() - t0 < 2500);
	assert_non_null(strstr(why, "timed out"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_segment),
		cmocka_unit_test_setup_teardown(test_get_conditional, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_other_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_never_answers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
