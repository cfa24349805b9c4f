/* options.c -- the option table's four readers: the parser, --help, the man page and the bash
 * completion script. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/net.h"

#define HELP_WIDTH 80    /* help lines are wrapped to this many columns */
#define HELP_COLUMN 28   /* where an option's text starts */
#define MAX_OPTS 64      /* entries in one table, the hidden options not counted */
#define OPT_VAL_BASE 256 /* getopt_long's value for entry i is OPT_VAL_BASE + i */

static size_t count_opts(const arrpc_opt *opts)
{
    size_t n = 0;
    while (opts[n].name)
        n++;
    return n;
}

/* How messages name an option: "--max-depth", or "-c/--connections" when it has both forms. */
static const char *display_name(const arrpc_opt *o, char *buf, size_t len)
{
    if (o->short_name)
        snprintf(buf, len, "-%c/--%s", o->short_name, o->name);
    else
        snprintf(buf, len, "--%s", o->name);
    return buf;
}

/* ---- reading values ------------------------------------------------------------------------ */

/* Stores v in the unsigned integer of size bytes at at. Returns 0. */
static int store_unsigned(void *at, size_t size, uint64_t v)
{
    uint32_t v32 = (uint32_t)v;
    if (size == sizeof v32)
        memcpy(at, &v32, sizeof v32);
    else
        memcpy(at, &v, sizeof v);
    return 0;
}

static uint64_t load_unsigned(const void *at, size_t size)
{
    uint32_t v32;
    uint64_t v64;
    if (size == sizeof v32) {
        memcpy(&v32, at, sizeof v32);
        return v32;
    }
    memcpy(&v64, at, sizeof v64);
    return v64;
}

/* Seconds with decimals within [min_ms, max_ms] milliseconds. 0, or -1. */
static int parse_seconds(const char *arg, unsigned long min_ms, unsigned long max_ms, double *s)
{
    char *end = NULL;
    errno = 0;
    *s = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !isfinite(*s)) return -1;
    return *s * 1000.0 < (double)min_ms || *s * 1000.0 > (double)max_ms ? -1 : 0;
}

static int set_seconds(const arrpc_opt *o, char *at, const char *arg)
{
    double s;
    if (parse_seconds(arg, o->min, o->max, &s) != 0) return -1;
    if (o->kind == ARRPC_OPT_SECONDS_NS) {
        uint64_t ns = (uint64_t)(s * 1e9);
        memcpy(at, &ns, sizeof ns);
        return 0;
    }
    unsigned ms = (unsigned)(s * 1000.0 + 0.5);
    if (s > 0 && ms == 0) ms = 1; /* a positive time never reads as "no limit" */
    memcpy(at, &ms, sizeof ms);
    return 0;
}

/* Puts one option's value in place. 0, or -1 after saying what is wrong. */
static int apply(const char *prog, const arrpc_opt *o, void *opts, const char *arg)
{
    char *at = (char *)opts + o->off, name[96];
    unsigned long v;
    switch (o->kind) {
    case ARRPC_OPT_FLAG:
        memcpy(at, &(int){1}, sizeof(int));
        return 0;
    case ARRPC_OPT_STRING:
        memcpy(at, &arg, sizeof arg);
        return 0;
    case ARRPC_OPT_CUSTOM:
        return o->set(opts, arg);
    case ARRPC_OPT_UNSIGNED:
        if (arrpc__parse_ulong(arg, o->min, o->max, &v) == 0) return store_unsigned(at, o->size, v);
        fprintf(stderr, "%s: %s wants a number from %lu to %lu, not '%s'\n", prog,
                display_name(o, name, sizeof name), o->min, o->max, arg);
        return -1;
    case ARRPC_OPT_SECONDS_MS:
    case ARRPC_OPT_SECONDS_NS:
        if (set_seconds(o, at, arg) == 0) return 0;
        fprintf(stderr, "%s: %s wants seconds, not '%s'\n", prog,
                display_name(o, name, sizeof name), arg);
        return -1;
    case ARRPC_OPT_HOSTPORT: {
        arrpc_opt_hostport *hp = (arrpc_opt_hostport *)at;
        if (arrpc__net_split_hostport(arg, hp->host, sizeof hp->host, &hp->port) == 0) return 0;
        fprintf(stderr, "%s: %s wants HOST:PORT, not '%s'\n", prog,
                display_name(o, name, sizeof name), arg);
        return -1;
    }
    default:
        return -1; /* HELP and EXIT are handled by the parser */
    }
}

