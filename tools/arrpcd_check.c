/* arrpcd_check.c -- `arrpcd -t`: everything a start would check, without starting, as `nginx -t`
 * does, so that a reload (systemd's ExecReload) can refuse a configuration that would fail. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "../core/auth.h"
#include "../core/net.h"
#include "../core/tls.h"
#include "../workers/handler.h"
#include "arrpc.h"
#include "arrpcd.h"
#include "arrpcd_python.h"

#define CHECK_ERR_MAX 512
#define PID_TEXT_MAX 32 /* a pid file's one line */
#define PID_MAX 4194304 /* Linux's highest pid (PID_MAX_LIMIT) */

static int check_secret(const arrpcd_options *o, char *err)
{
    uint8_t secret[ARRPC_AUTH_SECRET_MAX + 1];
    size_t len = 0;
    int rc = arrpc__auth_read_secret(o->secret_file, secret, &len, err, CHECK_ERR_MAX);
    explicit_bzero(secret, sizeof secret);
    return rc;
}

static int check_tls(const arrpcd_options *o, char *err)
{
    arrpc__tls_ctx *ctx =
        arrpc__tls_server_ctx(o->tls_cert, o->tls_key, o->tls_client_ca, NULL, err, CHECK_ERR_MAX);
    arrpc__tls_ctx_free(ctx);
    return ctx ? 0 : -1;
}

/* Loads the plugin as a worker would, and runs its init with arg and then its fini. */
static int check_plugin(const char *plugin, const char *arg, const char *shown_arg, char *err)
{
    arrpc__handler h;
    if (arrpc__handler_load(plugin, &h, err, CHECK_ERR_MAX) != 0) return -1;
    void *udata = NULL;
    int rc = h.init ? h.init(arg, &udata) : 0;
    if (rc != 0)
        snprintf(err, CHECK_ERR_MAX, "%s returned %d (%s)", h.init_name, rc, shown_arg);
    else if (h.fini)
        h.fini(udata);
    arrpc__handler_unload(&h);
    return rc ? -1 : 0;
}

/* The handler: a plugin with --handler-arg, or a py: handler through the Python plugin (whose
 * init imports the module, and says on stderr why it could not). */
static int check_handler(const arrpcd_options *o, char *err)
{
    char shown[CHECK_ERR_MAX / 2];
    if (!arrpcd_python_spec(o->handler)) {
        snprintf(shown, sizeof shown, "--handler-arg %s%s%s", o->handler_arg ? "'" : "",
                 o->handler_arg ? o->handler_arg : "none", o->handler_arg ? "'" : "");
        return check_plugin(o->handler, o->handler_arg, shown, err);
    }
    char plugin[PATH_MAX + 64], *arg;
    const char *function;
    if (arrpcd_python_resolve(o->handler, o->pythonpath, o->npythonpath, plugin, sizeof plugin,
                              &arg, &function) != 0) {
        snprintf(err, CHECK_ERR_MAX, "the Python handler %s cannot be served", o->handler);
        return -1;
    }
    snprintf(shown, sizeof shown, "importing %s", o->handler + strlen(ARRPCD_PYTHON_PREFIX));
    int rc = check_plugin(plugin, arg, shown, err);
    free(arg);
    return rc;
}

/* Whether process pid runs arrpcd: its executable's name (a master that a binary upgrade
 * started as /proc/self/exe has the comm "exe"; a replaced file reads "NAME (deleted)"), or its
 * comm when the link cannot be read. */
static int runs_arrpcd(unsigned long pid)
{
    char path[64], exe[PATH_MAX], comm[PID_TEXT_MAX] = "";
    snprintf(path, sizeof path, "/proc/%lu/exe", pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
        return strcmp(base, "arrpcd") == 0 || strcmp(base, "arrpcd (deleted)") == 0;
    }
    snprintf(path, sizeof path, "/proc/%lu/comm", pid);
    FILE *f = fopen(path, "r");
    int ok = f && fgets(comm, sizeof comm, f) != NULL;
    if (f) fclose(f);
    return ok && strcmp(comm, "arrpcd\n") == 0;
}

/* The pid in the pid file when it names a live arrpcd; else 0. */
static pid_t running_arrpcd(const char *pid_file)
{
    char text[PID_TEXT_MAX] = "";
    FILE *f = pid_file ? fopen(pid_file, "r") : NULL;
    if (!f) return 0;
    int ok = fgets(text, sizeof text, f) != NULL;
    fclose(f);
    unsigned long pid;
    text[strcspn(text, "\n")] = '\0';
    if (!ok || arrpc__parse_ulong(text, 1, PID_MAX, &pid) != 0) return 0;
    return runs_arrpcd(pid) ? (pid_t)pid : 0;
}

/* An address a start would bind: free now, or held by the arrpcd its pid file names (the one
 * this configuration runs, being reloaded); the running server is never touched. */
static int check_address(const char *what, const arrpc_opt_hostport *hp, const char *pid_file,
                         char *err)
{
    int fd = arrpc__net_listen(hp->host, hp->port, 0, err, CHECK_ERR_MAX);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno != EADDRINUSE) return -1;
    pid_t pid = running_arrpcd(pid_file);
    if (pid) {
        fprintf(stderr, "arrpcd: %s %s:%u is in use by the running arrpcd (pid %d, %s)\n", what,
                hp->host, (unsigned)hp->port, (int)pid, pid_file);
        return 0;
    }
    size_t n = strlen(err);
    snprintf(err + n, CHECK_ERR_MAX - n, " (%s)",
             pid_file ? "and the pid file names no running arrpcd"
                      : "an arrpcd serving it is recognised only through --pid-file");
    return -1;
}

static int check_listen(const arrpcd_options *o, char *err)
{
    if (getenv("LISTEN_FDS")) { /* systemd or an upgrading master passes the sockets */
        fprintf(stderr, "arrpcd: --listen is ignored: the sockets come from LISTEN_FDS\n");
        return 0;
    }
    return check_address("--listen", &o->listen, o->pid_file, err);
}

static int check_metrics(const arrpcd_options *o, char *err)
{
    if (!o->metrics.host[0] || o->workers == 0) return 0;
    return check_address("--metrics-listen", &o->metrics, o->pid_file, err);
}

typedef struct {
    const char *what;
    int (*check)(const arrpcd_options *o, char *err);
    int needed; /* 0: the option is not given, nothing to check */
} check_step;

int arrpcd_check(const arrpcd_options *o)
{
    const check_step steps[] = {
        {"--auth-secret-file", check_secret, o->secret_file != NULL},
        {"TLS", check_tls, o->tls_cert != NULL},
        {"--handler", check_handler, 1},
        {"--listen", check_listen, 1},
        {"--metrics-listen", check_metrics, 1},
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char err[CHECK_ERR_MAX] = "";
        if (!steps[i].needed || steps[i].check(o, err) == 0) continue;
        fprintf(stderr, "arrpcd: %s: %s\n", steps[i].what, err);
        failed = 1;
    }
    return failed ? -1 : 0;
}
