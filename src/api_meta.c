/* The service's own pages: metrics, the OpenAPI contract, the ops page. */
#include "arbiter/api.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/assets.h"
#include "arbiter/errmsg.h"
#include "arbiter/metrics.h"
#include "arbiter/textbuf.h"
#include "arbiter/webhook_worker.h"
#include "arbiter/sha256.h"

static char csp[384];
static pthread_once_t csp_once = PTHREAD_ONCE_INIT;

static void base64(const uint8_t *in, size_t n, char *out)
{
	static const char a[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? a[v & 63] : '=';
	}
	out[o] = '\0';
}

/* script-src allows exactly the page's one inline script, by its SHA-256
 * (CSP3 hash source), not 'unsafe-inline': injected markup cannot run. */
static void make_csp(void)
{
	const char *open = strstr(ar_ui_index, "<script>");
	const char *close = open ? strstr(open, "</script>") : NULL;
	char src[80] = "'none'";

	if (open && close) {
		uint8_t d[SHA256_LEN];
		char b64[48];
		open += strlen("<script>");
		sha256(open, (size_t)(close - open), d);
		base64(d, sizeof(d), b64);
		snprintf(src, sizeof(src), "'sha256-%s'", b64);
	}
	snprintf(csp, sizeof(csp),
		 "default-src 'self'; script-src %s; style-src 'self' 'unsafe-inline'; "
		 "connect-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; "
		 "form-action 'self'; frame-ancestors 'none'", src);
}

void api_metrics(ar_req *r)
{
	size_t len = 0;
	char *text = metrics_render(&len);
	textbuf all = { 0 };
	ar_err err;

	/* the webhook worker keeps its own families (webhook_worker.c) */
	if (text) {
		tb_put(&all, text, len);
		wh_metrics_render(&all);
		free(text);
		text = all.oom ? NULL : all.p;
		len = all.len;
		if (!text)
			free(all.p);
	}
	if (!text) {
		ar_err_init(&err);
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		req_reply_problem(r, &err);
		return;
	}
	req_reply_text(r, 200, METRICS_CONTENT_TYPE, text, len);
	free(text);
}

void api_openapi(ar_req *r)
{
	req_reply_text(r, 200, "application/json", ar_openapi_json, ar_openapi_json_len);
}

/* The page holds no data; it asks the API with the key the operator types
 * in. Only its own inline script may run. */
void api_ui(ar_req *r)
{
	pthread_once(&csp_once, make_csp);
	req_add_header(r, "Content-Security-Policy", csp);
	req_add_header(r, "Cache-Control", "no-cache");
	req_reply_text(r, 200, "text/html; charset=utf-8", ar_ui_index, ar_ui_index_len);
}