/* Whether each entry's place has the width its kind writes: a table mistake, caught on the
 * first run of the program rather than as a silently half-written field. */
static int sizes_ok(const char *prog, const arrpc_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t want = 0, size = opts[i].size;
        switch (opts[i].kind) {
        case ARRPC_OPT_FLAG:
            want = sizeof(int);
            break;
        case ARRPC_OPT_UNSIGNED:
            want = size == sizeof(uint32_t) ? size : sizeof(uint64_t);
            break;
        case ARRPC_OPT_SECONDS_MS:
            want = sizeof(unsigned);
            break;
        case ARRPC_OPT_SECONDS_NS:
            want = sizeof(uint64_t);
            break;
        case ARRPC_OPT_STRING:
            want = sizeof(const char *);
            break;
        case ARRPC_OPT_HOSTPORT:
            want = sizeof(arrpc_opt_hostport);
            break;
        default:
            continue; /* CUSTOM, HELP, EXIT have no place */
        }
        if (size != want) {
            fprintf(stderr, "%s: option table: --%s has a field of %zu bytes\n", prog, opts[i].name,
                    size);
            return 0;
        }
    }
    return 1;
}

/* ---- the parser ---------------------------------------------------------------------------- */

/* The hidden options, after the table's entries: they write what the build installs. */
#define HIDDEN_MAN 0        /* --help-man: the man page */
#define HIDDEN_COMPLETION 1 /* --help-completion: the bash completion script */
#define HIDDEN_COUNT 2

/* getopt_long's tables from ours, the hidden options appended. */
static void build_getopt(const arrpc_opt *opts, size_t n, struct option *longs, char *shorts)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int has_arg = opts[i].arg ? required_argument : no_argument;
        longs[i] = (struct option){opts[i].name, has_arg, NULL, OPT_VAL_BASE + (int)i};
        if (!opts[i].short_name) continue;
        shorts[k++] = opts[i].short_name;
        if (has_arg) shorts[k++] = ':';
    }
    shorts[k] = '\0';
    longs[n + HIDDEN_MAN] =
        (struct option){"help-man", no_argument, NULL, OPT_VAL_BASE + (int)n + HIDDEN_MAN};
    longs[n + HIDDEN_COMPLETION] = (struct option){"help-completion", no_argument, NULL,
                                                   OPT_VAL_BASE + (int)n + HIDDEN_COMPLETION};
    longs[n + HIDDEN_COUNT] = (struct option){0};
}

/* The entry getopt_long's return value names, or NULL (an unknown option, already reported). */
static const arrpc_opt *entry_for(const arrpc_opt *opts, size_t n, int val)
{
    if (val >= OPT_VAL_BASE && val < OPT_VAL_BASE + (int)n) return &opts[val - OPT_VAL_BASE];
    for (size_t i = 0; val > 0 && val < OPT_VAL_BASE && i < n; i++)
        if (opts[i].short_name == val) return &opts[i];
    return NULL;
}

