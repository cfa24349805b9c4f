/* conn.c -- one benchmark connection: connect, write its pipelined requests, frame and judge
 * replies.
 *
 * A connection that fails (closed, reset, timed out, garbled) counts one error of its kind, drops
 * the requests it had in flight and goes IDLE; the thread's tick reconnects it. It is never
 * reconnected from inside its own event handler, so no stale event can meet a new socket.
 *
 * With several endpoints (--connect a,b,c) a connection starts at its home, slot % count. A
 * connect that fails moves it to the next endpoint at once, and counts a connect error only when
 * it has failed on every endpoint in a row (with one endpoint: every failure, as always). A
 * connection away from home for BENCH_REHOME_NS drains and reconnects at home, so a server that
 * comes back gets its share again. With --idempotent a connection that breaks (closed, reset, a
 * read or write error) keeps the requests that got no byte of their reply, moves to the next
 * endpoint and resends them once it is open again; a half-read reply still counts as closed. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../core/scan.h"
#include "arrpc.h"
#include "bench.h"

#define IN_MIN_CAP (64u * 1024u)                        /* bytes read at once, at least */
#define RETRY_DELAY_NS (100ull * 1000 * 1000)           /* after a failed connect */
#define CONNECT_TIMEOUT_NS (10ull * 1000 * 1000 * 1000) /* when --timeout is not given */
/* A connection away from its home endpoint this long drains and goes back. */
#define BENCH_REHOME_NS (1000ull * 1000 * 1000)
#define ERROR_PREFIX "arrpc.error."
#define AUTH_PREFIX "arrpc.error.AuthException"

static int in_window(const bench_config *cfg, uint64_t t)
{
    return t >= cfg->t_measure && (cfg->t_end == 0 || t < cfg->t_end);
}

static void count_error(bench_conn *c, bench_err kind, uint64_t now)
{
    if (in_window(c->th->cfg, now)) c->th->stats.errors[kind]++;
}

int bench_conn_init(bench_conn *c, bench_thread *th)
{
    const bench_config *cfg = th->cfg;
    memset(c, 0, sizeof *c);
    c->th = th;
    c->fd = -1;
    arrpc__transport_tcp(&c->io, -1);
    c->due_at = calloc(cfg->pipeline, sizeof *c->due_at);
    c->sent_at = calloc(cfg->pipeline, sizeof *c->sent_at);
    c->in_cap = IN_MIN_CAP;
    c->in = malloc(c->in_cap);
    if (cfg->proto == BENCH_PROTO_ARRPC)
        c->scan = arrpc__scan_new(cfg->max_message, ARRPC_DEFAULT_MAX_DEPTH);
    if (!c->due_at || !c->sent_at || !c->in || (cfg->proto == BENCH_PROTO_ARRPC && !c->scan))
        return ARRPC_ENOMEM;
    return 0;
}

void bench_conn_free(bench_conn *c)
{
    c->io.ops->close(&c->io); /* and the fd, when it is open */
    c->fd = -1;
    free(c->due_at);
    free(c->sent_at);
    free(c->in);
    arrpc__scan_free(c->scan);
    c->due_at = c->sent_at = NULL;
    c->in = NULL;
    c->scan = NULL;
}

/* Closes the socket and forgets what was half written or read; requests in flight are kept. */
static void conn_close(bench_conn *c, uint64_t retry)
{
    c->io.ops->close(&c->io); /* closes the fd, which also leaves the epoll set */
    arrpc__transport_tcp(&c->io, -1);
    c->fd = -1;
    c->state = BENCH_CONN_IDLE;
    c->want_out = 0;
    c->leaving = 0;
    c->wpos = c->wend = 0;
    c->in_head = c->in_scan = c->in_len = 0;
    if (c->scan) arrpc__scan_reset(c->scan);
    c->at = retry;
}

