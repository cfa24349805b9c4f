/* demo_defer.c -- the demo plugin's {"defer": s}: the call is taken with arrpc_call_defer and
 * answered "deferred" s seconds later by a timer thread of the plugin's own, the way a handler
 * with its own I/O thread or event loop answers without holding the worker's threads. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arrpc.h>

#include "demo.h"

typedef struct timer {
    struct timer *next;
    struct timespec due; /* CLOCK_MONOTONIC */
    arrpc_deferred *call;
    const char *peer; /* answer this string instead of "deferred" (valid until answered) */
} timer;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed; /* on CLOCK_MONOTONIC */
static timer *timers;          /* soonest first */
static pthread_once_t started = PTHREAD_ONCE_INIT;
static int running;

static int before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The packed str "deferred". */
static const char answer[] = "\xa8"
                             "deferred";

static void answer_string(arrpc_deferred *d, const char *s)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    if (msgpack_pack_str_with_body(&pk, s, strlen(s)) == 0)
        arrpc_deferred_reply(d, buf.data, buf.size);
    else
        arrpc_deferred_fail(d, "out of memory");
    msgpack_sbuffer_destroy(&buf);
}

static void *timer_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        while (timers && !before(&now, &timers->due)) {
            timer *t = timers;
            timers = t->next;
            pthread_mutex_unlock(&lock);
            if (t->peer)
                answer_string(t->call, t->peer);
            else
                arrpc_deferred_reply(t->call, answer, sizeof answer - 1);
            free(t);
            pthread_mutex_lock(&lock);
        }
        if (timers)
            pthread_cond_timedwait(&changed, &lock, &timers->due);
        else
            pthread_cond_wait(&changed, &lock);
    }
    return NULL;
}

/* Started in the worker on its first deferred call: threads do not survive fork. */
static void start_timer_thread(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_t thread;
    running = pthread_create(&thread, NULL, timer_thread, NULL) == 0;
    if (running) pthread_detach(thread);
}

int demo_answer_twice(arrpc_call *call)
{
    arrpc_deferred *d = arrpc_call_defer(call);
    if (!d) return arrpc_call_fail(call, "cannot defer");
    arrpc_deferred_reply(d, answer, sizeof answer - 1);
    int again = arrpc_deferred_fail(d, "a second answer");
    fprintf(stderr, "demo: a second answer to one deferred call returned %d\n", again);
    return 0;
}

int demo_defer(arrpc_call *call, double seconds, int answer_peer, msgpack_packer *res)
{
    pthread_once(&started, start_timer_thread);
    timer *t = calloc(1, sizeof *t);
    if (!running || !t) {
        free(t);
        return arrpc_call_fail(call, "cannot defer: %s", running ? "out of memory" : "no thread");
    }
    arrpc_deferred *d = arrpc_call_defer(call);
    if (!d) {
        free(t);
        return msgpack_pack_str_with_body(res, "deferred", 8); /* answered at once instead */
    }
    clock_gettime(CLOCK_MONOTONIC, &t->due);
    t->due.tv_sec += (time_t)seconds;
    t->due.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (t->due.tv_nsec >= 1000000000L) {
        t->due.tv_sec++;
        t->due.tv_nsec -= 1000000000L;
    }
    t->call = d;
    t->peer = answer_peer ? arrpc_call_peer(call) : NULL; /* asked after deferring: it lasts */
    pthread_mutex_lock(&lock);
    timer **at = &timers;
    while (*at && !before(&t->due, &(*at)->due))
        at = &(*at)->next;
    t->next = *at;
    *at = t;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
    return 0;
}
