#!/usr/bin/env bash
# t0003 — the manuals and `caddie help` agree: every `caddie COMMAND [SUBCOMMAND]` named in the
# code of README.md or docs/*.md is a command of `caddie help` (and a subcommand its usage
# lists), and every command of `caddie help` is named in some docs/*.md manual; the command
# table of the README ("## The commands") lists exactly the commands of `caddie help` but help.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/docs_lib.sh"

caddie help | awk '/^commands:/{s=1; next} s && /^  [a-z]/{print $1}' | sort -u >help_cmds
# "CMD" or "CMD SUB" for each caddie invocation in the code of a file (./caddie, build/caddie too)
invocations() {
    docs_code "$@" | grep -oE '(^|[^A-Za-z0-9_.-])caddie +[a-z][a-z0-9-]*( +[a-z][a-z0-9_-]*)?' |
        sed -E 's/^.*caddie +//; s/ +/ /'
}
invocations $(docs_files) | sort -u >named
invocations "$CADDIE_SRC"/docs/*.md | cut -d' ' -f1 | sort -u >in_manuals

test_expect_success 'caddie help lists the commands' '
    test $(wc -l <help_cmds) -ge 20 && grep -qx train help_cmds && grep -qx report help_cmds
'
test_expect_success 'the docs name caddie commands' '
    test $(wc -l <named) -ge 30
'
test_expect_success 'every command the docs name exists in caddie help' '
    cut -d" " -f1 named | sort -u >named_cmds &&
    comm -23 named_cmds help_cmds >unknown &&
    { test ! -s unknown || { echo "named in the docs but not in caddie help:"; cat unknown; false; }; }
'
test_expect_success 'every subcommand the docs name is in its command usage' '
    : >bad &&
    while read -r cmd sub; do
        grep -qx "$cmd" help_cmds || continue
        caddie help "$cmd" | sed -nE "s/^(usage: +| +)caddie $cmd ([a-z][a-z-]*)( .*)?\$/\\2/p" | sort -u >subs
        if test -s subs && test -n "$sub" && ! grep -qx "$sub" subs; then
            echo "caddie $cmd $sub (usage lists: $(tr "\n" " " <subs))" >>bad
        fi
    done <named &&
    { test ! -s bad || { echo "unknown subcommands in the docs:"; cat bad; false; }; }
'
test_expect_success 'every command of caddie help is documented in a manual (docs/*.md)' '
    comm -23 help_cmds in_manuals >undocumented &&
    { test ! -s undocumented || { echo "in caddie help but in no manual:"; cat undocumented; false; }; }
'
test_expect_success 'the README command table lists every command (but help), and only those' '
    docs_section "$CADDIE_SRC/README.md" "The commands" | grep "^| \`" | cut -d"|" -f2 |
        grep -oE "\`[a-z][a-z0-9-]*\`" | tr -d "\`" | sort >readme_cmds &&
    grep -vx help help_cmds >want &&
    test_cmp want readme_cmds
'
test_done
