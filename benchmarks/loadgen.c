/* Load generator for the wsgi_push benchmarks: one thread, epoll, loopback.
 *
 * It holds N subscriber connections (SSE/NDJSON streams or long polls), and
 * publishes over HTTP POST at a paced rate from a few keep-alive publisher
 * connections. Every payload carries a marker "@@<ns>:<seq>:<step>@@" where
 * <ns> is CLOCK_MONOTONIC at send time (publisher and subscribers live in
 * this one process, so the clock is shared); a subscriber that sees a marker
 * records receive - send as the latency of one delivery.
 *
 * The run is a list of rate steps. Each step publishes for --step seconds,
 * then waits up to --drain seconds for every expected delivery. A step fails
 * when a delivery is lost, p99 exceeds --max-p99 ms, or the publisher could
 * not keep 90% of the asked rate; the run stops at the first failing step.
 * Results are one JSON object per line on stdout.
 *
 * Variants: --mux K makes each subscriber follow K channels over one
 * connection (--mux-path, its channels joined by --mux-sep); --batch B
 * publishes B messages (round-robin over the channels) per request to
 * --batch-path; --mode storm holds SSE subscribers, publishes at a steady
 * rate, resets every subscriber connection at once (SO_LINGER 0) and
 * reconnects them with Last-Event-ID, and reports subscribers connected over
 * time and whether each got every message exactly once; --ready-on-send
 * counts a stream as connected once its request is out (servers that send
 * no head before the first message), primed by publishing until every
 * subscriber has its head.
 *
 * Compiled at run time by benchmarks/run.py into benchmarks/work/.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { SUB_STREAM = 1, SUB_POLL = 2, PUB = 3 };
enum { FLAVOUR_WSGI = 0, FLAVOUR_NCHAN = 1 };

#define TAIL 64
#define HIST_BUCKETS 1000000 /* 10 us buckets, up to 10 s */
#define HIST_RES_NS 10000LL

typedef struct conn {
    int fd;
    int kind;
    int channel;
    int connected;    /* TCP connect finished and request sent */
    int ok;           /* saw "HTTP/1.1 200" (streams) */
    int busy;         /* publisher/poller: a request is outstanding */
    int closed;
    long long received; /* deliveries in the current step */
    /* stream: unparsed tail of the byte stream */
    char tail[TAIL];
    int tail_len;
    /* poll + publisher: the response being read */
    char *resp;
    size_t resp_len, resp_cap;
    long long last_id;        /* wsgi poll: since= */
    char etag[64], lastmod[64]; /* nchan poll */
    char event_id[64];        /* storm: the last SSE id: seen */
    int watermark;            /* storm: every seq below it seen */
    long long sent_ns;
} conn_t;

/* options */
static const char *host = "127.0.0.1";
static int port = 0;
static const char *mode = "stream";   /* stream | poll | idle */
static int flavour = FLAVOUR_WSGI;
static int subs = 100;
static int channels = 1;
static const char *prefix = "c";
static const char *sub_path = "/push/sse/%s%d";
static const char *pub_path = "/push/publish/%s%d";
static const char *pub_auth = "";
static int pub_json = 1;              /* body {"data":"..."} vs raw text */
static int pub_conns = 8;
static double rates[64], step_lengths[64];
static int n_rates = 0;
static double step_s = 3.0, drain_s = 2.0, max_p99_ms = 1000.0, hold_s = 0.0;
static double connect_timeout_s = 120.0;
static int server_pids[4];
static int n_server_pids = 0;
static int payload_pad = 0;
static int retries_left = 0;
static int mux = 1;
static const char *mux_path = NULL;
static const char *mux_sep = ",";
static int batch = 1;
static const char *batch_path = "/push/publish";
static int ready_on_send = 0;
static double storm_rate = 5.0, storm_at = 3.0, storm_after = 3.0, storm_max = 60.0;
static int storming = 0;
static unsigned char *seen; /* storm: subs x STORM_SEQS delivery counts */
#define STORM_SEQS 4096

static int epfd;
static conn_t *conns;
static int n_conns;
static struct sockaddr_in addr;
static uint32_t *hist;
static long long lat_max_ns, lat_count;
static long long step_late;
static int cur_step = 0;
static long long *published_per_channel; /* this step */
static char rbuf[TAIL + 262144];

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_self_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double cpu_servers_s(void) {
    double total = 0;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < n_server_pids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", server_pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p) continue;
        /* fields after ")": state(3) ... utime(14) stime(15) */
        unsigned long long ut = 0, st = 0;
        int field = 2;
        for (char *q = p + 1; *q && field < 15; q++) {
            if (*q == ' ') {
                field++;
                if (field == 14) ut = strtoull(q + 1, NULL, 10);
                if (field == 15) st = strtoull(q + 1, NULL, 10);
            }
        }
        total += (double)(ut + st) / hz;
    }
    return total;
}

