#!/usr/bin/env bash
# The layer check (issue 10, docs/architecture.md "Layers"): every #include "..." in src/,
# include/sattn/ and cli/ must point to its own module or one below it; no include cycle
# between components; and, as a warning only, functions longer than MAX_FUNC_LINES lines.
#
# usage: scripts/check-layers.sh [--no-length]      (run from anywhere; `make check-layers`)
#        MAX_FUNC_LINES=N (default 60): the length warning's limit; --no-length: no warnings
# exit 0: no violation; 1: violations (each printed as file:line and the rule it breaks).
# Needs only bash, find, grep, sed, awk (a fresh Debian 12).
#
# Modules, bottom to top (a module may include itself and what its line lists):
#   core < nn < data < model < sparse < analysis < cudabench < cli
#   cuda (the CUDA kernels, beside nn/sparse) includes core and sparse only.
# data sits below model: the training loop and checkpoints read batches and corpora.
# A source file's module is its src/ folder (src/cuda/*bench*: cudabench, the rest of src/cuda:
# cuda; cli/: cli). A public header include/sattn/X.h belongs to the module whose src/ folder
# implements it (src/*/X.c or X.cu), or to HEADER_MODULE below when no file has its name.
# Components (for cycles) are module/basename: report.h and report.c are one component. A
# component depends on another when one of its .c/.cu/.cc files includes, directly or through
# other headers, a header of the other; a cycle of such dependencies is a violation (a header
# of its own, e.g. a module's private x_impl.h that includes x.h, is no cycle).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_FUNC_LINES=${MAX_FUNC_LINES:-60}
LENGTH=1
[ "${1:-}" = --no-length ] && LENGTH=0

declare -A ALLOW=(
    [core]="core"
    [nn]="core nn"
    [data]="core nn data"
    [model]="core nn data model"
    [sparse]="core nn data model sparse"
    [analysis]="core nn data model sparse analysis"
    [cuda]="core sparse cuda"
    [cudabench]="core nn data model sparse analysis cuda cudabench"
    [cli]="core nn data model sparse analysis cuda cudabench cli"
)
# Public headers implemented by no file of the same name.
declare -A HEADER_MODULE=(
    [sparse.h]=sparse      # spec.c, selector.c, headfn.c: head specs, selectors, head functions
    [cuda_attn.h]=cuda     # attn.cu (and cuda_stub.c without CUDA)
)
# Components narrower than their module: component -> the components it may include.
# The cost model is a leaf on the op and sparse-head definitions: it must not pull in
# the planner, the corpora or the model (issue 10, item 2).
declare -A NARROW=(
    [analysis/costmodel]="core/core core/rng nn/nn nn/flash sparse/sparse analysis/costmodel"
)

fail=0
violation() { echo "check-layers: $1"; fail=1; }

module_of() { # path -> module ("" when outside the checked tree)
    local p=$1 b
    case $p in
    src/cuda/*bench*) echo cudabench ;;
    src/*/*) p=${p#src/}; echo "${p%%/*}" ;;
    cli/*) echo cli ;;
    include/sattn/*.h)
        b=$(basename "$p" .h)
        if [ -n "${HEADER_MODULE[$b.h]:-}" ]; then echo "${HEADER_MODULE[$b.h]}"; return; fi
        local impl
        impl=$(find src -name "$b.c" -o -name "$b.cu" | sort | head -1)
        [ -n "$impl" ] && module_of "$impl" || echo "?"
        ;;
    *) echo "" ;;
    esac
}
comp_of() { local b; b=$(basename "$1"); echo "$2/${b%.*}"; }

mapfile -t FILES < <(find src include/sattn cli -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' \
                     -o -name '*.cc' \) | sort)
declare -A MOD COMP
for f in "${FILES[@]}"; do
    MOD[$f]=$(module_of "$f")
    COMP[$f]=$(comp_of "$f" "${MOD[$f]}")
    if [ "${MOD[$f]}" = "?" ]; then
        violation "$f: no src/ folder implements it (no src/*/$(basename "$f" .h).c): add it to HEADER_MODULE in $0"
    fi
done

