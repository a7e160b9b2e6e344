/* test_rt_err.c — the runtime's error struct (runtime/qkd_err.h): qkd_fail fills kind, path and
 * message; the text form is "PATH: error: MSG" ("error: MSG" without a path); qkd_error_about
 * gives a subject to an error that has none. Links only qkdrt + qkdtestsupport. */
#include "qkd_err.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>

int main(void) {
  qkd_error e;
  char buf[QKD_ERROR_TEXT_MAX];
  /* fill and text */
  CHECK(qkd_fail(&e, QKD_ERR_FORMAT, "data/x.idx", "truncated: %d bytes", 7) == -1);
  CHECK(e.kind == QKD_ERR_FORMAT && !strcmp(e.path, "data/x.idx") && !strcmp(e.msg, "truncated: 7 bytes"));
  CHECK(!strcmp(qkd_error_text(&e, buf, sizeof buf), "data/x.idx: error: truncated: 7 bytes"));
  /* no path: "error: MSG"; qkd_error_about supplies one, and never replaces one */
  CHECK(qkd_fail(&e, QKD_ERR_INPUT, NULL, "pre: layer %d: %s", 1, "dense needs at least 1 unit") == -1);
  CHECK(e.path[0] == '\0' && !strcmp(qkd_error_text(&e, buf, sizeof buf), "error: pre: layer 1: dense needs at least 1 unit"));
  CHECK(qkd_error_about(&e, "prog.qkd") == &e && !strcmp(e.path, "prog.qkd"));
  qkd_error_about(&e, "other.qkd");
  CHECK(!strcmp(qkd_error_text(&e, buf, sizeof buf), "prog.qkd: error: pre: layer 1: dense needs at least 1 unit"));
  CHECK(qkd_error_about(NULL, "x") == NULL);
  /* NULL: nothing filled, still -1 */
  CHECK(qkd_fail(NULL, QKD_ERR_MEMORY, "p", "out of memory") == -1);
  /* the arguments may point into the struct itself (rewording an error in place) */
  qkd_fail(&e, QKD_ERR_INTERNAL, NULL, "jit: %s", "no target");
  qkd_fail(&e, e.kind, "prog.qkd", "kernels of '%s': %s", "e1", e.msg);
  CHECK(e.kind == QKD_ERR_INTERNAL && !strcmp(e.path, "prog.qkd") && !strcmp(e.msg, "kernels of 'e1': jit: no target"));
  qkd_fail(&e, e.kind, e.path, "%s", e.msg);
  CHECK(!strcmp(qkd_error_text(&e, buf, sizeof buf), "prog.qkd: error: kernels of 'e1': jit: no target"));
  /* a small buffer truncates, NUL-terminated */
  char small[8];
  CHECK(!strcmp(qkd_error_text(&e, small, sizeof small), "prog.qk"));
  /* long paths and messages are cut at the fields' sizes, never overflow */
  char longs[3000];
  memset(longs, 'a', sizeof longs - 1);
  longs[sizeof longs - 1] = '\0';
  qkd_fail(&e, QKD_ERR_IO, longs, "%s", longs);
  CHECK(strlen(e.path) == sizeof e.path - 1 && strlen(e.msg) == sizeof e.msg - 1);
  CHECK(strlen(qkd_error_text(&e, buf, sizeof buf)) == strlen(e.path) + strlen(": error: ") + strlen(e.msg));
  /* print: the text and a newline */
  FILE *f = tmpfile();
  CHECK(f != NULL);
  if (f) {
    qkd_fail(&e, QKD_ERR_IO, "out/dir", "cannot write: %s", "No space left on device");
    qkd_error_print(&e, f);
    rewind(f);
    char line[256] = "";
    CHECK(fgets(line, sizeof line, f) && !strcmp(line, "out/dir: error: cannot write: No space left on device\n"));
    fclose(f);
  }
  return test_done("test_rt_err");
}
