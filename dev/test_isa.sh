#!/usr/bin/env bash
# dev/test_isa.sh: the test suite built for other vector ISAs and compilers, each in its own copy of the tree
# under a temp dir (the main build is left alone), so that every register tile in kernels.h's matmul is held to
# the reference matmul and every other test, not only the one this machine's -march=native picks.
#   dev/test_isa.sh [native] [avx2] [generic] [clang] [aarch64] [aarch64-portable]
#                   (default: avx2 generic clang aarch64 aarch64-portable)
#   native   this machine's own build (-march=native), gcc: the tile `make test` already checks
#   avx2     -march=native -mno-avx512f on an AVX-512 machine, else -march=haswell: the AVX2+FMA 6x16 tile
#   generic  -march=x86-64 (SSE2, no AVX, no FMA): the plain-C 4x8 micro-kernel
#   clang    clang -march=native: the same vector-extension kernel through another compiler
#   aarch64  cross-built with Debian's gcc-aarch64-linux-gnu for -march=armv8.2-a (the NEON 8x12 tile), run under
#            qemu-user. There is no binfmt_misc here, so each binary becomes a wrapper script calling
#            qemu-aarch64 -L /usr/aarch64-linux-gnu on the real one; FINETUNE_TRAIN points `./train sweep` at
#            the wrapper (it re-executes itself, see cmd_sweep in train.c).
#   aarch64-portable  the same with -DGEMM_PORTABLE: the vector-extension kernel instead of the NEON intrinsics
#   avx2-qemu  -march=haswell, run under qemu-x86_64 emulating an AMD Zen 3 (EPYC-Milan: AVX2 + FMA, no AVX-512),
#            the way aarch64 is: the avx2 build above runs on this machine's own CPU, which would execute an
#            AVX-512 (or AVX-VNNI, GFNI...) instruction without complaint; the emulated Zen 3 raises SIGILL on
#            one. -mtune=generic because qemu 7.2 gets VGATHERQPS with a 256-bit index wrong (it returns zeros;
#            `_mm256_i64gather_ps` shows it in four lines), and Haswell tuning lets gcc emit it for the int8
#            weights' loops, which then fail q8 fwd / q8 dinp under qemu only. The CPUID bits TCG cannot emulate
#            (none of them vector ISA) are switched off, so qemu prints no warnings into the tests' stderr.
# x86 builds need the CPU to have what they were built for; each is skipped (and says so) when it does not, or
# when its compiler or qemu is missing (.ci/run installs them). Prints one line per build: its tile, its test
# counts and how long it took; exits non-zero if any build's tests fail.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
builds=${*:-"avx2 generic clang aarch64 aarch64-portable avx2-qemu"}
zen3=EPYC-Milan,-pcid,-invpcid,-rdseed,-sha-ni,-rdpid,-fsrm,-fxsr-opt,-misalignsse,-3dnowprefetch,-osvw,-topoext
zen3=$zen3,-perfctr-core,-clzero,-xsaveerptr,-wbnoinvd,-ibpb,-ibrs,-amd-stibp,-amd-ssbd,-nrip-save,-xsavec,-xsaves
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { [[ " $flags " == *" $1 "* ]]; }
shared=$(cd .. && pwd)/shared
fail=0
summary=()
for b in $builds; do
    cc=gcc arch=-march=native wrap=
    case $b in
        native) ;;
        avx2) has avx2 && has fma || { summary+=("$b: skipped (this CPU has no AVX2+FMA)"); continue; }
              has avx512f && arch="-march=native -mno-avx512f" || arch=-march=haswell ;;
        generic) [ "$(uname -m)" = x86_64 ] || { summary+=("$b: skipped (not x86-64)"); continue; }
                 arch=-march=x86-64 ;;
        clang) command -v clang >/dev/null || { summary+=("$b: skipped (no clang; apt-get install clang)"); continue; }
               cc=clang ;;
        aarch64|aarch64-portable)
                 cc=aarch64-linux-gnu-gcc arch=-march=armv8.2-a wrap="qemu-aarch64 -L /usr/aarch64-linux-gnu"
                 [ $b = aarch64-portable ] && arch="$arch -DGEMM_PORTABLE"
                 if ! command -v $cc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
                     summary+=("$b: skipped (needs gcc-aarch64-linux-gnu and qemu-user)"); continue
                 fi ;;
        avx2-qemu)
                 [ "$(uname -m)" = x86_64 ] || { summary+=("$b: skipped (not x86-64)"); continue; }
                 command -v qemu-x86_64 >/dev/null || { summary+=("$b: skipped (needs qemu-user)"); continue; }
                 arch="-march=haswell -mtune=generic" wrap="qemu-x86_64 -cpu $zen3" ;;
        *) echo "unknown build '$b' (native, avx2, generic, clang, aarch64, aarch64-portable, avx2-qemu)"; exit 2 ;;
    esac
    t0=$(date +%s)
    dir=$tmp/$b/repo
    mkdir -p "$dir"
    ln -s "$shared" "$tmp/$b/shared"  # the tests read ../shared/data
    # the tracked and the new (not ignored) files: the tree as it would be committed
    git ls-files -co --exclude-standard -z | (cd "$root" && xargs -0 cp --parents -t "$dir")
    log=$tmp/$b.log
    echo "== $b: CC=$cc ARCH='$arch'"
    if ! make -C "$dir" -j2 CC=$cc ARCH="$arch" train test_gpt dataprep test_dataprep >"$log" 2>&1; then
        tail -n 30 "$log"
        summary+=("$b: BUILD FAILED")
        fail=1
        continue
    fi
    if [ -n "$wrap" ]; then  # each binary X becomes X.bin plus a script X that runs it under qemu
        for x in train test_gpt dataprep test_dataprep; do
            mv "$dir/$x" "$dir/$x.bin"
            printf '#!/bin/sh\nexec %s "%s/%s.bin" "$@"\n' "$wrap" "$dir" "$x" >"$dir/$x"
            chmod +x "$dir/$x"
        done
        export FINETUNE_TRAIN=$dir/train
    fi
    tile=$(grep -a -o -m1 '[A-Za-z0-9+-]* [0-9]*x[0-9]* fp32, KC [0-9]*' "$dir/train${wrap:+.bin}" | head -n 1)
    (cd "$dir" && ./test_gpt && ./test_dataprep) >"$log" 2>&1
    rc=$?
    unset FINETUNE_TRAIN
    counts=$(grep -E '^(gpt|dataprep): [0-9]+ passed' "$log" | paste -sd';' -)
    t=$(($(date +%s) - t0))
    if [ $rc -ne 0 ]; then
        grep -E '^\[FAIL\]' "$log" | head -n 20
        summary+=("$b: FAILED (exit $rc), tile $tile, $counts, ${t}s")
        fail=1
    else
        summary+=("$b: ok, tile $tile, $counts, ${t}s")
    fi
    echo "${summary[-1]}"
done
echo "== ISA builds:"
printf '  %s\n' "${summary[@]}"
exit $fail