EDGES=$(mktemp)
trap 'rm -f "$EDGES"' EXIT
for f in "${FILES[@]}"; do
    m=${MOD[$f]}
    [ "$m" = "?" ] && continue
    while IFS=: read -r line inc; do
        case $inc in
        sattn/*) t=include/$inc ;;
        *) t=$(realpath -m --relative-to=. "$(dirname "$f")/$inc") ;;
        esac
        if [ -z "${MOD[$t]+x}" ]; then
            violation "$f:$line: includes \"$inc\", which is no file of src/, include/sattn/ or cli/"
            continue
        fi
        tm=${MOD[$t]} tc=${COMP[$t]}
        [ "$tm" = "?" ] && continue
        echo "E $f $t $line" >> "$EDGES"
        if [[ " ${ALLOW[$m]} " != *" $tm "* ]]; then
            violation "$f:$line: includes \"$inc\" ($tm): $m may include only ${ALLOW[$m]// /, }"
        elif [ -n "${NARROW[${COMP[$f]}]:-}" ] && [[ " ${NARROW[${COMP[$f]}]} " != *" $tc "* ]]; then
            violation "$f:$line: includes \"$inc\" ($tc): ${COMP[$f]} may include only ${NARROW[${COMP[$f]}]// /, }"
        fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" \
             | sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/' || true)
done

# Include cycles between components: the file graph's transitive closure gives every
# header a unit (.c, .cu, .cc) reaches; each set of mutually dependent components is printed
# once with the includes that make each dependency.
for f in "${FILES[@]}"; do echo "C $f ${COMP[$f]}"; done >> "$EDGES"
cycles=$(awk '
    $1 == "C" { comp[$2] = $3; next }
    { e[$2, $3] = 1; line[$2, $3] = $4; out[$2] = out[$2] " " $3; files[$2]; files[$3] }
    END {
        for (a in files) for (b in files) r[a, b] = ((a, b) in e)
        for (k in files) for (a in files) if (r[a, k]) for (b in files) if (r[k, b]) r[a, b] = 1
        for (u in files) {
            if (u ~ /\.h$/) continue
            n = split(out[u], ds, " ")
            for (h in files) {
                if (!r[u, h] || comp[h] == comp[u]) continue
                cu = comp[u]; ch = comp[h]
                for (i = 1; i <= n; i++) if (ds[i] == h || r[ds[i], h]) break
                why = u ":" line[u, ds[i]] (ds[i] == h ? "" : " (" h " via " ds[i] ")")
                if (!((cu, ch) in dep)) { dep[cu, ch] = why; node[cu]; node[ch] }
            }
        }
        for (a in node) for (b in node) R[a, b] = ((a, b) in dep)
        for (k in node) for (a in node) if (R[a, k]) for (b in node) if (R[k, b]) R[a, b] = 1
        for (a in node) {
            if (done[a] || !R[a, a]) continue
            members = a; done[a] = 1
            for (b in node) if (b != a && R[a, b] && R[b, a]) { members = members " " b; done[b] = 1 }
            m = split(members, ms, " "); how = ""
            for (i = 1; i <= m; i++) for (j = 1; j <= m; j++) if ((ms[i], ms[j]) in dep)
                how = how "\n    " ms[i] " -> " ms[j] ": " dep[ms[i], ms[j]]
            print "include cycle between " members ":" how
        }
    }' "$EDGES")
if [ -n "$cycles" ]; then
    while IFS= read -r l; do echo "check-layers: $l"; done <<< "$cycles"
    fail=1
fi

# Function length (a warning): a function starts at a line that begins with an identifier,
# has "(" before any "=", and whose signature ends in "{"; it ends at the next "}" in column
# 0. A function may be longer when the comment block right above it says why with "(long: ".
if [ "$LENGTH" = 1 ]; then
    find src cli -type f \( -name '*.c' -o -name '*.cu' \) | sort | xargs awk -v max="$MAX_FUNC_LINES" '
        FNR == 1 { infn = 0; sig = 0; why = 0; cmt = 0 }
        !infn && /^\/\*/ { cmt = 1; why = 0 }
        !infn && cmt && /\(long: / { why = 1 }
        !infn && cmt && /\*\// { cmt = 0; next }
        !infn && cmt { next }
        !infn && !sig && /^[A-Za-z_]/ && !/^(typedef|struct|enum|union)[^A-Za-z0-9_]/ {
            l = $0; gsub(/__launch_bounds__\([^)]*\)/, "", l)
            i = index(l, "("); q = index(l, "=")
            if (i > 0 && (q == 0 || i < q)) {
                sig = 1; start = FNR; name = substr(l, 1, i - 1); sub(/.*[ *]/, "", name)
            }
        }
        !infn && sig && /;[[:space:]]*$/ { sig = 0; why = 0 }
        !infn && sig && /\{[[:space:]]*$/ { infn = 1; sig = 0; next }
        !infn && sig && /\{/ { sig = 0; why = 0 }   # a one-line function
        !infn && !sig && /^[[:space:]]*$/ { why = 0 }
        infn && /^}/ {
            len = FNR - start + 1
            if (len > max && !why)
                printf "check-layers: warning: %s:%d: %s is %d lines (over %d, no \"(long: ...)\" reason above it)\n",
                       FILENAME, start, name, len, max
            infn = 0; why = 0
        }'
fi

if [ "$fail" = 0 ]; then echo "check-layers: ok (${#FILES[@]} files, no upward or sideways include, no cycle)"; fi
exit "$fail"
