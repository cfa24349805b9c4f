/* echo_limit.c -- arrpc-echo-limit: the least work a server of arrpcd's shape can do per request.
 *
 * bench/compare.sh runs it beside arrpcd as the reference for "the limit of this design": one
 * process, one level-triggered epoll loop, one read per readable connection into a shared 64 KiB
 * scratch buffer, every whole message in that read answered, then one send per connection with
 * output before sleeping again. Its only parsing is framing, by the project's resumable scanner
 * (core/scan.h); the reply to a message is the message's own bytes, which is what the demo
 * plugin answers to arrpc-bench's default request (a str, echoed whole), so `arrpc-bench
 * --verify` accepts it. What arrpcd does beyond this (decoding, the handler, metrics, limits on
 * time) is what the ratio to this server measures. It is a benchmark reference, not a server:
 * no TLS, no signing, no timeouts, and invalid input simply closes the connection. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../core/buf.h"
#include "../../core/net.h"
#include "../../core/scan.h"
#include "arrpc.h"
#include "../options.h"

#define ECHO_READ_MAX (64u * 1024u)      /* one read, as a worker's scratch buffer */
#define ECHO_MESSAGE_MAX (1024u * 1024u) /* a longer message closes its connection */
#define ECHO_DEPTH_MAX ARRPC_DEFAULT_MAX_DEPTH
#define ECHO_OUT_HIGH (256u * 1024u) /* unsent replies past this: stop reading the conn */
#define ECHO_CONNECTIONS_MAX 4096u   /* more are accepted and closed at once */
#define ECHO_EVENTS 256              /* epoll events per wake-up, as a worker's loop */
#define ECHO_ACCEPT_BATCH 64         /* accepts per wake-up, as a worker */

/* Per connection at most ECHO_MESSAGE_MAX bytes of a partial message in `partial`, and at most
 * ECHO_OUT_HIGH + ECHO_READ_MAX + ECHO_MESSAGE_MAX of replies in `out` (reading stops at the
 * mark; one read then adds at most its own bytes and a completed partial message). */
typedef struct echo_conn {
    int fd;
    int closing;            /* reaped at the end of the loop iteration */
    int doomed;             /* sent invalid input: closed after one send of what was answered */
    int reading;            /* reads are wanted: its unsent replies are under the mark */
    uint32_t armed;         /* the events epoll watches for it */
    int queued;             /* on the flush list */
    arrpc__scan *scan;      /* frames the stream; its state carries over between reads */
    arrpc__buf partial;     /* the bytes of a message not yet whole */
    arrpc__buf out;         /* replies not yet sent */
    struct echo_conn *next; /* all connections */
    struct echo_conn *next_flush;
} echo_conn;

typedef struct echo_server {
    int epfd, listen_fd;
    unsigned nconns;
    echo_conn *conns, *flush_list;
    uint8_t scratch[ECHO_READ_MAX];
} echo_server;

/* Watches for reads while reading and for writability while replies wait; no epoll_ctl when
 * that has not changed, which is every round of a client that reads its replies. */
static int set_interest(echo_server *s, echo_conn *c)
{
    uint32_t want = (c->reading ? EPOLLIN : 0u) | (arrpc__buf_used(&c->out) ? EPOLLOUT : 0u);
    if (want == c->armed) return 0;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    c->armed = want;
    return epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void queue_flush(echo_server *s, echo_conn *c)
{
    if (c->queued) return;
    c->queued = 1;
    c->next_flush = s->flush_list;
    s->flush_list = c;
}

/* Appends the message that ends `used` bytes into p (its start may be in c->partial). */
static int answer(echo_conn *c, const uint8_t *p, size_t used)
{
    if (arrpc__buf_used(&c->partial)) {
        if (arrpc__buf_append(&c->out, c->partial.data + c->partial.head,
                              arrpc__buf_used(&c->partial)) != 0)
            return -1;
        arrpc__buf_consume(&c->partial, arrpc__buf_used(&c->partial));
    }
    return arrpc__buf_append(&c->out, p, used);
}

/* Frames the n bytes just read: every whole message is answered, a partial one kept. */
static int frame(echo_conn *c, const uint8_t *p, size_t n)
{
    while (n) {
        size_t used;
        int rc = arrpc__scan_feed(c->scan, p, n, &used);
        if (rc < 0) return -1; /* not MessagePack, too big or too deep: cannot resynchronise */
        if (rc == 0) return arrpc__buf_append(&c->partial, p, n);
        if (answer(c, p, used) != 0) return -1;
        p += used;
        n -= used;
    }
    return 0;
}

static void on_readable(echo_server *s, echo_conn *c)
{
    ssize_t n = recv(c->fd, s->scratch, sizeof s->scratch, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        c->closing = 1;
        return;
    }
    if (frame(c, s->scratch, (size_t)n) != 0) c->doomed = 1;
    if (arrpc__buf_used(&c->out) || c->doomed) queue_flush(s, c);
}

/* One send; what is left waits for EPOLLOUT, and past ECHO_OUT_HIGH the client must read first.
 * A doomed connection gets its answers to the messages before the invalid bytes in that one
 * send, and is closed. */
static void flush(echo_server *s, echo_conn *c)
{
    c->queued = 0;
    if (c->closing || !arrpc__buf_used(&c->out)) {
        c->closing |= c->doomed;
        return;
    }
    ssize_t n = send(c->fd, c->out.data + c->out.head, arrpc__buf_used(&c->out), MSG_NOSIGNAL);
    if ((n < 0 && errno != EAGAIN && errno != EINTR) || c->doomed) {
        c->closing = 1;
        return;
    }
    if (n > 0) arrpc__buf_consume(&c->out, (size_t)n);
    c->reading = arrpc__buf_used(&c->out) < ECHO_OUT_HIGH;
    if (set_interest(s, c) != 0) c->closing = 1;
}

static void conn_free(echo_server *s, echo_conn *c)
{
    close(c->fd); /* also leaves the epoll set */
    arrpc__scan_free(c->scan);
    arrpc__buf_free(&c->partial);
    arrpc__buf_free(&c->out);
    free(c);
    s->nconns--;
}

static int conn_open(echo_server *s, int fd)
{
    echo_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->scan = arrpc__scan_new(ECHO_MESSAGE_MAX, ECHO_DEPTH_MAX))) {
        free(c);
        return -1;
    }
    c->fd = fd;
    c->reading = 1;
    c->armed = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        arrpc__scan_free(c->scan);
        free(c);
        return -1;
    }
    int one = 1; /* replies are whole messages: no Nagle delay, as arrpcd */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->next = s->conns;
    s->conns = c;
    s->nconns++;
    return 0;
}