static void record_latency(long long ns) {
    if (ns < 0) ns = 0;
    long long b = ns / HIST_RES_NS;
    if (b >= HIST_BUCKETS) b = HIST_BUCKETS - 1;
    hist[b]++;
    lat_count++;
    if (ns > lat_max_ns) lat_max_ns = ns;
}

static double percentile_ms(double p) {
    if (!lat_count) return 0;
    long long want = (long long)(p * lat_count);
    if (want >= lat_count) want = lat_count - 1;
    long long seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) return (i + 1) * HIST_RES_NS / 1e6;
    }
    return lat_max_ns / 1e6;
}

/* Scan data for complete markers; count deliveries. Returns offset after the
 * last complete marker. */
static size_t scan_markers(conn_t *c, const char *data, size_t len, long long recv_ns) {
    size_t done = 0;
    const char *p = data, *end = data + len;
    while ((p = memmem(p, end - p, "@@", 2)) != NULL) {
        const char *q = p + 2;
        long long ts = 0, seq = 0, step = 0;
        int ok = 0;
        const char *s = q;
        while (q < end && *q >= '0' && *q <= '9') ts = ts * 10 + (*q++ - '0');
        if (q < end && q > s && *q == ':') {
            q++;
            s = q;
            while (q < end && *q >= '0' && *q <= '9') seq = seq * 10 + (*q++ - '0');
            if (q < end && q > s && *q == ':') {
                q++;
                s = q;
                while (q < end && *q >= '0' && *q <= '9') step = step * 10 + (*q++ - '0');
                if (q + 1 < end && q > s && q[0] == '@' && q[1] == '@') ok = 1;
            }
        }
        if (ok && storming && step == cur_step && seq < STORM_SEQS) {
            unsigned char *cell = &seen[(size_t)(c - conns) * STORM_SEQS + seq];
            if (*cell < 255) (*cell)++;
        }
        if (!ok) {
            if (q >= end - 1) break; /* incomplete: keep in tail */
            p += 2;
            continue;
        }
        if (step == cur_step) {
            c->received++;
            record_latency(recv_ns - ts);
        } else {
            step_late++;
        }
        p = q + 2;
        done = p - data;
    }

    return done;
}

static void ep_mod(conn_t *c, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static int open_conn(conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    if (r < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->connected = 0;
    c->closed = 0;
    c->ok = 0;
    c->busy = 0;
    c->tail_len = 0;
    c->resp_len = 0;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
    return 0;
}

static int send_all(conn_t *c, const char *buf, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) continue; /* tiny requests: the buffer is empty */
            return -1;
        }
        off += n;
    }
    return 0;
}

/* The channels a subscriber follows: K consecutive ones from its first. */
static int sub_channel(conn_t *c, int j) { return (c->channel + j) % channels; }

static void send_sub_request(conn_t *c) {
    char path[4096], req[8192];
    if (mux > 1) {
        char list[3072];
        size_t off = 0;
        for (int j = 0; j < mux && off < sizeof list - 64; j++)
            off += snprintf(list + off, sizeof list - off, "%s%s%d", j ? mux_sep : "", prefix,
                            sub_channel(c, j));
        snprintf(path, sizeof path, mux_path, list);
    } else {
        snprintf(path, sizeof path, sub_path, prefix, c->channel);
    }
    int n;
    if (c->kind == SUB_POLL && flavour == FLAVOUR_WSGI) {
        n = snprintf(req, sizeof req,
                     "GET %s?since=%lld&timeout=20 HTTP/1.1\r\nHost: %s\r\n\r\n",
                     path, c->last_id, host);
    } else if (c->kind == SUB_POLL && c->etag[0]) {
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nIf-Modified-Since: %s\r\n"
                     "If-None-Match: %s\r\n\r\n",
                     path, host, c->lastmod, c->etag);
    } else if (c->event_id[0]) {
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
                     "Last-Event-ID: %s\r\n\r\n",
                     path, host, c->event_id);
    } else {
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path,
                     host);
    }
    c->busy = 1;
    c->resp_len = 0;
    if (send_all(c, req, n) < 0) c->closed = 1;
}