/* Forgets the socket and everything in flight; the tick connects again at `retry`. */
static void conn_fail(bench_conn *c, bench_err kind, uint64_t now, uint64_t retry)
{
    count_error(c, kind, now);
    c->ring_head = c->inflight = 0;
    conn_close(c, retry);
}

/* A connect, or the TLS handshake after it, failed: the next endpoint is tried at once, and after
 * a whole round of failures, a while later and with one connect error counted. */
static void conn_connect_failed(bench_conn *c, uint64_t now)
{
    const bench_config *cfg = c->th->cfg;
    c->endpoint = (c->endpoint + 1) % cfg->nendpoints;
    if (++c->failed % cfg->nendpoints != 0) {
        conn_close(c, now);
        return;
    }
    count_error(c, BENCH_ERR_CONNECT, now);
    conn_close(c, now + RETRY_DELAY_NS);
}

/* An open connection broke (closed, reset, read or write error). Without --idempotent that is an
 * error and its requests are lost. With it, only a request whose reply was half read is: the
 * others are resent on the next endpoint once connected (conn_open). */
static void conn_break(bench_conn *c, bench_err kind, uint64_t now)
{
    const bench_config *cfg = c->th->cfg;
    if (!cfg->idempotent) {
        conn_fail(c, kind, now, now);
        return;
    }
    if (c->in_len > c->in_head && c->inflight > 0) { /* the server began this reply: it ran */
        count_error(c, kind, now);
        c->ring_head = (c->ring_head + 1) % cfg->pipeline;
        c->inflight--;
    }
    c->endpoint = (c->endpoint + 1) % cfg->nendpoints;
    conn_close(c, now);
}

static int conn_watch(bench_conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(c->th->epfd, op, c->fd, &ev);
}

static int conn_arm_out(bench_conn *c, int on, uint64_t now)
{
    if (c->want_out == on) return 0;
    c->want_out = on;
    if (conn_watch(c, EPOLL_CTL_MOD, EPOLLIN | (on ? EPOLLOUT : 0)) == 0) return 0;
    conn_fail(c, BENCH_ERR_IO, now, now);
    return -1;
}

static bench_err errno_kind(int err)
{
    return err == ECONNRESET || err == EPIPE || err == ECONNABORTED ? BENCH_ERR_CLOSED
                                                                    : BENCH_ERR_IO;
}

/* Writes what is pending with one send; arms EPOLLOUT for the rest. -1 when the connection failed.
 */
static int conn_write(bench_conn *c, uint64_t now)
{
    const bench_config *cfg = c->th->cfg;
    ssize_t n = c->io.ops->write(&c->io, cfg->batch + c->wpos, c->wend - c->wpos);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return conn_arm_out(c, 1, now);
        conn_break(c, errno_kind(errno), now);
        return -1;
    }
    if (in_window(cfg, now)) c->th->stats.bytes_out += (uint64_t)n;
    c->wpos += (size_t)n;
    if (c->wpos < c->wend) return conn_arm_out(c, 1, now);
    c->wpos = c->wend = 0;
    return conn_arm_out(c, 0, now);
}

/* A request due at `due` goes out at `now`: counted by its due time, with how late it is. */
static void count_sent(bench_stats *s, uint64_t due, uint64_t now)
{
    uint64_t lag = now - due;
    s->sent++;
    s->lag.sum += (double)lag;
    if (lag > s->lag.max) s->lag.max = lag;
    if (lag > BENCH_LATE_NS) s->lag.late++;
}

/* Queues the requests the pipeline has room for that are due (in a closed loop, all of them) and
 * -n allows, and writes them at once. -1 when the connection failed. */
