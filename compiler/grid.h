/* grid.h — expanding `grid` declarations into cells (spec §9).
 * A grid names an experiment, axes of field values (`axis { PATH: [...] }`, several fields of
 * one axis zipped, `names:`), seeds and `seed_teachers`. Expansion crosses the axes in the order
 * written (the last fastest), then the seeds; every cell is the whole program with its values
 * set (override.h, copy-on-write, so cells never share a change) and checked by sema as a
 * program of its own. A cell that does not check is reported with a note naming the cell.
 *
 * Promises: the model's cells are in the stable order `qkdc cells` prints and `--cells K/N`
 * slices; cell names are unique; each cell's key_text is a canonical description of everything
 * that determines its results except the data files' identity and the qkdc version (the
 * runtime adds those); a cell whose teacher differs from the declared one (another seed, say)
 * gets its own cache file (the declared name with the teacher's hash before the extension). */
#ifndef QKD_GRID_H
#define QKD_GRID_H
#include "parse.h"
#include "qkd_model.h"

/* Expands every grid of `prog` (already checked as `m`) into m->grids and m->cells, marks the
 * experiments grids start from (grid_base) and gives every experiment its key_text. Returns 0, or -1 after reporting. */
int qkd_grid_expand(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, qkd_model *m, const char *root_path);

/* The canonical text of a checked experiment (data, teacher, student, loss, recipe, runs). */
const char *qkd_grid_describe(qkd_arena *a, const qkd_m_experiment *e);
#endif