static void accept_some(echo_server *s)
{
    for (int i = 0; i < ECHO_ACCEPT_BATCH; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (s->nconns >= ECHO_CONNECTIONS_MAX || conn_open(s, fd) != 0) close(fd);
    }
}

/* Frees the connections marked closing: only here, after every event of the round. */
static void reap(echo_server *s)
{
    for (echo_conn **at = &s->conns; *at;) {
        echo_conn *c = *at;
        if (!c->closing) {
            at = &c->next;
            continue;
        }
        *at = c->next;
        conn_free(s, c);
    }
}

static void run_iteration(echo_server *s, struct epoll_event *events)
{
    int n = epoll_wait(s->epfd, events, ECHO_EVENTS, -1);
    for (int i = 0; i < n; i++) {
        echo_conn *c = events[i].data.ptr;
        if (!c) {
            accept_some(s);
        } else if (events[i].events & EPOLLIN) {
            on_readable(s, c);
        } else if (events[i].events & EPOLLOUT) {
            queue_flush(s, c);
        } else {
            c->closing = 1; /* EPOLLERR or EPOLLHUP with nothing to read */
        }
    }
    while (s->flush_list) {
        echo_conn *c = s->flush_list;
        s->flush_list = c->next_flush;
        flush(s, c);
    }
    if (n > 0) reap(s);
}

typedef struct {
    arrpc_opt_hostport listen;
} echo_options;

static const arrpc_opt echo_opts[] = {
    {"listen", 'l', ARRPC_OPT_HOSTPORT, "HOST:PORT", ARRPC_OPT_AT(echo_options, listen),
     .def = "127.0.0.1:0",
     .help = "the address to listen on; port 0 picks a free one, which the \"listening on\" line "
             "on stderr names"},
    {"help", 'h', ARRPC_OPT_HELP, .help = "print this help and exit"},
    {0},
};

static const arrpc_opt_program echo_program = {
    .name = "arrpc-echo-limit",
    .man_section = "1",
    .synopsis = "[options]",
    .summary = "the minimal echo server bench/compare.sh measures arrpcd against",
    .description = "Answers every MessagePack message with its own bytes, in one process with one "
                   "epoll loop shaped like an arrpcd worker's, framing with arrpc's scanner and "
                   "parsing nothing else. Invalid input, or a message over 1 MiB, closes the "
                   "connection. It runs until killed.",
    .opts = echo_opts,
};

static int serve(const echo_options *o)
{
    static echo_server s; /* the scratch buffer is too large for the stack */
    static struct epoll_event events[ECHO_EVENTS];
    char err[256];
    s.listen_fd = arrpc__net_listen(o->listen.host, o->listen.port, 0, err, sizeof err);
    if (s.listen_fd < 0) {
        fprintf(stderr, "arrpc-echo-limit: %s\n", err);
        return 1;
    }
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: the listener */
    if (s.epfd < 0 || epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.listen_fd, &ev) != 0) {
        perror("arrpc-echo-limit: epoll");
        return 1;
    }
    fprintf(stderr, "arrpc-echo-limit: listening on %s:%u\n", o->listen.host,
            arrpc__net_local_port(s.listen_fd));
    for (;;)
        run_iteration(&s, events);
}

int main(int argc, char **argv)
{
    echo_options o = {.listen = {"127.0.0.1", 0}}, defaults = o;
    int next, rc = arrpc_opt_parse(&echo_program, &o, &defaults, argc, argv, &next);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (next < argc) {
        fprintf(stderr, "arrpc-echo-limit: takes no operands ('%s')\n", argv[next]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return serve(&o);
}
