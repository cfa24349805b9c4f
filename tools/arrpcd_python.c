/* arrpcd_python.c -- `--handler py:MODULE:FUNCTION`: finds the Python plugin and writes its init
 * argument ("MODULE:FUNCTION", then one --pythonpath directory per line). */
#include "arrpcd_python.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLUGIN_NAME "arrpc-python.so"
#define PLUGIN_SYMBOL "arrpc_python_handler"
#define PLUGIN_ENV "ARRPC_PYTHON_PLUGIN" /* overrides where the plugin is looked for */
#define OWN_DIR_MAX (PATH_MAX - 64)      /* room for "/../lib/" PLUGIN_NAME after it */

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

int arrpcd_python_configure(arrpc_server *srv, const char *spec, const char *const *paths,
                            size_t npaths)
{
    char plugin[PATH_MAX + sizeof ":" PLUGIN_SYMBOL], *arg;
    const char *function;
    if (arrpcd_python_resolve(spec, paths, npaths, plugin, sizeof plugin, &arg, &function) != 0)
        return -1;
    int rc = arrpc_server_set_handler_plugin(srv, plugin) ||
             arrpc_server_set_handler_lifecycle(srv, NULL, NULL, arg) ||
             arrpc_server_set_handler_name(srv, function);
    if (rc != 0) fprintf(stderr, "arrpcd: %s\n", arrpc_server_errstr(srv));
    free(arg);
    return rc ? -1 : 0;
}
