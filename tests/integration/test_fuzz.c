/*
 * Fuzz-style robustness test against the real `ridgeline serve`: thousands of
 * malformed requests (mutated and truncated Patients, deep nesting, huge
 * strings, invalid UTF-8, wrong JSON types; bad Content-Type, Accept and
 * Authorization headers, huge headers; bad percent-encoding, unknown and
 * oversized query parameters, odd paths and methods; raw garbage on the
 * socket). The server must answer every one with a status below 500 (or close
 * the connection, for garbage that is not HTTP), stay up, exit 0 at the end
 * (under ASan: no leaks) and leave a store that `ridgeline check` finds
 * consistent.
 *
 * Deterministic: RL_FUZZ_SEED picks the sequence (default 1); RL_FUZZ_REQUESTS
 * the number of HTTP requests (default 20000), with a time cap of 60 s.
 * RL_FUZZ_SLOW=1 prints requests slower than 50 ms; RL_FUZZ_KEEP=1 keeps the
 * server's folder (store and log) for a look afterwards.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "tests/harness.h"

static uint64_t fuzz_state;

static uint64_t fuzz_next(void)
{
    /* xorshift64*: reproducible from the seed, good enough to pick mutations. */
    fuzz_state ^= fuzz_state >> 12;
    fuzz_state ^= fuzz_state << 25;
    fuzz_state ^= fuzz_state >> 27;
    return fuzz_state * 2685821657736338717ull;
}

static size_t fuzz_below(size_t n) { return n ? (size_t)(fuzz_next() % n) : 0; }

typedef struct fuzz_buf {
    char *data;
    size_t len, cap;
} fuzz_buf;

static void fb_add(fuzz_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void fb_str(fuzz_buf *b, const char *s) { fb_add(b, s, strlen(s)); }

static void fb_repeat(fuzz_buf *b, const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++)
        fb_str(b, s);
}