static long long pub_seq = 0, pub_sent_step = 0, pub_acked = 0, pub_errors = 0;

static char *batch_req; /* --batch: one request of up to batch messages */

static int publish_batch(conn_t *c) {
    size_t cap = (size_t)batch * 512 + 1024, off = 0;
    if (!batch_req) batch_req = malloc(cap);
    char *body = malloc(cap);
    off += snprintf(body + off, cap - off, "{\"messages\":[");
    long long ts = now_ns();
    for (int k = 0; k < batch; k++) {
        int channel = (int)(pub_seq % channels);
        off += snprintf(body + off, cap - off, "%s{\"channel\":\"%s%d\",\"data\":\"@@%lld:%lld:%d@@\"}",
                        k ? "," : "", prefix, channel, ts, pub_seq, cur_step);
        published_per_channel[channel]++;
        pub_seq++;
        pub_sent_step++;
    }
    off += snprintf(body + off, cap - off, "]}");
    int n = snprintf(batch_req, cap,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     batch_path, host, pub_auth[0] ? "Authorization: " : "", pub_auth,
                     pub_auth[0] ? "\r\n" : "", off);
    c->busy = 1;
    c->resp_len = 0;
    c->sent_ns = ts;
    int r = send_all(c, batch_req, n) < 0 || send_all(c, body, off) < 0 ? -1 : 0;
    free(body);
    if (r < 0) c->closed = 1;
    return r;
}

static int publish_one(conn_t *c) {
    if (batch > 1) return publish_batch(c);
    char marker[96], body[512], path[512], req[2048];
    int channel = (int)(pub_seq % channels);
    long long ts = now_ns();
    snprintf(marker, sizeof marker, "@@%lld:%lld:%d@@", ts, pub_seq, cur_step);
    char pad[256];
    int padn = payload_pad < (int)sizeof pad - 1 ? payload_pad : (int)sizeof pad - 1;
    memset(pad, 'x', padn);
    pad[padn] = 0;
    int blen = pub_json ? snprintf(body, sizeof body, "{\"data\":\"%s%s\"}", marker, pad)
                        : snprintf(body, sizeof body, "%s%s", marker, pad);
    snprintf(path, sizeof path, pub_path, prefix, channel);
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n%s%s%s"
                     "Content-Length: %d\r\n\r\n%s",
                     path, host, pub_json ? "application/json" : "text/plain",
                     pub_auth[0] ? "Authorization: " : "", pub_auth, pub_auth[0] ? "\r\n" : "",
                     blen, body);
    c->busy = 1;
    c->resp_len = 0;
    c->sent_ns = ts;
    if (send_all(c, req, n) < 0) {
        c->closed = 1;
        return -1;
    }
    published_per_channel[channel]++;
    pub_seq++;
    pub_sent_step++;
    return 0;
}

/* A complete HTTP response in c->resp? Returns its total length, 0 if not yet. */
static size_t response_complete(conn_t *c, int *status, size_t *body_off) {
    if (c->resp_len < 12) return 0;
    char *hdr_end = memmem(c->resp, c->resp_len, "\r\n\r\n", 4);
    if (!hdr_end) return 0;
    size_t hlen = hdr_end + 4 - c->resp;
    *status = atoi(c->resp + 9);
    *body_off = hlen;
    /* headers: case-insensitive search */
    char save = c->resp[hlen - 1];
    c->resp[hlen - 1] = 0;
    char *cl = strcasestr(c->resp, "\r\ncontent-length:");
    char *te = strcasestr(c->resp, "\r\ntransfer-encoding: chunked");
    c->resp[hlen - 1] = save;
    if (cl) {
        size_t blen = strtoul(cl + 17, NULL, 10);
        if (c->resp_len >= hlen + blen) return hlen + blen;
        return 0;
    }
    if (te) {
        char *fin = memmem(c->resp + hlen, c->resp_len - hlen, "0\r\n\r\n", 5);
        if (fin && (fin == c->resp + hlen || fin[-1] == '\n')) return fin + 5 - c->resp;
        return 0;
    }
    if (*status == 304 || *status == 204) return hlen;
    return 0;
}

static void header_value(conn_t *c, size_t hlen, const char *name, char *out, size_t cap) {
    out[0] = 0;
    char save = c->resp[hlen - 1];
    c->resp[hlen - 1] = 0;
    char *h = strcasestr(c->resp, name);
    c->resp[hlen - 1] = save;
    if (!h) return;
    h += strlen(name);
    while (*h == ' ') h++;
    size_t i = 0;
    while (h[i] && h[i] != '\r' && i + 1 < cap) {
        out[i] = h[i];
        i++;
    }
    out[i] = 0;
}

