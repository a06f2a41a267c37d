# docs_lib.sh — helpers for the tests that keep the manuals (README.md, docs/*.md) true:
# t0003 (commands), t0004 (links), t0311 (schema names). Sourced after lib.sh.
# Not here: what a manual must say (each test states its own rule).

# The manuals: the front page and every docs/*.md (absolute paths, one a line).
docs_files() { ls "$CADDIE_SRC/README.md" "$CADDIE_SRC"/docs/*.md; }

# docs_code FILE... — the commands in markdown: each line of a ```sh (bash, shell, console)
# block without its # comment, and each `inline code span` on a line of its own. A paragraph is
# joined first, so a span broken across two lines is still one span. Other fenced blocks
# (diagrams, logs, YAML, SQL) are skipped.
docs_code() {
    awk '
        function flush(   p) {
            p = para
            while (match(p, /`[^`]+`/)) { print substr(p, RSTART + 1, RLENGTH - 2); p = substr(p, RSTART + RLENGTH) }
            para = ""
        }
        /^ *```/ {
            flush()
            if (fence) { fence = 0; next }
            fence = 1; info = $0; sub(/^ *```/, "", info)
            shell = (info ~ /^(sh|bash|shell|console)$/)
            next
        }
        fence && shell { line = $0; sub(/(^| )#.*$/, "", line); print line; next }
        fence      { next }
        /^[ \t]*$/ { flush(); next }
        { para = para " " $0 }
        END { flush() }
    ' "$@"
}

# docs_section FILE HEADING — the lines of the section "## HEADING" (up to the next "## ").
docs_section() {
    awk -v h="## $2" '$0 == h {s = 1; next} /^## / {s = 0} s' "$1"
}
