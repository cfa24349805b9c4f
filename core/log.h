/* log.h -- one line per event on stderr, prefixed with the program and pid. */
#ifndef ARRPC_CORE_LOG_H
#define ARRPC_CORE_LOG_H

void arrpc__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Debug lines cost nothing but a branch when debug is off. */
#define ARRPC_DEBUG(on, ...)                                                                       \
    do {                                                                                           \
        if (on) arrpc__log(__VA_ARGS__);                                                           \
    } while (0)

#endif