static const char *const seeds[] = {
    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\",\"Ngozi\"]}],"
    "\"gender\":\"female\",\"birthDate\":\"1990-04-12\",\"identifier\":[{\"system\":\"urn:clinic:kisumu\","
    "\"value\":\"K-1042\"}],\"telecom\":[{\"system\":\"phone\",\"value\":\"+254 700 000 001\"}],"
    "\"address\":[{\"line\":[\"12 Oginga Odinga St\"],\"city\":\"Kisumu\",\"country\":\"KE\"}]}",
    "{\"resourceType\":\"Patient\",\"active\":true,\"name\":[{\"use\":\"official\",\"family\":\"M\\u00fcller\","
    "\"given\":[\"J\\u00fcrgen\"]}],\"gender\":\"male\",\"birthDate\":\"1961\",\"extension\":[{\"url\":"
    "\"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName\",\"valueString\":\"Schmidt\"}],"
    "\"identifier\":[{\"system\":\"urn:oid:1.2.3\",\"value\":\"77\"},{\"system\":\"urn:nid\",\"value\":\"X9\"}]}",
    "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":{\"resourceType\":"
    "\"Patient\",\"name\":[{\"family\":\"Okafor\"}],\"birthDate\":\"1990-04-12\"}},{\"name\":\"count\","
    "\"valueInteger\":5},{\"name\":\"onlyCertainMatches\",\"valueBoolean\":false}]}",
};
enum { NSEEDS = sizeof seeds / sizeof *seeds };

static const char *const junk_values[] = {
    "null", "true", "0", "-1", "1e999", "\"\"", "[]", "{}", "[[]]", "\"\\ud800\"", "\"\\u0000\"", "9999999999999999999999",
    "{\"resourceType\":\"Patient\"}", "[null,{},1]", "\"1990-13-45\"", "\"\\u00e9\\u00e9\"",
};

/* A mutated body: from a valid seed, some of: truncation, byte flips, invalid
 * UTF-8, spliced junk values, duplicated slices. */
static void fuzz_mutated_body(fuzz_buf *b)
{
    const char *seed = seeds[fuzz_below(NSEEDS)];
    size_t n = strlen(seed);
    fb_add(b, seed, n);
    int rounds = 1 + (int)fuzz_below(4);
    for (int r = 0; r < rounds && b->len > 0; r++) {
        size_t at = fuzz_below(b->len);
        switch (fuzz_below(6)) {
        case 0: /* truncate */
            b->len = at;
            b->data[b->len] = '\0';
            break;
        case 1: /* flip a byte */
            b->data[at] = (char)fuzz_next();
            break;
        case 2: { /* invalid UTF-8 in place */
            static const char *const bad[] = {"\xc3\x28", "\xff", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80", "\xc0\xaf"};
            const char *s = bad[fuzz_below(5)];
            size_t k = strlen(s);
            if (at + k <= b->len)
                memcpy(b->data + at, s, k);
            break;
        }
        case 3: { /* replace the value after a ':' with a junk value of another type */
            char *colon = strchr(b->data + at, ':');
            if (!colon)
                break;
            size_t start = (size_t)(colon - b->data) + 1;
            size_t end = start;
            int depth = 0;
            bool str = false;
            for (; end < b->len; end++) {
                char c = b->data[end];
                if (str) {
                    if (c == '\\')
                        end++;
                    else if (c == '"')
                        str = false;
                    continue;
                }
                if (c == '"')
                    str = true;
                else if (c == '[' || c == '{')
                    depth++;
                else if ((c == ']' || c == '}') && depth-- == 0)
                    break;
                else if (c == ',' && depth == 0)
                    break;
            }
            fuzz_buf out = {0};
            fb_add(&out, b->data, start);
            fb_str(&out, junk_values[fuzz_below(sizeof junk_values / sizeof *junk_values)]);
            if (end < b->len)
                fb_add(&out, b->data + end, b->len - end);
            free(b->data);
            *b = out;
            break;
        }
        case 4: { /* duplicate a slice */
            size_t len = fuzz_below(b->len - at + 1);
            fuzz_buf out = {0};
            fb_add(&out, b->data, at + len);
            fb_add(&out, b->data + at, b->len - at);
            free(b->data);
            *b = out;
            break;
        }
        default: /* a stray control byte or NUL */
            b->data[at] = (char)fuzz_below(32);
            break;
        }
    }
}

/* Bodies built to hit limits: nesting, huge strings and arrays, wrong top-level types. */
static void fuzz_hostile_body(fuzz_buf *b)
{
    switch (fuzz_below(7)) {
    case 0: {
        size_t depth = 20 + fuzz_below(3000);
        fb_str(b, "{\"resourceType\":\"Patient\",\"extension\":");
        fb_repeat(b, "[", depth);
        fb_repeat(b, "]", depth);
        fb_str(b, "}");
        break;
    }
    case 1: {
        size_t depth = 20 + fuzz_below(500);
        fb_repeat(b, "{\"a\":", depth);
        fb_str(b, "1");
        fb_repeat(b, "}", depth);
        break;
    }
    case 2: { /* a huge family name: below or above http.max_string_bytes (64 KiB here) */
        size_t len = 1000 + fuzz_below(200000);
        fb_str(b, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"");
        char *s = malloc(len);
        memset(s, 'a' + (int)fuzz_below(26), len);
        fb_add(b, s, len);
        free(s);
        fb_str(b, "\"}],\"identifier\":[{\"system\":\"urn:x\",\"value\":\"big\"}]}");
        break;
    }
    case 3: { /* many identifiers (limit 32) */
        size_t n = 1 + fuzz_below(200);
        fb_str(b, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Many\"}],\"identifier\":[");
        for (size_t i = 0; i < n; i++) {
            char item[96];
            snprintf(item, sizeof item, "%s{\"system\":\"urn:many\",\"value\":\"%zu-%llu\"}", i ? "," : "", i,
                     (unsigned long long)fuzz_below(1000000));
            fb_str(b, item);
        }
        fb_str(b, "]}");
        break;
    }
    case 4: {
        static const char *const tops[] = {"[]", "\"Patient\"", "42", "null", "", " ", "{", "}", "{\"resourceType\":1}",
                                           "{\"resourceType\":\"Observation\"}", "\xef\xbb\xbf{}", "{\"\":{}}"};
        fb_str(b, tops[fuzz_below(sizeof tops / sizeof *tops)]);
        break;
    }
    case 5: { /* wrong types for each element the registry reads */
        static const char *const wrong[] = {
            "{\"resourceType\":\"Patient\",\"name\":\"Okafor\"}",
            "{\"resourceType\":\"Patient\",\"name\":[{\"given\":\"Ada\"}]}",
            "{\"resourceType\":\"Patient\",\"identifier\":{\"system\":\"a\",\"value\":\"b\"}}",
            "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":1,\"value\":[]}]}",
            "{\"resourceType\":\"Patient\",\"birthDate\":19900412}",
            "{\"resourceType\":\"Patient\",\"birthDate\":\"1990-02-30\"}",
            "{\"resourceType\":\"Patient\",\"gender\":\"robot\"}",
            "{\"resourceType\":\"Patient\",\"active\":\"yes\"}",
            "{\"resourceType\":\"Patient\",\"telecom\":[{\"value\":{}}]}",
            "{\"resourceType\":\"Patient\",\"address\":[{\"line\":\"x\"}]}",
            "{\"resourceType\":\"Patient\",\"id\":\"../../etc\",\"name\":[{\"family\":\"X\"}]}",
            "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":5}]}",
            "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"a|b\",\"value\":\"c\"}]}",
            "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":[]}]}",
            "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"count\",\"valueInteger\":-5}]}",
            "{\"resourceType\":\"Parameters\",\"parameter\":{}}",
            "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":null}]}",
        };
        fb_str(b, wrong[fuzz_below(sizeof wrong / sizeof *wrong)]);
        break;
    }
    default: { /* random bytes */
        size_t n = fuzz_below(2048);
        for (size_t i = 0; i < n; i++) {
            char c = (char)fuzz_next();
            fb_add(b, &c, 1);
        }
        break;
    }
    }
}

