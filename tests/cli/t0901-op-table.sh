#!/usr/bin/env bash
# t0901 — one name per op: kernels/README.md's op table and engine/backend.h agree. Every slot of
# struct cad_backend has a row and every row is a slot, in the same order; the row's CPU section
# of engine/backend_cpu.c exists and holds the function the CPU backend puts in that slot (the
# op sections in slot order); the kernel file exists, is k_<op>.cuh unless it is a shared helper,
# and names k_<slot>... (kernels, launchers); k_backend.cuh implements kb_<slot>; the CPU test is a RUN test and the op
# check is called by cad_backend_opcheck. The real tree passes, planted disagreements fail.
# Not here: whether the ops are right (test_engine_ops, test_kernels_emu).
. "$CADDIE_SRC/tests/cli/lib.sh"

# op_table_check ROOT: prints one line per disagreement, "op table: ok" when none; exit 1 on any.
op_table_check() {
    local root=$1 h=$1/engine/backend.h cpu=$1/engine/backend_cpu.c readme=$1/kernels/README.md
    local chk=$1/engine/backend_check.c kb=$1/kernels/k_backend.cuh bad=0
    # slots: the function-pointer members of struct cad_backend, in order
    awk '/^struct cad_backend \{/ {f = 1; next} f && /^\};/ {f = 0} f' "$h" |
        grep -o '(\*[a-z0-9_]*)' | tr -d '(*)' >slots
    # rows of the table under the "| slot |" header: slot, section, kernel, test, check
    awk -F'|' '/^\| slot \|/ {f = 1; next} f && !/^\|/ {f = 0}
        f && /^\| `/ { for (i = 2; i <= 6; i++) { gsub(/[` ]/, "", $i); gsub(/—/, "-", $i) } print $2, $3, $4, $5, $6 }' \
        "$readme" >rows
    cut -d' ' -f1 rows >row_slots
    if [ ! -s slots ]; then echo "no slots found in engine/backend.h"; return 1; fi
    if ! diff slots row_slots >slots.diff; then
        sed -n 's/^< /slot without a row (or out of order): /p; s/^> /row that is no slot (or out of order): /p' \
            slots.diff
        bad=1
    fi
    # which op section of backend_cpu.c defines each static function ("shared" ones count as none)
    awk 'match($0, /^\/\* ---- [a-z0-9_]+ -+ \*\/$/) { sec = $3; next }
         /^\/\* ---- / { sec = "-"; next }
         match($0, /^static [^=(]*[ *]cpu_[a-z0-9_]+\(/) {
             s = substr($0, RSTART, RLENGTH - 1); sub(/.*[ *]/, "", s); print s, sec }' "$cpu" >fn_sec
    grep -o '^/\* ---- [a-z0-9_]* -* \*/$' "$cpu" | awk '{print $3}' >cpu_sections
    awk '!seen[$2]++ && $2 != "-" {print $2}' rows >row_sections
    if ! diff cpu_sections row_sections >/dev/null; then
        echo "backend_cpu.c op sections ($(tr '\n' ' ' <cpu_sections)) are not the table's, in slot order ($(tr '\n' ' ' <row_sections))"
        bad=1
    fi
    local slot sec kfile test check fn file func
    while read -r slot sec kfile test check; do
        fn=$(sed -n "s/^    \.$slot = \([a-z0-9_]*\),\$/\1/p" "$cpu")
        if [ -z "$fn" ]; then echo "$slot: not set in backend_cpu.c's cpu_backend"; bad=1
        elif ! grep -q "^$fn $sec\$" fn_sec; then
            echo "$slot: $fn is not defined in backend_cpu.c section '---- $sec ----'"; bad=1
        fi
        if [ ! -f "$root/kernels/$kfile" ]; then echo "$slot: kernel file kernels/$kfile does not exist"; bad=1
        elif [ "$kfile" != k_backend.cuh ] && [ "$kfile" != k_gemm.cuh ]; then
            [ "$kfile" = "k_$sec.cuh" ] || { echo "$slot: kernel file $kfile is not k_$sec.cuh"; bad=1; }
            grep -q "\bk_$slot" "$root/kernels/$kfile" || { echo "$slot: $kfile has no k_$slot..."; bad=1; }
        fi
        grep -q "^static [^(]*\bkb_$slot(" "$kb" || { echo "$slot: k_backend.cuh has no kb_$slot"; bad=1; }
        if [ "$test" = "-" ] || [ "$check" = "-" ]; then
            # only the slots that are no ops (memory, backend settings) go without
            case "$sec" in memory|set_matmul_precision) ;;
                *) echo "$slot: an op needs a CPU test and an op check"; bad=1 ;; esac
        fi
        if [ "$test" != "-" ]; then
            case "$test" in *:*) file=${test%%:*} func=${test#*:} ;; *) file=test_engine_ops.c func=$test ;; esac
            if ! grep -q "^static void $func(void)" "$root/tests/unit/$file" ||
                ! grep -q "RUN($func);" "$root/tests/unit/$file"; then
                echo "$slot: no test $func run in tests/unit/$file"; bad=1
            fi
        fi
        if [ "$check" != "-" ]; then
            if ! grep -q "^static void $check(ck \*c" "$chk" || ! grep -q "^ *$check(c, " "$chk"; then
                echo "$slot: no op check $check called in engine/backend_check.c"; bad=1
            fi
        fi
    done <rows
    [ $bad -eq 0 ] && echo "op table: ok"
    return $bad
}

test_expect_success 'the op table agrees with engine/backend.h and the sources' '
    op_table_check "$CADDIE_SRC" >out && test_grep "^op table: ok" out
'
plant() {  # copy what the check reads into ./tree
    rm -rf tree && mkdir -p tree/tests && cp -r "$CADDIE_SRC/engine" "$CADDIE_SRC/kernels" tree/ &&
    cp -r "$CADDIE_SRC/tests/unit" tree/tests/
}
test_expect_success 'a slot without a row is caught' '
    plant && sed -i "/^| \`xsa_backward\` |/d" tree/kernels/README.md &&
    test_must_fail op_table_check tree >out && test_grep "slot without a row.*: xsa_backward" out
'
test_expect_success 'a row that is no slot is caught' '
    plant && sed -i "s/(\*relu2_backward)/(*relu2_grad)/" tree/engine/backend.h &&
    test_must_fail op_table_check tree >out && test_grep "row that is no slot.*: relu2_backward" out
'
test_expect_success 'a kernel file that does not exist is caught' '
    plant && rm tree/kernels/k_xsa.cuh &&
    test_must_fail op_table_check tree >out && test_grep "kernels/k_xsa.cuh does not exist" out
'
test_expect_success 'a CPU function outside its section is caught' '
    plant && sed -i "s|^/\* ---- xsa -|/* ---- shared: xsa -|" tree/engine/backend_cpu.c &&
    test_must_fail op_table_check tree >out && test_grep "cpu_xsa_forward is not defined in .* xsa " out
'
test_expect_success 'an op check under another name is caught' '
    plant && sed -i "s/check_rmsnorm(/check_rms(/g" tree/engine/backend_check.c &&
    test_must_fail op_table_check tree >out && test_grep "rmsnorm_forward: no op check check_rmsnorm" out
'
test_done