int bench_conn_fill(bench_conn *c, uint64_t now)
{
    bench_thread *th = c->th;
    const bench_config *cfg = th->cfg;
    if (c->state != BENCH_CONN_OPEN || c->wend != 0 || (cfg->t_end && now >= cfg->t_end)) return 0;
    if (c->leaving) { /* drained: back home, with nothing lost */
        if (c->inflight == 0) {
            c->endpoint = c->home;
            conn_close(c, now);
        }
        return 0;
    }
    unsigned k = 0;
    uint64_t due;
    while (c->inflight + k < cfg->pipeline && bench_rate_next(c, now, &due)) {
        if (cfg->requests && due >= cfg->t_measure) {
            if (th->budget == 0) break;
            th->budget--;
        }
        unsigned slot = (c->ring_head + c->inflight + k) % cfg->pipeline;
        c->due_at[slot] = due;
        c->sent_at[slot] = now;
        c->issued++;
        k++;
        if (in_window(cfg, due)) count_sent(&th->stats, due, now);
    }
    if (k == 0) return 0;
    c->inflight += k;
    c->wpos = 0;
    c->wend = (size_t)k * cfg->request_len;
    return conn_write(c, now);
}

void bench_conn_connect(bench_conn *c, uint64_t now)
{
    const bench_endpoint *ep = &c->th->cfg->endpoints[c->endpoint];
    int one = 1;
    c->fd = socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(c, BENCH_ERR_CONNECT, now, now + RETRY_DELAY_NS);
        return;
    }
    arrpc__transport_tcp(&c->io, c->fd);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(c->fd, (const struct sockaddr *)&ep->addr, ep->addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
        conn_connect_failed(c, now);
        return;
    }
    c->state = BENCH_CONN_CONNECTING;
    c->want_out = 1;
    c->at = now;
    if (conn_watch(c, EPOLL_CTL_ADD, EPOLLOUT) != 0)
        conn_fail(c, BENCH_ERR_IO, now, now + RETRY_DELAY_NS);
}

/* The error kind a reply stands for, or -1 for a good one. */
static int judge_arrpc(const bench_config *cfg, const uint8_t *m, size_t n)
{
    size_t off = 0;
    if (m[0] >= 0xa0 && m[0] <= 0xbf)
        off = 1;
    else if (m[0] == 0xd9 || m[0] == 0xda || m[0] == 0xdb)
        off = m[0] == 0xd9 ? 2 : m[0] == 0xda ? 3 : 5;
    if (off && n - off >= strlen(ERROR_PREFIX) &&
        memcmp(m + off, ERROR_PREFIX, strlen(ERROR_PREFIX)) == 0)
        return n - off >= strlen(AUTH_PREFIX) &&
                       memcmp(m + off, AUTH_PREFIX, strlen(AUTH_PREFIX)) == 0
                   ? BENCH_ERR_AUTH
                   : BENCH_ERR_RPC;
    if (!cfg->verify || !cfg->expect || (n == cfg->expect_len && memcmp(m, cfg->expect, n) == 0))
        return -1;
    /* Other bytes may still encode the same object (another packer's choices): decode. */
    msgpack_unpacked u;
    size_t used = 0;
    msgpack_unpacked_init(&u);
    int same = msgpack_unpack_next(&u, (const char *)m, n, &used) == MSGPACK_UNPACK_SUCCESS &&
               msgpack_object_equal(u.data, cfg->expect_obj);
    msgpack_unpacked_destroy(&u);
    return same ? -1 : BENCH_ERR_VERIFY;
}

static int judge_resp(const bench_config *cfg, const uint8_t *m, size_t n)
{
    if (m[0] == '-') return BENCH_ERR_RESP;
    if (m[0] != '+' || n < 3 || m[n - 2] != '\r') return BENCH_ERR_PROTO;
    if (cfg->verify && (n != cfg->expect_len || memcmp(m, cfg->expect, n) != 0))
        return BENCH_ERR_VERIFY;
    return -1;
}

