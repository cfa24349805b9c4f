/* arrpcd_python.c -- `--handler py:MODULE:FUNCTION`: finds the Python plugin, writes its init
 * argument ("MODULE:FUNCTION", then one --pythonpath directory per line) and learns the
 * function's __name__ for the metrics. */
#include "arrpcd_python.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PLUGIN_NAME "arrpc-python.so"
#define PLUGIN_SYMBOL "arrpc_python_handler"
#define PLUGIN_ENV "ARRPC_PYTHON_PLUGIN" /* overrides where the plugin is looked for */
#define OWN_DIR_MAX (PATH_MAX - 64)      /* room for "/../lib/" PLUGIN_NAME after it */
#define NAME_SYMBOL "arrpc_python_handler_name"
#define NAME_MAX_LEN 128 /* the server's handler name limit (ARRPC_HANDLER_NAME_MAX) */
/* How long arrpcd waits, once at start, for the process that imports the module to learn the
 * function's __name__; past it the metrics say FUNCTION. An import that takes longer also
 * slows every worker's start, so this only bounds a hung one. */
#define NAME_PROBE_WAIT_MS 10000

int arrpcd_python_spec(const char *spec)
{
    return spec && strncmp(spec, ARRPCD_PYTHON_PREFIX, strlen(ARRPCD_PYTHON_PREFIX)) == 0;
}

/* The directory of arrpcd's own binary, into dir; 0 or -1. */
static int own_dir(char *dir, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", dir, len - 1);
    if (n <= 0) return -1;
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    return 0;
}

/* The plugin: $ARRPC_PYTHON_PLUGIN, else beside arrpcd in a build tree (bin/../lib), else where
 * it was installed. Also, into pkg_dir, the build tree's Python package when there is one. */
static int find_plugin(char *path, size_t len, char *pkg_dir, size_t pkg_len)
{
    const char *env = getenv(PLUGIN_ENV);
    char dir[OWN_DIR_MAX];
    pkg_dir[0] = '\0';
    if (env && *env) return snprintf(path, len, "%s", env) < (int)len ? 0 : -1;
    if (own_dir(dir, sizeof dir) == 0) {
        snprintf(path, len, "%s/../lib/%s", dir, PLUGIN_NAME);
        snprintf(pkg_dir, pkg_len, "%s/../python", dir);
        if (access(pkg_dir, R_OK) != 0) pkg_dir[0] = '\0';
        if (access(path, R_OK) == 0) return 0;
    }
    snprintf(path, len, "%s", ARRPC_PYTHON_PLUGIN_INSTALLED);
    return access(path, R_OK) == 0 ? 0 : -1;
}

/* "MODULE:FUNCTION\nDIR\nDIR..." as a new string; NULL when a directory holds a newline. */
static char *init_arg(const char *target, const char *const *paths, size_t npaths,
                      const char *pkg_dir)
{
    size_t len = strlen(target) + strlen(pkg_dir) + 2;
    for (size_t i = 0; i < npaths; i++) {
        if (strchr(paths[i], '\n')) return NULL;
        len += strlen(paths[i]) + 1;
    }
    char *arg = malloc(len);
    if (!arg) return NULL;
    strcpy(arg, target);
    for (size_t i = 0; i < npaths; i++)
        strcat(strcat(arg, "\n"), paths[i]);
    if (pkg_dir[0]) strcat(strcat(arg, "\n"), pkg_dir); /* arrpc.error for the handler */
    return arg;
}