static void on_response(conn_t *c, size_t total, int status, size_t body_off, long long t) {
    if (c->kind == PUB) {
        if (status >= 200 && status < 300)
            pub_acked++;
        else
            pub_errors++;
    } else { /* SUB_POLL */
        if (status == 200) {
            scan_markers(c, c->resp + body_off, total - body_off, t);
            if (flavour == FLAVOUR_WSGI) {
                char *l = memmem(c->resp + body_off, total - body_off, "\"last_id\":", 10);
                if (l) c->last_id = strtoll(l + 10, NULL, 10);
            } else {
                header_value(c, body_off, "\r\netag:", c->etag, sizeof c->etag);
                header_value(c, body_off, "\r\nlast-modified:", c->lastmod, sizeof c->lastmod);
            }
            c->ok = 1;
        } else if (status != 304 && status != 408) {
            pub_errors++;
        }
    }
    size_t rest = c->resp_len - total;
    memmove(c->resp, c->resp + total, rest);
    c->resp_len = rest;
    c->busy = 0;
    if (c->kind == SUB_POLL) send_sub_request(c);
}

static int quickack = 0;

/* Remember the value of the last complete "id:" line (SSE), to resume with. */
static void scan_event_id(conn_t *c, const char *data, size_t len) {
    const char *p = data, *end = data + len;
    while ((p = memmem(p, end - p, "\nid:", 4)) != NULL) {
        const char *v = p + 4, *eol = memchr(v, '\n', end - v);
        if (!eol) return;
        while (v < eol && *v == ' ') v++;
        size_t n = eol - v;
        if (n && v[n - 1] == '\r') n--;
        if (n < sizeof c->event_id) {
            memcpy(c->event_id, v, n);
            c->event_id[n] = 0;
        }
        p = eol;
    }
}

static void on_readable(conn_t *c) {
    long long t = now_ns();
    if (quickack) {
        /* ACK at once: a server that leaves Nagle on (nginx on a stream) would
         * otherwise wait for the delayed ACK (~40 ms) between small writes. */
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    for (;;) {
        if (c->kind == SUB_STREAM) {
            memcpy(rbuf, c->tail, c->tail_len);
            ssize_t n = recv(c->fd, rbuf + c->tail_len, sizeof rbuf - TAIL, 0);
            if (n <= 0) {
                if (n < 0 && errno == EAGAIN) return;
                c->closed = 1;
                return;
            }
            size_t len = c->tail_len + n;
            if (!c->ok && len >= 12) {
                if (memcmp(rbuf, "HTTP/1.1 200", 12) == 0) {
                    c->ok = 1;
                } else if (storming) { /* refused (503...): try again */
                    c->closed = 1;
                    return;
                }
            }
            if (storming) scan_event_id(c, rbuf, len);
            size_t done = scan_markers(c, rbuf, len, t);
            size_t keep_from = len > TAIL - 1 ? len - (TAIL - 1) : 0;
            if (keep_from < done) keep_from = done;
            c->tail_len = len - keep_from;
            memcpy(c->tail, rbuf + keep_from, c->tail_len);
        } else {
            if (c->resp_cap - c->resp_len < 65536) {
                c->resp_cap = c->resp_cap * 2 + 65536;
                c->resp = realloc(c->resp, c->resp_cap + 1);
            }
            ssize_t n = recv(c->fd, c->resp + c->resp_len, c->resp_cap - c->resp_len, 0);
            if (n <= 0) {
                if (n < 0 && errno == EAGAIN) return;
                c->closed = 1;
                return;
            }
            c->resp_len += n;
            int status;
            size_t body_off, total;
            while ((total = response_complete(c, &status, &body_off)) > 0)
                on_response(c, total, status, body_off, t);
        }
    }
}

static void reconnect_if_closed(conn_t *c) {
    if (!c->closed) return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (c->kind == PUB || c->kind == SUB_POLL || storming) {
        /* keep-alive ended by the server: open a new connection */
        open_conn(c);
    }
}

static int live_subs(void) {
    int n = 0;
    for (int i = 0; i < subs; i++)
        if (conns[i].ok && !conns[i].closed && conns[i].fd >= 0) n++;
    return n;
}

static int closed_subs(void) {
    int n = 0;
    for (int i = 0; i < subs; i++)
        if (conns[i].kind == SUB_STREAM && conns[i].fd < 0) n++;
    return n;
}

/* one turn of the event loop */
static void loop_once(int timeout_ms) {
    struct epoll_event evs[1024];
    int n = epoll_wait(epfd, evs, 1024, timeout_ms);
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->fd < 0) continue;
        if (!c->connected && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) {
                c->closed = 1;
                reconnect_if_closed(c);
                continue;
            }
            c->connected = 1;
            ep_mod(c, EPOLLIN);
            if (c->kind != PUB) send_sub_request(c);
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        if (c->closed) reconnect_if_closed(c);
    }
}