/* One whole reply: it answers the oldest request in flight. -1 when the connection failed. */
static int conn_reply(bench_conn *c, const uint8_t *m, size_t n, uint64_t now)
{
    bench_thread *th = c->th;
    const bench_config *cfg = th->cfg;
    if (c->inflight == 0) {
        conn_fail(c, BENCH_ERR_PROTO, now, now);
        return -1;
    }
    uint64_t due = c->due_at[c->ring_head];
    c->ring_head = (c->ring_head + 1) % cfg->pipeline;
    c->inflight--;
    if (due < cfg->t_measure || (cfg->t_end && now >= cfg->t_end))
        return 0; /* due in the warm-up, or answered after the end: not counted */
    int kind = cfg->proto == BENCH_PROTO_ARRPC ? judge_arrpc(cfg, m, n) : judge_resp(cfg, m, n);
    if (kind >= 0) {
        th->stats.errors[kind]++;
        return 0;
    }
    th->stats.replies++;
    th->stats.last_reply = now;
    bench_hist_record(&th->stats.hist, now - due);
    return 0;
}

/* The end of the next whole reply in in[in_scan, in_len): 1 and *end, 0 if none yet, <0 garbled. */
static int conn_frame(bench_conn *c, size_t *end)
{
    size_t avail = c->in_len - c->in_scan;
    if (c->scan) {
        size_t used = 0;
        int rc = arrpc__scan_feed(c->scan, c->in + c->in_scan, avail, &used);
        c->in_scan += used;
        *end = c->in_scan;
        return rc;
    }
    const uint8_t *nl = memchr(c->in + c->in_scan, '\n', avail);
    c->in_scan = nl ? (size_t)(nl - c->in) + 1 : c->in_len;
    *end = c->in_scan;
    return nl != NULL;
}

/* Keeps a partial reply at the front, growing the buffer when one reply fills it. */
static int conn_make_room(bench_conn *c)
{
    if (c->in_head == c->in_len) {
        c->in_head = c->in_scan = c->in_len = 0;
        return 0;
    }
    if (c->in_head > 0 && c->in_cap - c->in_len < c->in_cap / 4) {
        memmove(c->in, c->in + c->in_head, c->in_len - c->in_head);
        c->in_len -= c->in_head;
        c->in_scan -= c->in_head;
        c->in_head = 0;
    }
    if (c->in_len < c->in_cap) return 0;
    uint8_t *in = realloc(c->in, c->in_cap * 2);
    if (!in) return ARRPC_ENOMEM;
    c->in = in;
    c->in_cap *= 2;
    return 0;
}

/* One read, then every whole reply in the buffer; *now_out is when the read returned. 1 when
 * bytes came, 0 when none did (EAGAIN), -1 when the connection failed. */
static int conn_read(bench_conn *c, uint64_t *now_out)
{
    ssize_t n = c->io.ops->read(&c->io, c->in + c->in_len, c->in_cap - c->in_len);
    uint64_t now = *now_out = bench_now_ns();
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        conn_break(c, n == 0 ? BENCH_ERR_CLOSED : errno_kind(errno), now);
        return -1;
    }
    if (in_window(c->th->cfg, now)) c->th->stats.bytes_in += (uint64_t)n;
    c->in_len += (size_t)n;
    size_t end;
    int rc;
    while (c->in_scan < c->in_len && (rc = conn_frame(c, &end)) != 0) {
        if (rc < 0) {
            conn_fail(c, BENCH_ERR_PROTO, now, now);
            return -1;
        }
        if (conn_reply(c, c->in + c->in_head, end - c->in_head, now) != 0) return -1;
        c->in_head = end;
    }
    if (conn_make_room(c) != 0) {
        conn_fail(c, BENCH_ERR_IO, now, now);
        return -1;
    }
    return 1;
}

/* Connected (and TLS done): requests kept from a broken connection go out first, again. */
static void conn_open(bench_conn *c, uint64_t now)
{
    const bench_config *cfg = c->th->cfg;
    c->state = BENCH_CONN_OPEN;
    c->failed = 0;
    c->at = now;
    if (conn_arm_out(c, 0, now) != 0) return;
    if (c->inflight == 0) {
        bench_conn_fill(c, now);
        return;
    }
    for (unsigned i = 0; i < c->inflight; i++) /* --timeout starts again */
        c->sent_at[(c->ring_head + i) % cfg->pipeline] = now;
    if (in_window(cfg, now)) c->th->stats.resent += c->inflight;
    c->wpos = 0;
    c->wend = (size_t)c->inflight * cfg->request_len;
    conn_write(c, now);
}

