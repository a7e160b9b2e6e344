/* golden.c — runs `qkdc check FILE` on one golden test and compares its diagnostics with the
 * expectations written inside the file:
 *   # expect: LINE:COL: error: MESSAGE      (also warning:/note:), in the order qkdc prints them
 *   # expect-exit: N                         (default: 1 if any error is expected, else 0)
 *   # args: draw --student s                 (run another command instead of check)
 *   # expect-any                             (fuzz regressions: any diagnostics; only the exit
 *                                             code and a normal exit are checked)
 * Every diagnostic qkdc prints must be expected, and every expectation must be printed. Also
 * fails on a crash (a signal) or an exit code other than expected.
 * usage: qkd_golden QKDC FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAX_LINES 512

static char *trim(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
  return s;
}

/* PATH:LINE:COL: error|warning|note: …  or  qkdc: error: … */
static int is_diagnostic(const char *s) {
  if (!strncmp(s, "qkdc: ", 6)) return 1;
  const char *c = strchr(s, ':');
  if (!c || c == s || strchr(s, ' ') < c) return 0;
  int line, col, n = 0;
  char kind[16];
  if (sscanf(c + 1, "%d:%d: %15[a-z]:%n", &line, &col, kind, &n) != 3 || n == 0) return 0;
  return !strcmp(kind, "error") || !strcmp(kind, "warning") || !strcmp(kind, "note");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: qkd_golden QKDC FILE\n");
    return 2;
  }
  const char *qkdc = argv[1], *path = argv[2];
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    return 2;
  }
  static char expect[MAX_LINES][1024], got[MAX_LINES][1024], line[1 << 16];
  int ne = 0, ng = 0, exit_want = -1, any_error = 0, any = 0;
  char args[512] = "check";
  while (fgets(line, sizeof line, f)) {
    char *p = strstr(line, "# expect: ");
    if (p && ne < MAX_LINES) {
      snprintf(expect[ne++], sizeof expect[0], "%.1000s", trim(p + 10));
      if (strstr(p, ": error: ")) any_error = 1;
    }
    if ((p = strstr(line, "# expect-exit: "))) exit_want = atoi(p + 15);
    if (strstr(line, "# expect-any")) any = 1;
    if ((p = strstr(line, "# args: "))) snprintf(args, sizeof args, "%.500s", trim(p + 8));
  }
  fclose(f);
  if (exit_want < 0) exit_want = any_error ? 1 : 0;
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s' %s '%s' 2>&1 >/dev/null", qkdc, args, path);
  FILE *p = popen(cmd, "r");
  if (!p) {
    perror("popen");
    return 2;
  }
  size_t plen = strlen(path);
  while (fgets(line, sizeof line, p)) {
    trim(line);
    if (!is_diagnostic(line) || ng >= MAX_LINES) continue; /* source echoes and carets */
    if (!strncmp(line, path, plen) && line[plen] == ':') { /* this file: drop the path */
      snprintf(got[ng++], sizeof got[0], "%.1000s", line + plen + 1);
    } else { /* another file: the stdlib as std/NAME, others as printed */
      const char *std = strstr(line, "/stdlib/");
      const char *colon = strchr(line, ':');
      if (std && colon && std < colon) snprintf(got[ng++], sizeof got[0], "std/%.1000s", std + 8);
      else snprintf(got[ng++], sizeof got[0], "%.1000s", line);
    }
  }
  int status = pclose(p);
  int fail = 0;
  if (!WIFEXITED(status)) {
    fprintf(stderr, "FAIL: qkdc did not exit normally (status %d)\n", status);
    fail = 1;
  } else if (WEXITSTATUS(status) != exit_want) {
    fprintf(stderr, "FAIL: exit code %d, expected %d\n", WEXITSTATUS(status), exit_want);
    fail = 1;
  }
  int n = any ? 0 : ne > ng ? ne : ng;
  for (int i = 0; i < n; i++) {
    const char *e = i < ne ? expect[i] : "(nothing)", *g = i < ng ? got[i] : "(nothing)";
    if (strcmp(e, g) != 0) {
      fprintf(stderr, "FAIL: diagnostic %d\n  expected: %s\n  got:      %s\n", i + 1, e, g);
      fail = 1;
    }
  }
  printf("%s: %d diagnostics checked: %s\n", path, n, fail ? "FAIL" : "ok");
  return fail;
}
