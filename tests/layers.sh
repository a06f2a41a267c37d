#!/usr/bin/env bash
# layers.sh — checks the include graph against the architecture's one-way layering.
#
# Every project include names its folder ("engine/shard.h"), so the edges between folders
# are visible to grep. Each folder may include only the folders listed for it below
# (docs/architecture.md draws the same picture); a violation prints file:line and the edge
# and exits 1. So does any use of the SQLite API outside db/. `make check-layers` runs it, and so does tests/cli/t0002-layering.sh.
#   usage: tests/layers.sh [REPO_ROOT]     (default: the repository this script is in)
# Not here: include hygiene inside a folder (the compiler sees that).
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2

# folder -> the folders (or single headers) its sources may include, besides its own
declare -A allowed=(
    [engine]=""
    [kernels]="engine"
    [sweep]="engine"
    [db]="engine sweep"
    [runner]="engine sweep db"
    [reports]="db engine/status.h"
    [cli]="engine kernels sweep db runner reports"
)
bad=0
for folder in "${!allowed[@]}"; do
    [ -d "$folder" ] || continue
    while IFS= read -r hit; do
        file=${hit%%:*}; rest=${hit#*:}; line=${rest%%:*}
        inc=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"${rest#*:}")
        [ -n "$inc" ] || continue
        case "$inc" in
            */*) ;;
            *) echo "$file:$line: include \"$inc\" does not name its folder"; bad=1; continue ;;
        esac
        target=${inc%%/*}
        if [ "$inc" = db/db_internal.h ] && [ "$folder" != db ]; then
            echo "$file:$line: \"db/db_internal.h\" is for db/ sources only (the SQLite handle stays in db/)"
            bad=1; continue
        fi
        [ "$target" = "$folder" ] && continue
        ok=0
        for a in ${allowed[$folder]}; do
            if [ "$a" = "$target" ] || [ "$a" = "$inc" ]; then ok=1; break; fi
        done
        if [ $ok = 0 ]; then
            echo "$file:$line: $folder/ must not include \"$inc\" ($folder may include: ${allowed[$folder]:-nothing outside itself})"
            bad=1
        fi
    done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$folder" \
                 --include='*.c' --include='*.h' --include='*.cc' --include='*.cu' --include='*.cuh')
done
# SQLite is reached only through db/: no sqlite3 API or handle type in any other folder.
for folder in "${!allowed[@]}"; do
    [ "$folder" = db ] || [ ! -d "$folder" ] && continue
    while IFS= read -r hit; do
        echo "${hit%%:*}:$(cut -d: -f2 <<<"$hit"): SQLite outside db/ (call a named query of db/ instead)"
        bad=1
    done < <(grep -rnE '\bsqlite3(_[a-z0-9_]+)?\b *[(*]|<sqlite3\.h>' "$folder" \
                 --include='*.c' --include='*.h' --include='*.cc' --include='*.cu' --include='*.cuh')
done
[ $bad = 0 ] && echo "layers: ok (${#allowed[@]} folders)"
exit $bad