int arrpcd_python_resolve(const char *spec, const char *const *paths, size_t npaths, char *plugin,
                          size_t plugin_len, char **arg, const char **function)
{
    const char *target = spec + strlen(ARRPCD_PYTHON_PREFIX);
    const char *colon = strrchr(target, ':');
    char pkg_dir[PATH_MAX];
    *arg = NULL;
    if (!colon || colon == target || !colon[1] || strchr(target, '\n')) {
        fprintf(stderr, "arrpcd: --handler py: takes py:MODULE:FUNCTION, not '%s'\n", spec);
        return -1;
    }
    if (plugin_len < sizeof ":" PLUGIN_SYMBOL ||
        find_plugin(plugin, plugin_len - sizeof ":" PLUGIN_SYMBOL, pkg_dir, sizeof pkg_dir) != 0) {
        fprintf(stderr, "arrpcd: the Python plugin %s is not found (set %s)\n", PLUGIN_NAME,
                PLUGIN_ENV);
        return -1;
    }
    strcat(plugin, ":" PLUGIN_SYMBOL);
    *arg = init_arg(target, paths, npaths, pkg_dir);
    if (!*arg) {
        fprintf(stderr, "arrpcd: a --pythonpath directory with a newline\n");
        return -1;
    }
    *function = colon + 1;
    return 0;
}

/* In the child: loads the plugin, asks it for the name, writes it to fd. Its output goes
 * nowhere: a module that prints, or fails, says so again in every worker. */
static void probe_child(const char *plugin, const char *arg, int fd)
{
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDOUT_FILENO), dup2(null, STDERR_FILENO);
    char path[PATH_MAX + sizeof ":" PLUGIN_SYMBOL], name[NAME_MAX_LEN];
    snprintf(path, sizeof path, "%s", plugin);
    *strrchr(path, ':') = '\0'; /* plugin is "PATH:SYMBOL" */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    int (*fn)(const char *, char *, size_t) = NULL;
    if (dl) *(void **)&fn = dlsym(dl, NAME_SYMBOL);
    if (fn && fn(arg, name, sizeof name) == 0) {
        ssize_t ignored = write(fd, name, strlen(name));
        (void)ignored;
    }
    _exit(0);
}

/* The function's __name__ into name, learnt in a child process, so that the master never runs
 * Python (it forks the workers); 0, or -1 (name untouched) when the child could not tell in
 * time. Run once per arrpcd process: the metrics keep the name they started with. */
static int probe_name(const char *plugin, const char *arg, char *name, size_t len)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) probe_child(plugin, arg, fds[1]);
    close(fds[1]);
    char got[NAME_MAX_LEN] = "";
    ssize_t n = 0;
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    if (pid > 0 && poll(&p, 1, NAME_PROBE_WAIT_MS) == 1) n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    if (pid > 0 && n <= 0) kill(pid, SIGKILL); /* hung, or done: either way, gone */
    if (pid > 0) waitpid(pid, NULL, 0);
    if (n <= 0 || (size_t)n >= len) return -1;
    memcpy(name, got, (size_t)n);
    name[n] = '\0';
    return 0;
}

/* The name for the metrics: the function's __name__, else FUNCTION. Learnt at the first
 * configuration only: the exporter keeps the name it started with through reloads, and a
 * reload (run by the master) must not wait for an import. */
static const char *metrics_name(const char *plugin, const char *arg, const char *function)
{
    static char learnt[NAME_MAX_LEN];
    static int probed, known;
    if (!probed) known = probe_name(plugin, arg, learnt, sizeof learnt) == 0;
    probed = 1;
    return known ? learnt : function;
}

int arrpcd_python_configure(arrpc_server *srv, const char *spec, const char *const *paths,
                            size_t npaths)
{
    char plugin[PATH_MAX + sizeof ":" PLUGIN_SYMBOL], *arg;
    const char *function;
    if (arrpcd_python_resolve(spec, paths, npaths, plugin, sizeof plugin, &arg, &function) != 0)
        return -1;
    int rc = arrpc_server_set_handler_plugin(srv, plugin) ||
             arrpc_server_set_handler_lifecycle(srv, NULL, NULL, arg) ||
             arrpc_server_set_handler_name(srv, metrics_name(plugin, arg, function));
    if (rc != 0) fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
    free(arg);
    return rc ? -1 : 0;
}