static const char *const fuzz_paths[] = {
    "/fhir/Patient", "/fhir/Patient/$match", "/fhir/Patient/_search", "/fhir/Patient/%s", "/fhir/Patient/%s/_history",
    "/fhir/Patient/%s/_history/1", "/fhir/Patient/$ihe-pix", "/fhir/metadata", "/admin/link", "/admin/review",
    "/admin/review/%s/resolve", "/admin/merge", "/admin/audit", "/admin/tokens", "/health", "/metrics",
    "/openapi.json",
};

static const char *const fuzz_queries[] = {
    "", "?family=Okafor", "?family=%zz", "?family=%", "?family=%00", "?family=%FF%FE", "?given=%C3%28",
    "?unknown=1", "?_count=-1", "?_count=abc", "?_count=99999999999999999999", "?_offset=-5", "?birthdate=xx1990",
    "?birthdate=gt1990-13", "?identifier=%7C", "?identifier=||||", "?gender=robot", "?family:nope=x", "?=x", "?&&&",
    "?sourceIdentifier=", "?sourceIdentifier=a%7Cb&targetSystem=", "?_format=xml", "?telecom=%2B%2B%2B",
    "?family=a,b,c,d,e,f,g,h,i,j,k,l,m", "?limit=0", "?since=notadate", "?record=..%2F..", "?status=weird",
};

static const char *const fuzz_ids[] = {"nope", "..", "%2e%2e", "a%00b", "-", "0123456789012345678901234567890123456789012345678901234567890123456789",
                                       "%ZZ", "%C3%28", "A.B-C", "_history", "$match", "a;b"};

static const char *const fuzz_content_types[] = {
    "Content-Type: application/fhir+json", "Content-Type: application/json", "Content-Type: text/plain",
    "Content-Type: application/fhir+json; charset=ebcdic", "Content-Type:", "Content-Type: \x01\x02",
    "Content-Type: application/x-www-form-urlencoded", "Content-Type: application/fhir+xml",
    "Content-Type: multipart/form-data; boundary=x",
};

static const char *const fuzz_accepts[] = {"Accept: */*", "Accept: application/fhir+xml", "Accept: text/html",
                                           "Accept: ;;;;", "Accept: application/json;q=abc", NULL};

typedef struct fuzz_stats {
    long sent, not_sent, by_class[6], transport;
} fuzz_stats;

static size_t fuzz_discard(char *ptr, size_t size, size_t nmemb, void *userdata) { return size * nmemb; }

