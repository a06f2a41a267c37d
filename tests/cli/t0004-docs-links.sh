#!/usr/bin/env bash
# t0004 — every relative link of README.md and docs/*.md points at a file or folder that
# exists (relative to the linking file), and every #anchor at a heading of its target
# (GitHub's slugs: lower case, punctuation dropped, spaces to hyphens). Links inside code are
# not links; absolute URLs (http:, https:, mailto:) are not checked.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/docs_lib.sh"

# FILE<TAB>TARGET for every [text](target) and ![alt](target) outside fenced blocks and spans
links() {
    for f in "$@"; do
        awk '/^ *```/{fence = !fence; next} !fence' "$f" | sed -E 's/`[^`]*`//g' |
            grep -oE '\]\([^) ]+\)' | sed -E 's/^\]\(//; s/\)$//' | sed "s|^|$f\t|"
    done
}
# the anchors of a markdown file, one a line
anchors() {
    awk '/^ *```/{fence = !fence; next} !fence && /^#+ /' "$1" |
        sed -E 's/^#+ +//; s/[`*]//g' | tr 'A-Z' 'a-z' |
        sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}
links $(docs_files) >all_links

test_expect_success 'the manuals link to each other' '
    test $(wc -l <all_links) -ge 30 &&
    grep -q "README.md	docs/engine.md" all_links &&
    grep -q "README.md	docs/report-demo.png" all_links &&
    grep -q "docs/reports.md	report.png" all_links
'
test_expect_success 'every relative link points at a file that exists' '
    : >broken &&
    while IFS="	" read -r from to; do
        case "$to" in http:*|https:*|mailto:*|"#"*) continue;; esac
        path=${to%%#*}
        test -e "$(dirname "$from")/$path" || echo "${from#$CADDIE_SRC/}: $to" >>broken
    done <all_links &&
    { test ! -s broken || { echo "links to nothing:"; cat broken; false; }; }
'
test_expect_success 'every #anchor names a heading of its target' '
    : >broken &&
    while IFS="	" read -r from to; do
        case "$to" in http:*|https:*|mailto:*) continue;; *"#"*) ;; *) continue;; esac
        path=${to%%#*} anchor=${to#*#}
        target=$from; test -z "$path" || target=$(dirname "$from")/$path
        case "$target" in *.md) ;; *) continue;; esac
        test -f "$target" && anchors "$target" | grep -qxF -- "$anchor" ||
            echo "${from#$CADDIE_SRC/}: $to" >>broken
    done <all_links &&
    { test ! -s broken || { echo "anchors that name no heading:"; cat broken; false; }; }
'
test_done
