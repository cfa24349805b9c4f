/* exposition.h -- writing counters in Prometheus's text format 0.0.4, with arrpc 0.5.0's metric
 * names and labels. Shared by the server's master and the client. */
#ifndef ARRPC_METRICS_EXPOSITION_H
#define ARRPC_METRICS_EXPOSITION_H

#include <stdio.h>

#include "metrics.h"

#define ARRPC_K8S_NAMESPACE_FILE "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

typedef struct arrpc__labels {
    char hostname[256];       /* /etc/hostname: the pod's name on Kubernetes */
    char k8s_namespace[256];  /* the service account's namespace file, else empty */
    const char *handler_func; /* server only; NULL for the client */
} arrpc__labels;

/* Reads hostname and namespace from their files (empty when absent). */
void arrpc__labels_load(arrpc__labels *l);

/* The arrpc_<side>_req_seconds histogram, arrpc_<side>_req_bytes summary and
 * arrpc_<side>_errors_total counter families for `sum`; side is "server" or "client". */
void arrpc__exposition_write(FILE *f, const char *side, const arrpc__labels *l,
                             const arrpc__metrics *sum);

/* A label value with \, " and newline escaped as the format requires. */
void arrpc__exposition_quote(FILE *f, const char *value);

#endif