/* Publish whatever is due at the paced rate on idle publisher connections. */
static void publish_due(long long t, long long until, long long *next_due, long long interval,
                        int *rr, long long *behind_max) {
    while (*next_due <= t && *next_due < until) {
        int found = -1;
        for (int k = 0; k < pub_conns; k++) {
            int idx = subs + (*rr - subs + k) % pub_conns;
            if (conns[idx].connected && !conns[idx].busy && !conns[idx].closed) {
                found = idx;
                break;
            }
        }
        if (found < 0) break;
        *rr = subs + (found - subs + 1) % pub_conns;
        if (behind_max && t - *next_due > *behind_max) *behind_max = t - *next_due;
        publish_one(&conns[found]);
        *next_due += interval * batch;
    }
}

/* Messages every subscriber should have got this step. */
static long long expected_for(conn_t *c) {
    long long n = 0;
    for (int j = 0; j < mux; j++) n += published_per_channel[sub_channel(c, j)];
    return n;
}

/* Advance a storm subscriber's watermark over the seqs it has seen. */
static int watermark(int i, long long total) {
    conn_t *c = &conns[i];
    while (c->watermark < total && c->watermark < STORM_SEQS &&
           seen[(size_t)i * STORM_SEQS + c->watermark])
        c->watermark++;
    return c->watermark;
}

static void cut_all(void) {
    struct linger reset = {1, 0};
    for (int i = 0; i < subs; i++) {
        conn_t *c = &conns[i];
        if (c->fd >= 0) {
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
        }
        open_conn(c);
    }
}

/* --mode storm: steady publishing; every subscriber reset at once; report
 * subscribers connected over time and the time until all are back with
 * every message, and exactly-once over the whole run. */