/* One request: never 5xx. A transport error (the server closed the connection) is
 * allowed only where we sent what a server may refuse that way: huge headers. */
static void fuzz_send(CURL *curl, int port, const char *method, const char *path, struct curl_slist *headers,
                      const fuzz_buf *body, bool may_close, fuzz_stats *st, const char *what)
{
    char url[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, fuzz_discard);
    /* Where the server may let the connection time out, do not wait for that. */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, may_close ? 3L : 30L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body && body->data) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CURLcode rc = curl_easy_perform(curl);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (getenv("RL_FUZZ_SLOW") && ms > 50)
        fprintf(stderr, "slow %.0f ms: %s %.80s (%s, %zu bytes, status %d)\n", ms, method, path, what,
                body ? body->len : 0, (int)rc);
    if (rc == CURLE_URL_MALFORMAT) {
        st->not_sent++; /* curl refused to send it: nothing for the server to answer */
        return;
    }
    st->sent++;
    if (rc != CURLE_OK) {
        st->transport++;
        if (!may_close)
            fail_msg("%s %s (%s): no answer: %s", method, path, what, curl_easy_strerror(rc));
        return;
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 500 || status < 100)
        fail_msg("%s %s (%s): status %ld on bad input", method, path, what, status);
    st->by_class[status / 100]++;
}

