/* access_log.h -- a worker's access log: one line per request, buffered for one loop round and
 * written with one write() of whole lines to a descriptor opened with O_APPEND. */
#ifndef ARRPC_WORKERS_ACCESS_LOG_H
#define ARRPC_WORKERS_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "access_line.h"
#include "worker.h"

/* Lines wait in a buffer of this size until the loop round ends (or it fills). To a regular
 * file one write() of whole lines is never interleaved with another process's; to a pipe,
 * socket or terminal only writes of at most PIPE_BUF bytes are, so there the buffer is written
 * out whenever it holds that much. */
#define ARRPC_ACCESS_LOG_BUFFER (64u * 1024u)
#define ARRPC_ACCESS_LOG_MODE 0640               /* a new file: it names clients' addresses */
#define ARRPC_ACCESS_LOG_WARN_INTERVAL_MS 60000u /* at most one "lines lost" message a minute */

typedef struct arrpc__access_log arrpc__access_log;

/* Opens cfg->access_log ("-": this process's standard output) for a worker serving with or
 * without TLS. NULL with the reason in err when it cannot be opened or there is no memory. */
arrpc__access_log *arrpc__access_log_open(const arrpc__worker_config *cfg, int tls, char *err,
                                          size_t errlen);
/* Adds one line, for a request answered at done_ns on the monotonic clock (the loop's fast
 * clock, on arrpc__clock_ns's time line within a microsecond); x->when is set from it. Lines are
 * written by arrpc__access_log_flush, or earlier when the buffer is full. Only the loop's thread
 * calls these. */
void arrpc__access_log_add(arrpc__access_log *log, arrpc__access_fields *x, uint64_t done_ns);
/* Writes the buffered lines; the loop calls it once per round. */
void arrpc__access_log_flush(arrpc__access_log *log);
/* After a rotation: writes what is buffered to the old file, then opens the path again. When
 * that fails the old descriptor is kept and the reason logged. */
void arrpc__access_log_reopen(arrpc__access_log *log);
/* Flushes and closes (standard output stays open). NULL is fine. */
void arrpc__access_log_close(arrpc__access_log *log);

#endif