/* One step of the TLS handshake; the connection opens when it is done. */
static void conn_handshake(bench_conn *c, uint64_t now)
{
    char why[256];
    int rc = c->io.ops->handshake(&c->io, why, sizeof why);
    if (rc < 0) {
        if (c->th->index == 0 && c == c->th->conns) fprintf(stderr, "arrpc-bench: TLS: %s\n", why);
        conn_connect_failed(c, now);
        return;
    }
    if (rc == 0) {
        conn_arm_out(c, c->io.want == ARRPC_WANT_WRITE, now);
        return;
    }
    conn_open(c, now);
}

static void conn_connected(bench_conn *c, uint64_t now)
{
    const bench_config *cfg = c->th->cfg;
    const char *name = cfg->tls_self_signed ? NULL
                       : cfg->tls_name      ? cfg->tls_name
                                            : cfg->endpoints[c->endpoint].host;
    int err = 0;
    socklen_t len = sizeof err;
    char why[256];
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        conn_connect_failed(c, now);
        return;
    }
    if (cfg->tls) {
        if (arrpc__transport_tls_client(&c->io, c->fd, cfg->tls, name, NULL, why, sizeof why) !=
            0) {
            conn_connect_failed(c, now);
            return;
        }
        c->state = BENCH_CONN_HANDSHAKE;
        conn_handshake(c, now);
        return;
    }
    conn_open(c, now);
}

void bench_conn_event(bench_conn *c, uint32_t events)
{
    if (c->state == BENCH_CONN_CONNECTING) {
        conn_connected(c, bench_now_ns());
        return;
    }
    if (c->state == BENCH_CONN_HANDSHAKE) {
        conn_handshake(c, bench_now_ns());
        return;
    }
    if (c->state != BENCH_CONN_OPEN) return;
    uint64_t now = 0;
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && conn_read(c, &now) < 0) return;
    /* TLS may hold more records above the socket, which no event would announce. */
    int rc = 1;
    while (rc > 0 && c->state == BENCH_CONN_OPEN && c->io.ops->has_pending(&c->io))
        rc = conn_read(c, &now);
    if (c->state != BENCH_CONN_OPEN) return;
    if (now == 0) now = bench_now_ns();
    if ((events & EPOLLOUT) && c->wend != 0 && conn_write(c, now) != 0) return;
    bench_conn_fill(c, now);
}

void bench_conn_tick(bench_conn *c, uint64_t now)
{
    const bench_config *cfg = c->th->cfg;
    uint64_t limit = cfg->timeout_ns ? cfg->timeout_ns : CONNECT_TIMEOUT_NS;
    switch (c->state) {
    case BENCH_CONN_IDLE:
        if (now >= c->at && (cfg->t_end == 0 || now < cfg->t_end)) bench_conn_connect(c, now);
        break;
    case BENCH_CONN_CONNECTING:
    case BENCH_CONN_HANDSHAKE:
        if (now - c->at > limit) conn_connect_failed(c, now);
        break;
    default:
        if (cfg->timeout_ns && c->inflight && now - c->sent_at[c->ring_head] > cfg->timeout_ns) {
            conn_fail(c, BENCH_ERR_TIMEOUT, now, now);
            break;
        }
        if (c->endpoint != c->home && now - c->at > BENCH_REHOME_NS) c->leaving = 1;
        if (c->leaving) bench_conn_fill(c, now);
        break;
    }
}

int bench_conn_busy(const bench_conn *c)
{
    return c->inflight > 0 && (c->state == BENCH_CONN_OPEN || c->th->cfg->idempotent);
}