/* Garbage straight onto a socket: an answer, if any, is never 5xx. */
static void fuzz_raw(int port, const char *token, fuzz_stats *st)
{
    fuzz_buf b = {0};
    int kind = (int)fuzz_below(5);
    switch (kind) {
    case 0:
        for (size_t i = 0, n = fuzz_below(512); i < n; i++) {
            char c = (char)fuzz_next();
            fb_add(&b, &c, 1);
        }
        break;
    case 1:
        fb_str(&b, "GET /fhir/Patient HTTP/9.9\r\n\r\n");
        break;
    case 2:
        fb_str(&b, "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nAuthorization: Bearer ");
        fb_str(&b, token);
        fb_str(&b, "\r\n\r\n{}");
        break;
    case 3:
        fb_str(&b, "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: "
                   "application/fhir+json\r\nAuthorization: Bearer ");
        fb_str(&b, token);
        fb_str(&b, "\r\n\r\nzz\r\n{}\r\n0\r\n\r\n");
        break;
    default:
        fb_str(&b, "GET /fhir/Patient?family=a\x01\x7f HTTP/1.1\r\nHost: \xff\xfe\r\nX: \x00y\r\n\r\n");
        break;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    /* Bytes that never make a request line get no answer: the server waits for
     * more until http.connection_timeout_s. We do not wait that long. */
    struct timeval tv = {0, 300000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t w = write(fd, b.data ? b.data : "", b.len);
    (void)w;
    shutdown(fd, SHUT_WR);
    char answer[64] = "";
    ssize_t got = kind == 0 ? 0 : read(fd, answer, sizeof answer - 1);
    if (got > 0) {
        answer[got] = '\0';
        /* 505 is HTTP's own word for "HTTP/9.9" (RFC 9110 15.6.6), said by libmicrohttpd
         * before any of our code runs: the one 5xx that is about the client. */
        if (strncmp(answer, "HTTP/1.", 7) == 0 && answer[9] == '5' && strncmp(answer + 9, "505", 3) != 0)
            fail_msg("raw garbage got a 5xx answer: %.20s", answer);
    }
    close(fd);
    st->sent++;
    free(b.data);
}

/* The server under test, where the group teardown finds it when a check fails midway. */
static rl_test_server fuzz_server;

static int fuzz_teardown(void **state)
{
    if (fuzz_server.pid > 0)
        rl_test_server_cleanup(&fuzz_server);
    return 0;
}

static void test_fuzz(void **state)
{
    const char *seed_env = getenv("RL_FUZZ_SEED");
    fuzz_state = seed_env && *seed_env ? strtoull(seed_env, NULL, 10) : 1;
    if (fuzz_state == 0)
        fuzz_state = 1;
    const char *n_env = getenv("RL_FUZZ_REQUESTS");
    long total = n_env && *n_env ? atol(n_env) : 20000;

    rl_test_server *srvp = &fuzz_server;
#define srv (*srvp)
    char *dir = rl_test_tmpdir("fuzz");
    snprintf(srv.dir, sizeof srv.dir, "%s", dir);
    free(dir);
    char config[sizeof srv.dir + 16];
    snprintf(config, sizeof config, "%.500s/config.json", srv.dir);
    FILE *f = fopen(config, "w");
    /* No rate limit (we are one token, fast); writes not fsynced (speed; `check` still applies);
     * a smaller string limit so that huge strings cross it. */
    fputs("{\"http\":{\"rate_limit_per_s\":0,\"max_string_bytes\":65536},\"store\":{\"sync\":\"off\"}}", f);
    fclose(f);
    const char *extra[] = {"--config", config, NULL};
    assert_true(rl_test_server_start(&srv, srv.dir, extra));
    int port = srv.port;

    /* A few real records, so that ids, history and $match have something to find. */
    char ids[4][80] = {{0}};
    for (int i = 0; i < 2; i++) {
        const char *const h[] = {"Content-Type: application/fhir+json", NULL};
        rl_test_response r;
        assert_true(rl_test_http(port, "POST", "/fhir/Patient", h, seeds[i], strlen(seeds[i]), &r));
        assert_int_equal(r.status, 201);
        char *id = strstr(r.body, "\"id\":\"");
        assert_non_null(id);
        snprintf(ids[i], sizeof ids[i], "%.*s", (int)strcspn(id + 6, "\""), id + 6);
        rl_test_response_free(&r);
    }
    snprintf(ids[2], sizeof ids[2], "%s", "nope");
    snprintf(ids[3], sizeof ids[3], "%s", fuzz_ids[0]);

    char auth_good[256];
    snprintf(auth_good, sizeof auth_good, "Authorization: Bearer %.200s", srv.token);
    CURL *curl = curl_easy_init();
    fuzz_stats st = {0};
    time_t started = time(NULL);
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"};
    for (long i = 0; i < total && time(NULL) - started < 60; i++) {
        fuzz_buf body = {0}, path = {0};
        struct curl_slist *headers = NULL;
        bool may_close = false;
        char what[64];
        /* path: mostly real routes with odd ids and queries */
        const char *tmpl = fuzz_paths[fuzz_below(sizeof fuzz_paths / sizeof *fuzz_paths)];
        char p[1024];
        const char *id = fuzz_below(3) == 0 ? fuzz_ids[fuzz_below(sizeof fuzz_ids / sizeof *fuzz_ids)]
                                            : ids[fuzz_below(4)];
        snprintf(p, sizeof p, strstr(tmpl, "%s") ? tmpl : "%s", strstr(tmpl, "%s") ? id : tmpl);
        fb_str(&path, p);
        fb_str(&path, fuzz_queries[fuzz_below(sizeof fuzz_queries / sizeof *fuzz_queries)]);
        if (fuzz_below(20) == 0) { /* hundreds of parameters, or a long value */
            for (int k = 0, n = 1 + (int)fuzz_below(300); k < n; k++)
                fb_str(&path, k == 0 && !strchr(path.data, '?') ? "?family=x" : "&given=y");
        }
        const char *method = fuzz_below(3) == 0 ? methods[fuzz_below(7)]
                             : strstr(p, "$match") || strstr(p, "_search") || strstr(p, "/admin/") ? "POST"
                             : fuzz_below(2) ? "POST" : "GET";
        /* body */
        int kind = (int)fuzz_below(10);
        if (kind < 6) {
            fuzz_mutated_body(&body);
            snprintf(what, sizeof what, "mutated body");
        } else if (kind < 9) {
            fuzz_hostile_body(&body);
            snprintf(what, sizeof what, "hostile body");
        } else {
            snprintf(what, sizeof what, "no body");
        }
        /* headers */
        headers = curl_slist_append(headers, "Expect:");
        headers = curl_slist_append(headers, fuzz_below(4) ? fuzz_content_types[fuzz_below(2)]
                                                           : fuzz_content_types[fuzz_below(sizeof fuzz_content_types /
                                                                                           sizeof *fuzz_content_types)]);
        const char *accept = fuzz_accepts[fuzz_below(sizeof fuzz_accepts / sizeof *fuzz_accepts)];
        if (accept && fuzz_below(3) == 0)
            headers = curl_slist_append(headers, accept);
        char authbuf[12000];
        switch (fuzz_below(12)) {
        case 0: headers = curl_slist_append(headers, "Authorization:"); break;
        case 1: headers = curl_slist_append(headers, "Authorization: Bearer"); break;
        case 2: headers = curl_slist_append(headers, "Authorization: Bearer rl1_"); break;
        case 3: {
            snprintf(authbuf, sizeof authbuf, "Authorization: Bearer %s", srv.token);
            authbuf[30 + fuzz_below(strlen(authbuf) - 30)] = (char)('!' + fuzz_below(90));
            headers = curl_slist_append(headers, authbuf);
            break;
        }
        case 4: {
            size_t n = 100 + fuzz_below(10000);
            memcpy(authbuf, "Authorization: Bearer ", 22);
            memset(authbuf + 22, 'A', n);
            authbuf[22 + n] = '\0';
            headers = curl_slist_append(headers, authbuf);
            may_close = n > 8000;
            break;
        }
        default: headers = curl_slist_append(headers, auth_good); break;
        }
        if (fuzz_below(25) == 0) { /* headers past http.max_header_bytes */
            char *huge = malloc(50000);
            memcpy(huge, "X-Huge: ", 8);
            size_t n = 1000 + fuzz_below(45000);
            memset(huge + 8, 'h', n);
            huge[8 + n] = '\0';
            headers = curl_slist_append(headers, huge);
            free(huge);
            may_close = true;
        }
        /* Request line and headers near libmicrohttpd's per-connection pool
         * (http.max_header_bytes) leave no room to read a body: the server then
         * answers 431, closes, or lets the connection time out. All fine. */
        size_t head_bytes = path.len;
        for (struct curl_slist *h = headers; h; h = h->next)
            head_bytes += strlen(h->data) + 2;
        for (const char *c = path.data; (c = strchr(c, '&')) != NULL; c++)
            head_bytes += 64; /* each query argument takes a record in that pool too */
        may_close = may_close || head_bytes > 12000;
        fuzz_send(curl, port, method, path.data, headers, kind < 9 ? &body : NULL, may_close, &st, what);
        curl_slist_free_all(headers);
        free(body.data);
        free(path.data);
        if (i % 25 == 0)
            fuzz_raw(port, srv.token, &st);
        if (i % 500 == 499) { /* still alive? */
            rl_test_response r;
            assert_true(rl_test_http(port, "GET", "/health", NULL, NULL, 0, &r));
            assert_int_equal(r.status, 200);
            rl_test_response_free(&r);
        }
    }
    curl_easy_cleanup(curl);
    fprintf(stderr, "fuzz: %ld sent (%ld not sendable), 2xx %ld, 3xx %ld, 4xx %ld, closed %ld, in %lds\n", st.sent,
            st.not_sent, st.by_class[2], st.by_class[3], st.by_class[4], st.transport, (long)(time(NULL) - started));
    assert_true(st.sent >= total || time(NULL) - started >= 60);
    assert_true(st.by_class[4] > st.sent / 2); /* mostly refused, as it should be */

    /* A clean exit (under ASan: no leaks), then a consistent store. */
    int status = rl_test_server_stop(&srv);
    if (status != 0) {
        char *log = rl_test_read_file(srv.log, NULL);
        fprintf(stderr, "server exit status %d; log tail:\n%s\n", status,
                log ? log + (strlen(log) > 4000 ? strlen(log) - 4000 : 0) : "");
        free(log);
    }
    assert_int_equal(status, 0);
    char cmd[4096];
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%.2000s check --data %s", rl_test_bin(), srv.data);
    int rc = rl_test_run(cmd, &out);
    if (rc != 0)
        fail_msg("ridgeline check after fuzzing: exit %d\n%s", rc, out);
    free(out);
    if (getenv("RL_FUZZ_KEEP"))
        fprintf(stderr, "fuzz: kept %s (RL_FUZZ_KEEP)\n", srv.dir);
    else
        rl_test_server_cleanup(&srv);
#undef srv
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fuzz)};
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests(tests, NULL, fuzz_teardown);
    curl_global_cleanup();
    return failed;
}