static void run_storm(void) {
    storming = 1;
    cur_step = 1;
    seen = calloc((size_t)subs * STORM_SEQS, 1);
    memset(hist, 0, HIST_BUCKETS * sizeof *hist);
    lat_count = 0;
    lat_max_ns = 0;
    long long start = now_ns(), interval = (long long)(1e9 / storm_rate), next_due = start;
    long long cut_at = start + (long long)(storm_at * 1e9), stop_at = start + (long long)(storm_max * 1e9);
    long long t_cut = 0, t_all_back = 0, t_recovered = 0, pub_at_back = 0, pub_at_cut = 0;
    long long next_sample = start, sample_ns = 20000000LL;
    int rr = subs, cap = (int)(storm_max * 1e9 / sample_ns) + 16, ntl = 0;
    double *tl_t = malloc(cap * sizeof *tl_t);
    int *tl_n = malloc(cap * sizeof *tl_n);
    double s0 = cpu_servers_s();
    while (1) {
        long long t = now_ns();
        if (t >= stop_at || (t_recovered && t >= t_recovered + (long long)(storm_after * 1e9))) break;
        publish_due(t, stop_at, &next_due, interval, &rr, NULL);
        if (!t_cut && t >= cut_at) {
            pub_at_cut = pub_seq;
            cut_all();
            t_cut = now_ns();
        }
        if (t >= next_sample) {
            int n = live_subs();
            if (ntl < cap) {
                tl_t[ntl] = (t - start) / 1e9;
                tl_n[ntl++] = n;
            }
            next_sample = t + sample_ns;
            if (t_cut && !t_all_back && n == subs) {
                t_all_back = t;
                pub_at_back = pub_seq;
            }
            if (t_all_back && !t_recovered) {
                int all = 1;
                for (int i = 0; i < subs && all; i++) all = watermark(i, pub_at_back) >= pub_at_back;
                if (all) t_recovered = t;
            }
        }
        long long wake = next_due < next_sample ? next_due : next_sample;
        long long wait_ns = wake - now_ns();
        int timeout_ms = wait_ns <= 0 ? 0 : (int)((wait_ns + 999999) / 1000000);
        loop_once(timeout_ms > 5 ? 5 : timeout_ms);
    }
    double cpu_srv = 100 * (cpu_servers_s() - s0) / ((now_ns() - start) / 1e9);
    /* publishing has stopped: wait (bounded) for the last deliveries */
    long long total = pub_seq;
    long long drain_end = now_ns() + (long long)(drain_s * 1e9);
    while (now_ns() < drain_end) {
        int all = 1;
        for (int i = 0; i < subs && all; i++) all = watermark(i, total) >= total;
        if (all) break;
        loop_once(5);
    }
    long long missing = 0, duplicated = 0, subs_missing = 0;
    for (int i = 0; i < subs; i++) {
        long long m = 0;
        for (long long q = 0; q < total && q < STORM_SEQS; q++) {
            unsigned char k = seen[(size_t)i * STORM_SEQS + q];
            if (!k) m++;
            else if (k > 1) duplicated += k - 1;
        }
        missing += m;
        if (m) subs_missing++;
    }
    printf("{\"event\":\"storm\",\"subscribers\":%d,\"published\":%lld,\"published_before_cut\":%lld,"
           "\"publish_errors\":%lld,\"rate\":%.2f,\"cut_at_s\":%.3f,\"all_back_s\":%.3f,"
           "\"recovered_s\":%.3f,\"missing\":%lld,\"subscribers_missing\":%lld,"
           "\"duplicated\":%lld,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"server_cpu_pct\":%.1f,"
           "\"timeline_t\":[",
           subs, total, pub_at_cut, pub_errors, storm_rate, (t_cut - start) / 1e9,
           t_all_back ? (t_all_back - t_cut) / 1e9 : -1.0,
           t_recovered ? (t_recovered - t_cut) / 1e9 : -1.0, missing, subs_missing, duplicated,
           percentile_ms(0.99), lat_max_ns / 1e6, cpu_srv);
    for (int k = 0; k < ntl; k++) printf("%s%.3f", k ? "," : "", tl_t[k]);
    printf("],\"timeline_connected\":[");
    for (int k = 0; k < ntl; k++) printf("%s%d", k ? "," : "", tl_n[k]);
    printf("]}\n");
    fflush(stdout);
}

static void parse_rates(const char *s) {
    char *copy = strdup(s), *tok, *save;
    /* "rate" or "rate/seconds" (a step length of its own) */
    for (tok = strtok_r(copy, ",", &save); tok && n_rates < 64; tok = strtok_r(NULL, ",", &save)) {
        char *slash = strchr(tok, '/');
        step_lengths[n_rates] = slash ? atof(slash + 1) : 0;
        rates[n_rates++] = atof(tok);
    }
    free(copy);
}