int arrpc_opt_parse(const arrpc_opt_program *p, void *opts, const void *defaults, int argc,
                    char **argv, int *next)
{
    struct option longs[MAX_OPTS + HIDDEN_COUNT + 1];
    char shorts[2 * MAX_OPTS + 1];
    size_t n = count_opts(p->opts);
    if (n > MAX_OPTS || !sizes_ok(p->name, p->opts, n)) return -1;
    build_getopt(p->opts, n, longs, shorts);
    optind = 0; /* glibc starts afresh: a program may parse its arguments twice */
    int val, bad = 0;
    while ((!bad || !p->stop_at_error) &&
           (val = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        const arrpc_opt *o = entry_for(p->opts, n, val);
        if (val == OPT_VAL_BASE + (int)n + HIDDEN_MAN) {
            arrpc_opt_write_man(stdout, p, defaults);
            return 1;
        } else if (val == OPT_VAL_BASE + (int)n + HIDDEN_COMPLETION) {
            arrpc_opt_write_completion(stdout, p);
            return 1;
        } else if (!o) {
            bad = 1;
        } else if (o->kind == ARRPC_OPT_HELP) {
            arrpc_opt_write_help(stdout, p, defaults);
            return 1;
        } else if (o->kind == ARRPC_OPT_EXIT) {
            o->run();
            return 1;
        } else {
            bad |= apply(p->name, o, opts, optarg) != 0;
        }
    }
    *next = optind;
    return bad ? -1 : 0;
}

/* ---- configuration files ------------------------------------------------------------------ */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static const arrpc_opt *entry_named(const arrpc_opt *opts, const char *name)
{
    for (size_t i = 0; opts[i].name; i++)
        if (strcmp(opts[i].name, name) == 0) return &opts[i];
    return NULL;
}

/* A flag's line: "name", "name = true" or "name = false". */
static int apply_flag(const char *where, const arrpc_opt *o, void *opts, const char *value)
{
    int on = !value || strcmp(value, "true") == 0;
    if (!on && strcmp(value, "false") != 0) {
        fprintf(stderr, "%s: --%s is a flag: write '%s', '%s = true' or '%s = false', not '%s'\n",
                where, o->name, o->name, o->name, o->name, value);
        return -1;
    }
    memcpy((char *)opts + o->off, &on, sizeof on);
    return 0;
}

/* One line, comments and blank lines already skipped. where is "PROG: PATH:LINE". */
static int apply_line(const arrpc_opt_program *p, void *opts, const char *where, char *line)
{
    char *value = strchr(line, '=');
    if (value) *value++ = '\0', value = trim(value);
    const char *name = trim(line);
    const arrpc_opt *o = entry_named(p->opts, name);
    if (!o) {
        fprintf(stderr, "%s: unknown option '%s'\n", where, name);
        return -1;
    }
    if (o->cli_only || o->kind == ARRPC_OPT_HELP || o->kind == ARRPC_OPT_EXIT) {
        fprintf(stderr, "%s: --%s belongs on the command line, not in a file\n", where, name);
        return -1;
    }
    if (o->kind == ARRPC_OPT_FLAG) return apply_flag(where, o, opts, value);
    if (!value || !*value) {
        fprintf(stderr, "%s: --%s wants a value: '%s = %s'\n", where, name, name, o->arg);
        return -1;
    }
    if (apply(where, o, opts, value) == 0) return 0;
    if (o->kind == ARRPC_OPT_CUSTOM) /* its own message cannot name the line */
        fprintf(stderr, "%s: --%s refused '%s'\n", where, name, value);
    return -1;
}

/* The whole file, NUL-terminated, in a new buffer; NULL after saying why. */
static char *read_whole(const char *prog, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    char *text = malloc(ARRPC_OPT_FILE_MAX + 2);
    size_t n = text ? fread(text, 1, ARRPC_OPT_FILE_MAX + 1, f) : 0;
    int failed = !text || ferror(f);
    fclose(f);
    if (failed || n > ARRPC_OPT_FILE_MAX) {
        if (failed)
            fprintf(stderr, "%s: %s: cannot read it\n", prog, path);
        else
            fprintf(stderr, "%s: %s: larger than %u bytes\n", prog, path, ARRPC_OPT_FILE_MAX);
        free(text);
        return NULL;
    }
    text[n] = '\0';
    text[n + 1] = '\0'; /* so that the line loop may step past the last one */
    if (memchr(text, '\0', n)) {
        fprintf(stderr, "%s: %s: holds a NUL byte: not a text file\n", prog, path);
        free(text);
        return NULL;
    }
    return text;
}

int arrpc_opt_parse_file(const arrpc_opt_program *p, void *opts, const char *path, char **text)
{
    size_t n = count_opts(p->opts);
    *text = NULL;
    if (n > MAX_OPTS || !sizes_ok(p->name, p->opts, n)) return -1;
    if (!(*text = read_whole(p->name, path))) return -1;
    int bad = 0;
    unsigned lineno = 1;
    for (char *line = *text; *line; lineno++) {
        size_t len = strcspn(line, "\n");
        char *after = line + len + (line[len] == '\n');
        char where[PATH_MAX + 128]; /* "PROG: PATH:LINE" */
        snprintf(where, sizeof where, "%s: %s:%u", p->name, path, lineno);
        line[len] = '\0';
        if (after - line > (ptrdiff_t)ARRPC_OPT_FILE_LINE_MAX) {
            fprintf(stderr, "%s: line longer than %u bytes\n", where, ARRPC_OPT_FILE_LINE_MAX);
            bad = 1;
        } else {
            char *content = trim(line);
            if (*content && *content != '#') bad |= apply_line(p, opts, where, content) != 0;
        }
        line = after;
    }
    return bad ? -1 : 0;
}

/* ---- defaults, shared by help and man ------------------------------------------------------ */

/* An entry's value in opts as words; with zero unset, "" for a flag, 0 or NULL (nothing to
 * show as a default). */
static const char *value_text(const arrpc_opt *o, const void *opts, int zero, char *buf, size_t len)
{
    const char *at = (const char *)opts + o->off;
    const char *s;
    const arrpc_opt_hostport *hp = (const arrpc_opt_hostport *)at;
    int flag;
    buf[0] = '\0';
    switch (o->kind) {
    case ARRPC_OPT_FLAG:
        memcpy(&flag, at, sizeof flag);
        if (zero) snprintf(buf, len, "%s", flag ? "true" : "false");
        break;
    case ARRPC_OPT_UNSIGNED:
        if (zero || load_unsigned(at, o->size))
            snprintf(buf, len, "%llu", (unsigned long long)load_unsigned(at, o->size));
        break;
    case ARRPC_OPT_SECONDS_MS:
        if (zero || load_unsigned(at, sizeof(unsigned)))
            snprintf(buf, len, "%g", (double)load_unsigned(at, sizeof(unsigned)) / 1e3);
        break;
    case ARRPC_OPT_SECONDS_NS:
        if (zero || load_unsigned(at, sizeof(uint64_t)))
            snprintf(buf, len, "%g", (double)load_unsigned(at, sizeof(uint64_t)) / 1e9);
        break;
    case ARRPC_OPT_STRING:
        memcpy(&s, at, sizeof s);
        if (s) snprintf(buf, len, "%s", s);
        break;
    case ARRPC_OPT_HOSTPORT:
        if (hp->host[0])
            snprintf(buf, len, strchr(hp->host, ':') ? "[%s]:%u" : "%s:%u", hp->host,
                     (unsigned)hp->port);
        break;
    default:
        break;
    }
    return buf;
}

const char *arrpc_opt_value_text(const arrpc_opt *o, const void *opts, char *buf, size_t len)
{
    return value_text(o, opts, 1, buf, len);
}

int arrpc_opt_same(const arrpc_opt *o, const void *a, const void *b)
{
    const char *pa = (const char *)a + o->off, *pb = (const char *)b + o->off;
    const char *sa, *sb;
    switch (o->kind) {
    case ARRPC_OPT_STRING:
        memcpy(&sa, pa, sizeof sa);
        memcpy(&sb, pb, sizeof sb);
        return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
    case ARRPC_OPT_HOSTPORT:
        return strcmp(((const arrpc_opt_hostport *)pa)->host,
                      ((const arrpc_opt_hostport *)pb)->host) == 0 &&
               ((const arrpc_opt_hostport *)pa)->port == ((const arrpc_opt_hostport *)pb)->port;
    default: /* numbers and flags; CUSTOM, HELP and EXIT have no place (size 0) */
        return memcmp(pa, pb, o->size) == 0;
    }
}

/* The default an entry shows: its words, or the value opts starts with. "" when there is none
 * to show (a flag, or a value that is 0 or NULL before parsing). */
static const char *default_text(const arrpc_opt *o, const void *opts, char *buf, size_t len)
{
    return o->def ? o->def : value_text(o, opts, 0, buf, len);
}

/* "(default: D)" or "(default: D, at most MAX)" after an entry's help; "" without a default. */
static const char *default_note(const arrpc_opt *o, const void *opts, char *buf, size_t len)
{
    char value[300];
    const char *def = default_text(o, opts, value, sizeof value);
    buf[0] = '\0';
    if (!*def) return buf;
    if (o->show_max)
        snprintf(buf, len, "(default: %s, at most %lu)", def, o->max);
    else
        snprintf(buf, len, "(default: %s)", def);
    return buf;
}

/* ---- --help -------------------------------------------------------------------------------- */

static int has_short_options(const arrpc_opt *opts)
{
    for (size_t i = 0; opts[i].name; i++)
        if (opts[i].short_name) return 1;
    return 0;
}

/* "  -c, --connections N", long-only names lined up under the long forms. Returns the width. */
static int write_label(FILE *to, const arrpc_opt *o, int shorts)
{
    int w = fprintf(to, "  ");
    if (o->short_name)
        w += fprintf(to, "-%c, ", o->short_name);
    else if (shorts)
        w += fprintf(to, "    ");
    w += fprintf(to, "--%s", o->name);
    if (o->arg) w += fprintf(to, " %s", o->arg);
    return w;
}

/* Writes the words of text from column col on, breaking lines before HELP_WIDTH and
 * indenting the lines after the first to HELP_COLUMN. */
static void write_wrapped(FILE *to, const char *text, int col)
{
    for (int first = 1; *text; first = 0) {
        while (*text == ' ')
            text++;
        int len = (int)strcspn(text, " ");
        if (len == 0) break;
        if (!first && col + 1 + len > HELP_WIDTH)
            col = fprintf(to, "\n%*s", HELP_COLUMN, "") - 1;
        else if (!first)
            col += fprintf(to, " ");
        col += fprintf(to, "%.*s", len, text);
        text += len;
    }
}

static void write_help_entry(FILE *to, const arrpc_opt *o, const void *opts, int shorts)
{
    char note[400], text[1200];
    default_note(o, opts, note, sizeof note);
    snprintf(text, sizeof text, "%s%s%s", o->help, *note ? " " : "", note);
    int col = write_label(to, o, shorts);
    col += col + 2 > HELP_COLUMN ? fprintf(to, "  ") : fprintf(to, "%*s", HELP_COLUMN - col, "");
    write_wrapped(to, text, col);
    fputc('\n', to);
}

void arrpc_opt_write_help(FILE *to, const arrpc_opt_program *p, const void *opts)
{
    int shorts = has_short_options(p->opts);
    fprintf(to, "usage: %s %s\n\n%s\n\n", p->name, p->synopsis, p->description);
    for (size_t i = 0; p->opts[i].name; i++)
        write_help_entry(to, &p->opts[i], opts, shorts);
    for (size_t i = 0; p->sections && p->sections[i].title; i++)
        fprintf(to, "\n%s\n", p->sections[i].text);
}

/* ---- the man page -------------------------------------------------------------------------- */

/* Text as roff: backslashes and hyphens escaped, a dot or quote that starts a line made
 * harmless, blank lines as paragraph breaks, indentation dropped (man fills lines itself).
 * Ends with a newline when the text does. */
static void write_roff(FILE *to, const char *text)
{
    int bol = 1;
    for (const char *c = text; *c; c++) {
        if (bol && *c == '\n') {
            fputs(".PP\n", to);
            continue;
        }
        if (bol && *c == ' ') continue;
        if (bol && (*c == '.' || *c == '\'')) fputs("\\&", to);
        if (*c == '\\')
            fputs("\\e", to);
        else if (*c == '-')
            fputs("\\-", to);
        else
            fputc(*c, to);
        bol = *c == '\n';
    }
}

static void write_roff_line(FILE *to, const char *text)
{
    write_roff(to, text);
    if (!*text || text[strlen(text) - 1] != '\n') fputc('\n', to);
}

static void write_man_entry(FILE *to, const arrpc_opt *o, const void *opts)
{
    char note[400];
    fputs(".TP\n", to);
    if (o->short_name) fprintf(to, "\\fB\\-%c\\fR, ", o->short_name);
    fputs("\\fB\\-\\-", to);
    write_roff(to, o->name);
    fputs("\\fR", to);
    if (o->arg) fputs(" \\fI", to), write_roff(to, o->arg), fputs("\\fR", to);
    fputc('\n', to);
    write_roff_line(to, o->help);
    if (*default_note(o, opts, note, sizeof note)) write_roff_line(to, note);
}

void arrpc_opt_write_man(FILE *to, const arrpc_opt_program *p, const void *opts)
{
    fputs(".TH \"", to);
    write_roff(to, p->name);
    fprintf(to, "\" \"%s\" \"\" \"arrpc\" \"arrpc manual\"\n.SH NAME\n", p->man_section);
    write_roff(to, p->name);
    fputs(" \\- ", to);
    write_roff_line(to, p->summary);
    fputs(".SH SYNOPSIS\n\\fB", to);
    write_roff(to, p->name);
    fputs("\\fR ", to);
    write_roff_line(to, p->synopsis);
    fputs(".SH DESCRIPTION\n", to);
    write_roff_line(to, p->description);
    fputs(".SH OPTIONS\n", to);
    for (size_t i = 0; p->opts[i].name; i++)
        write_man_entry(to, &p->opts[i], opts);
    for (size_t i = 0; p->sections && p->sections[i].title; i++) {
        fprintf(to, ".SH \"%s\"\n", p->sections[i].title);
        write_roff_line(to, p->sections[i].text);
    }
}

/* ---- bash completion ----------------------------------------------------------------------- */

/* How the completion script completes an option's value, read from the value's name. */
typedef enum {
    VALUE_NONE,   /* a flag: the next word is another option */
    VALUE_FILE,   /* "F": file names */
    VALUE_CHOICE, /* "a|b|c": one of the words */
    VALUE_FREE,   /* anything else (N, S, HOST:PORT, JSON): nothing to offer */
} value_kind;

static value_kind value_kind_of(const arrpc_opt *o)
{
    if (!o->arg) return VALUE_NONE;
    if (strcmp(o->arg, "F") == 0 || strcmp(o->arg, "PATH") == 0) return VALUE_FILE;
    return strchr(o->arg, '|') ? VALUE_CHOICE : VALUE_FREE;
}

/* The case pattern "-c|--connections" of each option whose value is of kind k, joined by '|';
 * nothing when there is none. Returns how many options it wrote. */
static int write_patterns(FILE *to, const arrpc_opt *opts, value_kind k)
{
    int n = 0;
    for (size_t i = 0; opts[i].name; i++) {
        if (value_kind_of(&opts[i]) != k) continue;
        if (opts[i].short_name) fprintf(to, "%s-%c", n++ ? "|" : "", opts[i].short_name);
        fprintf(to, "%s--%s", n++ ? "|" : "", opts[i].name);
    }
    return n;
}

/* The case arms for the word after an option that takes a value. */
static void write_value_arms(FILE *to, const arrpc_opt *opts)
{
    fputs("    case $prev in\n", to);
    for (size_t i = 0; opts[i].name; i++) {
        if (value_kind_of(&opts[i]) != VALUE_CHOICE) continue;
        fputs("    ", to);
        write_patterns(to, &opts[i], VALUE_CHOICE);
        fputs(")\n        mapfile -t COMPREPLY < <(compgen -W '", to);
        for (const char *c = opts[i].arg; *c; c++)
            fputc(*c == '|' ? ' ' : *c, to);
        fputs("' -- \"$cur\")\n        return ;;\n", to);
    }
    fputs("    ", to);
    if (write_patterns(to, opts, VALUE_FILE))
        fputs(")\n        compopt -o filenames 2>/dev/null\n"
              "        mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n        return ;;\n    ",
              to);
    if (write_patterns(to, opts, VALUE_FREE)) fputs(")\n        return ;;\n    ", to);
    fputs("esac\n", to);
}

void arrpc_opt_write_completion(FILE *to, const arrpc_opt_program *p)
{
    char fn[128];
    snprintf(fn, sizeof fn, "_arrpc_complete_%s", p->name);
    for (char *c = fn; *c; c++)
        if (*c == '-') *c = '_';
    fprintf(to,
            "# bash completion for %s, written by `%s --help-completion` from its option table\n"
            "%s()\n{\n    local cur=${COMP_WORDS[COMP_CWORD]} prev=\n"
            "    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
            "    # --option=VALUE: bash splits the word at '=' (COMP_WORDBREAKS)\n"
            "    if [[ $cur == = ]]; then\n        cur=\n"
            "    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then\n"
            "        prev=${COMP_WORDS[COMP_CWORD - 2]}\n    fi\n    COMPREPLY=()\n",
            p->name, p->name, fn);
    write_value_arms(to, p->opts);
    fputs("    [[ $cur == -* ]] || return 0\n    mapfile -t COMPREPLY < <(compgen -W '", to);
    for (size_t i = 0; p->opts[i].name; i++) {
        if (p->opts[i].short_name) fprintf(to, "-%c ", p->opts[i].short_name);
        fprintf(to, "--%s%s", p->opts[i].name, p->opts[i + 1].name ? " " : "");
    }
    fprintf(to, "' -- \"$cur\")\n}\ncomplete -F %s %s\n", fn, p->name);
}
