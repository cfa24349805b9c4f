/* metrics.c -- counting into a shared block, and folding blocks together (see metrics.h). */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

const char *const arrpc__reason_label[ARRPC_REASON_COUNT] = {
#define ARRPC_REASON_LABEL(name, label) label,
    ARRPC_METRICS_REASONS(ARRPC_REASON_LABEL)
#undef ARRPC_REASON_LABEL
};

const double arrpc__bucket_le[ARRPC_METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0,
};

#define RELAXED memory_order_relaxed

static void add(_Atomic uint64_t *counter, uint64_t n)
{
    /* One writer per block: a load and a store are enough, and cheaper than a locked add. */
    atomic_store_explicit(counter, atomic_load_explicit(counter, RELAXED) + n, RELAXED);
}

static uint32_t find_row(const arrpc__metrics *m, uint32_t rows, const char *addr)
{
    for (uint32_t i = 0; i < rows; i++)
        if (strcmp(m->row[i].addr, addr) == 0) return i;
    return UINT32_MAX;
}

uint32_t arrpc__metrics_row_for(arrpc__metrics *m, const char *addr)
{
    uint32_t rows = atomic_load_explicit(&m->rows, RELAXED);
    uint32_t i = find_row(m, rows, addr);
    if (i != UINT32_MAX) return i;
    if (rows == m->addrs) return m->addrs; /* the overflow row */
    strncpy(m->row[rows].addr, addr, ARRPC_METRICS_ADDR_MAX - 1);
    atomic_store_explicit(&m->rows, rows + 1, memory_order_release);
    return rows;
}

/* arrpc__bucket_le in nanoseconds: counting a request compares integers, no division. */
static const uint64_t bucket_le_ns[ARRPC_METRICS_BUCKETS] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};

static unsigned bucket_of(uint64_t ns)
{
    unsigned b = 0;
    while (b < ARRPC_METRICS_BUCKETS && ns > bucket_le_ns[b])
        b++;
    return b; /* ARRPC_METRICS_BUCKETS: only in +Inf */
}

static arrpc__series *series_of(arrpc__metrics *m, uint32_t row, int is_signed, int tls)
{
    return &m->row[row].series[is_signed != 0][tls != 0];
}

void arrpc__metrics_count_untimed(arrpc__metrics *m, uint32_t row, int is_signed, int tls,
                                  uint64_t bytes)
{
    arrpc__series *s = series_of(m, row, is_signed, tls);
    add(&s->requests, 1);
    add(&s->bytes, bytes);
}

void arrpc__metrics_time(arrpc__metrics *m, uint32_t row, int is_signed, int tls, uint64_t n,
                         uint64_t ns)
{
    arrpc__series *s = series_of(m, row, is_signed, tls);
    add(&s->seconds_ns, ns);
    if (n > 1) add(&s->bucket[0], n - 1);
    unsigned b = bucket_of(ns);
    if (b < ARRPC_METRICS_BUCKETS) add(&s->bucket[b], 1);
}

void arrpc__metrics_count_request(arrpc__metrics *m, uint32_t row, int is_signed, int tls,
                                  uint64_t ns, uint64_t bytes)
{
    arrpc__metrics_count_untimed(m, row, is_signed, tls, bytes);
    arrpc__metrics_time(m, row, is_signed, tls, 1, ns);
}

void arrpc__metrics_count_error(arrpc__metrics *m, uint32_t row, int is_signed, int tls,
                                arrpc__reason reason)
{
    add(&series_of(m, row, is_signed, tls)->errors[reason], 1);
}

static void add_series(arrpc__series *into, const arrpc__series *from)
{
    add(&into->requests, atomic_load_explicit(&from->requests, RELAXED));
    add(&into->seconds_ns, atomic_load_explicit(&from->seconds_ns, RELAXED));
    add(&into->bytes, atomic_load_explicit(&from->bytes, RELAXED));
    for (unsigned b = 0; b < ARRPC_METRICS_BUCKETS; b++)
        add(&into->bucket[b], atomic_load_explicit(&from->bucket[b], RELAXED));
    for (unsigned r = 0; r < ARRPC_REASON_COUNT; r++)
        add(&into->errors[r], atomic_load_explicit(&from->errors[r], RELAXED));
}

static void add_row(arrpc__metrics_row *into, const arrpc__metrics_row *from)
{
    for (unsigned s = 0; s < 2; s++)
        for (unsigned t = 0; t < 2; t++)
            add_series(&into->series[s][t], &from->series[s][t]);
}

void arrpc__metrics_add(arrpc__metrics *into, const arrpc__metrics *from)
{
    uint32_t rows = atomic_load_explicit(&from->rows, memory_order_acquire);
    if (rows > from->addrs) rows = from->addrs; /* never read past the block, whatever it holds */
    for (uint32_t i = 0; i < rows; i++)
        add_row(&into->row[arrpc__metrics_row_for(into, from->row[i].addr)], &from->row[i]);
    add_row(&into->row[into->addrs], &from->row[from->addrs]);
    add(&into->aged, atomic_load_explicit(&from->aged, RELAXED));
    add(&into->crash_saved, atomic_load_explicit(&from->crash_saved, RELAXED));
    add(&into->crash_lost, atomic_load_explicit(&from->crash_lost, RELAXED));
}

arrpc__metrics *arrpc__metrics_init(void *mem, uint32_t addrs)
{
    arrpc__metrics *m = mem;
    memset(m, 0, ARRPC_METRICS_BYTES(addrs));
    m->addrs = addrs;
    return m;
}

arrpc__metrics *arrpc__metrics_new(uint32_t addrs)
{
    void *mem = malloc(ARRPC_METRICS_BYTES(addrs));
    return mem ? arrpc__metrics_init(mem, addrs) : NULL;
}

void arrpc__metrics_reset(arrpc__metrics *m)
{
    arrpc__metrics_init(m, m->addrs);
}

void arrpc__metrics_addr_of(const char *peer, char out[ARRPC_METRICS_ADDR_MAX])
{
    const char *start = peer, *end = strrchr(peer, ':');
    if (*start == '[') {
        start++;
        end = strchr(start, ']');
    }
    size_t n = end && end > start ? (size_t)(end - start) : strlen(start);
    if (n >= ARRPC_METRICS_ADDR_MAX) n = ARRPC_METRICS_ADDR_MAX - 1;
    memcpy(out, start, n);
    out[n] = '\0';
}
