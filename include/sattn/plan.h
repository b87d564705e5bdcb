/* plan: which head_spec each (layer, head) of a model gets, as a small text.
 *
 * Grammar (docs/plans.md has examples):
 *   plan   := entry ((';' | newline) entry)*
 *             '#' starts a comment to the end of its line; empty entries are ignored;
 *             spaces (and tabs, CRs) around tokens are allowed
 *   entry  := target ':' spec [':' opts]
 *   target := 'all' | '*' | 'L'<int> | 'H'<int> | 'L'<int>'H'<int>   (all and * = every head)
 *   spec   := 'dense' | sel '+' fn        sel := pos | index | block    fn := softmax | mlp
 *   opts   := opt (',' opt)*
 *   opt    := k=INT | kmin=INT | tau=FLOAT | r=INT | j=INT | b=INT | n=INT | bounds=0|1
 *           | hidden=INT | q=0|1 | logits=0|1
 *
 * Semantics: the FIRST entry whose target matches a head decides that head's spec;
 * heads no entry matches are dense. Options not given take head_spec_default().
 * An option must apply to the entry's selector or head function (k, kmin, tau: pos and
 * index; r, j: index; b, n, bounds: block; hidden: pos or mlp; q, logits: mlp); 'dense'
 * takes none. Values are range-checked with head_spec_check.
 *
 * Errors are one line naming where ("plan entry N 'TEXT'" for an inline plan,
 * "PATH:LINE: entry 'TEXT'" for a file), the offending token and what was expected.
 * A plan with no entry at all is an error. */
#ifndef SATTN_PLAN_H
#define SATTN_PLAN_H

#include "sattn/core.h"
#include "sattn/sparse.h"

/* Parses text into specs[l * heads + h] for a model of layers x heads. origin: the
 * file the text came from (errors then say "origin:line"), or NULL for an inline plan.
 * On error specs is left unspecified. */
int plan_parse(const char *text, const char *origin, int layers, int heads, head_spec *specs,
               sattn_err *e);

/* arg names an existing regular file: parse its contents (origin = arg); otherwise parse
 * arg itself as an inline plan. An arg without ':' that is no file is a "no such file" error. */
int plan_load(const char *arg, int layers, int heads, head_spec *specs, sattn_err *e);

/* Canonical text: one "L<l>H<h>:<head_spec_format>" line per head, in (l, h) order;
 * plan_parse reads it back to the same specs. Caller frees. */
char *plan_format(const head_spec *specs, int layers, int heads);

/* Writes plan_format's text (after a comment line) atomically. */
int plan_save(const char *path, const head_spec *specs, int layers, int heads, sattn_err *e);

#endif