static void usage(void) {
    fprintf(stderr,
            "loadgen --port P [--mode stream|poll|idle] [--flavour wsgi|nchan] [--subs N]\n"
            "  [--channels C] [--prefix S] [--sub-path FMT] [--pub-path FMT] [--pub-auth H]\n"
            "  [--pub-raw] [--pub-conns K] [--rates r1,r2,...] [--step S] [--drain S]\n"
            "  [--max-p99 MS] [--hold S] [--server-pid PID]...\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
        if (OPT("--host")) host = v;
        else if (OPT("--port")) port = atoi(v);
        else if (OPT("--mode")) mode = v;
        else if (OPT("--flavour")) flavour = strcmp(v, "nchan") == 0 ? FLAVOUR_NCHAN : FLAVOUR_WSGI;
        else if (OPT("--subs")) subs = atoi(v);
        else if (OPT("--channels")) channels = atoi(v);
        else if (OPT("--prefix")) prefix = v;
        else if (OPT("--sub-path")) sub_path = v;
        else if (OPT("--pub-path")) pub_path = v;
        else if (OPT("--pub-auth")) pub_auth = v;
        else if (OPT("--pub-conns")) pub_conns = atoi(v);
        else if (OPT("--rates")) parse_rates(v);
        else if (OPT("--step")) step_s = atof(v);
        else if (OPT("--drain")) drain_s = atof(v);
        else if (OPT("--max-p99")) max_p99_ms = atof(v);
        else if (OPT("--hold")) hold_s = atof(v);
        else if (OPT("--connect-timeout")) connect_timeout_s = atof(v);
        else if (OPT("--pad")) payload_pad = atoi(v);
        else if (OPT("--retries")) retries_left = atoi(v);
        else if (OPT("--mux")) mux = atoi(v);
        else if (OPT("--mux-path")) mux_path = v;
        else if (OPT("--mux-sep")) mux_sep = v;
        else if (OPT("--batch")) batch = atoi(v);
        else if (OPT("--batch-path")) batch_path = v;
        else if (OPT("--storm-rate")) storm_rate = atof(v);
        else if (OPT("--storm-at")) storm_at = atof(v);
        else if (OPT("--storm-after")) storm_after = atof(v);
        else if (OPT("--storm-max")) storm_max = atof(v);
        else if (OPT("--server-pid")) {
            if (n_server_pids < 4) server_pids[n_server_pids++] = atoi(v);
        } else if (strcmp(a, "--pub-raw") == 0) pub_json = 0;
        else if (strcmp(a, "--quickack") == 0) quickack = 1;
        else if (strcmp(a, "--ready-on-send") == 0) ready_on_send = 1;
        else usage();
    }
    if (!port || channels < 1 || subs < 0 || mux < 1 || batch < 1 || (mux > 1 && !mux_path)) usage();
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host, &addr.sin_addr);

    hist = calloc(HIST_BUCKETS, sizeof *hist);
    published_per_channel = calloc(channels, sizeof *published_per_channel);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    int polling = strcmp(mode, "poll") == 0;
    int idle = strcmp(mode, "idle") == 0;
    int storm = strcmp(mode, "storm") == 0;
    n_conns = subs + (idle ? 0 : pub_conns);
    conns = calloc(n_conns, sizeof *conns);

    /* Connect subscribers, at most 256 connects in flight. */
    long long t0 = now_ns();
    double cpu0 = cpu_self_s();
    int opened = 0;
    while (1) {
        int pending = 0, ready = 0;
        for (int i = 0; i < opened; i++) {
            /* a long poll is ready once its request is out */
            if (polling || ready_on_send ? conns[i].connected : conns[i].ok) ready++;
            else pending++;
        }
        if (ready == subs) break;
        while (opened < subs && pending < 256) {
            conn_t *c = &conns[opened];
            c->kind = polling ? SUB_POLL : SUB_STREAM;
            c->channel = (int)(((long long)opened * mux) % channels);
            c->fd = -1;
            if (open_conn(c) < 0) {
                fprintf(stderr, "connect failed: %s\n", strerror(errno));
                break;
            }
            opened++;
            pending++;
        }
        if ((now_ns() - t0) / 1e9 > connect_timeout_s) break;
        loop_once(10);
    }
    double connect_s = (now_ns() - t0) / 1e9;
    int ready = 0;
    for (int i = 0; i < subs; i++)
        if (polling ? conns[i].connected : conns[i].ok && conns[i].fd >= 0) ready++;
    if (!ready_on_send) printf("{\"event\":\"ready\",\"subscribers\":%d,\"wanted\":%d,\"connect_s\":%.3f,"
           "\"loadgen_cpu_s\":%.3f}\n",
           ready, subs, connect_s, cpu_self_s() - cpu0);
    fflush(stdout);

    if (idle) {
        /* Hold the connections, reading heartbeats, for --hold seconds. */
        long long until = now_ns() + (long long)(hold_s * 1e9);
        double c0 = cpu_self_s(), s0 = cpu_servers_s();
        long long h0 = now_ns();
        while (now_ns() < until) loop_once(100);
        double wall = (now_ns() - h0) / 1e9;
        printf("{\"event\":\"held\",\"subscribers\":%d,\"closed\":%d,\"hold_s\":%.3f,"
               "\"loadgen_cpu_pct\":%.3f,\"server_cpu_pct\":%.3f}\n",
               live_subs(), closed_subs(), wall, 100 * (cpu_self_s() - c0) / wall,
               100 * (cpu_servers_s() - s0) / wall);
        return 0;
    }

    for (int i = subs; i < n_conns; i++) {
        conns[i].kind = PUB;
        conns[i].fd = -1;
        open_conn(&conns[i]);
    }
    /* let publishers connect and long polls settle */
    long long settle = now_ns() + 500000000LL;
    while (now_ns() < settle) loop_once(10);
    if (ready_on_send) {
        /* No head before the first message: publish (step 0, not counted)
         * until every subscriber has its head, or the connect timeout. */
        long long prime_until = now_ns() + (long long)(connect_timeout_s * 1e9);
        while (live_subs() < subs && now_ns() < prime_until) {
            for (int k = subs; k < n_conns; k++)
                if (conns[k].connected && !conns[k].busy && !conns[k].closed) {
                    publish_one(&conns[k]);
                    break;
                }
            long long pause = now_ns() + 200000000LL;
            while (now_ns() < pause) loop_once(10);
        }
        printf("{\"event\":\"ready\",\"subscribers\":%d,\"wanted\":%d,\"connect_s\":%.3f,"
               "\"loadgen_cpu_s\":%.3f}\n",
               live_subs(), subs, (now_ns() - t0) / 1e9, cpu_self_s() - cpu0);
        fflush(stdout);
        long long quiet = now_ns() + 500000000LL; /* let the priming deliveries pass */
        while (now_ns() < quiet) loop_once(10);
    }
    if (storm) {
        run_storm();
        return 0;
    }

    for (int s = 0; s < n_rates; s++) {
        cur_step++;
        double rate = rates[s];
        memset(hist, 0, HIST_BUCKETS * sizeof *hist);
        lat_count = 0;
        lat_max_ns = 0;
        step_late = 0;
        pub_sent_step = 0;
        pub_errors = 0;
        memset(published_per_channel, 0, channels * sizeof *published_per_channel);
        for (int i = 0; i < subs; i++) conns[i].received = 0;
        int subs_at_start = polling ? subs : live_subs();
        double c0 = cpu_self_s(), s0 = cpu_servers_s();
        long long start = now_ns();
        double length = step_lengths[s] > 0 ? step_lengths[s] : step_s;
        long long step_end = start + (long long)(length * 1e9);
        long long interval = (long long)(1e9 / rate);
        long long next_due = start;
        int rr = subs;
        long long behind_max = 0;
        while (1) {
            long long t = now_ns();
            if (t >= step_end) break;
            publish_due(t, step_end, &next_due, interval, &rr, &behind_max);
            /* Sleep until the next publish is due (rounded up to a whole
             * millisecond), or 1 ms when every publisher is busy: never spin. */
            long long wait_ns = next_due - now_ns();
            int timeout_ms = wait_ns <= 0 ? 1 : (int)((wait_ns + 999999) / 1000000);
            if (timeout_ms > 10) timeout_ms = 10;
            loop_once(timeout_ms);
        }
        double pub_window = (now_ns() - start) / 1e9;
        /* drain: wait until every expected delivery arrived */
        /* Expected: every publish reaches every subscriber the server
         * accepted (a refused one is reported as not connected, not lost). */
        long long expected = 0;
        for (int i = 0; i < subs; i++)
            if (polling || conns[i].ok) expected += expected_for(&conns[i]);
        long long drain_end = now_ns() + (long long)(drain_s * 1e9);
        long long got = 0;
        while (1) {
            got = 0;
            for (int i = 0; i < subs; i++) got += conns[i].received;
            if (got >= expected || now_ns() >= drain_end) break;
            loop_once(5);
        }
        double wall = (now_ns() - start) / 1e9;
        double cpu_lg = 100 * (cpu_self_s() - c0) / wall;
        double cpu_srv = 100 * (cpu_servers_s() - s0) / wall;
        double p50 = percentile_ms(0.50), p99 = percentile_ms(0.99);
        long long lost = expected - got;
        if (lost < 0) lost = 0;
        double pub_rate = pub_sent_step / pub_window;
        int pub_ok = pub_rate >= 0.9 * rate;
        int pass = lost == 0 && p99 <= max_p99_ms && pub_ok && pub_errors == 0 && got > 0;
        printf("{\"event\":\"step\",\"step\":%d,\"rate\":%.3f,\"published\":%lld,"
               "\"publish_rate\":%.3f,\"publish_errors\":%lld,\"subscribers\":%d,"
               "\"expected\":%lld,\"received\":%lld,\"lost\":%lld,\"late\":%lld,"
               "\"deliveries_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
               "\"publisher_lag_ms\":%.3f,\"loadgen_cpu_pct\":%.1f,\"server_cpu_pct\":%.1f,"
               "\"pass\":%s}\n",
               cur_step, rate, pub_sent_step, pub_rate, pub_errors, subs_at_start, expected, got,
               lost, step_late, got / pub_window, p50, p99, lat_max_ns / 1e6, behind_max / 1e6,
               cpu_lg, cpu_srv, pass ? "true" : "false");
        fflush(stdout);
        if (!pass) {
            /* The machine is shared: give a failing step one second chance
             * before calling it the limit. */
            if (retries_left-- > 0) {
                s--;
                continue;
            }
            break;
        }
    }
    return 0;
}
