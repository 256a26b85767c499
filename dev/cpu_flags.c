// dev/cpu_flags.c: the vector-ISA flags of the CPU this program runs on, asked of the CPU itself (CPUID,
// through gcc's and clang's __builtin_cpu_supports), printed as a /proc/cpuinfo "flags" line.
// Why not read /proc/cpuinfo: under qemu-user (`qemu-x86_64 -cpu EPYC-Milan ./cpu_flags`) that file is still
// the host's, while CPUID answers for the emulated CPU. dev/bench.sh's QEMU_CPU= uses this to decide, as it
// would on that CPU, which kernels OpenBLAS may be told to run. Not x86: prints nothing (the bench then reads
// /proc/cpuinfo's "Features", which is right on ARM).
//   cc -O2 -o cpu_flags dev/cpu_flags.c && ./cpu_flags
#include <stdio.h>

int main(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    printf("flags\t\t:");
    if (__builtin_cpu_supports("sse2")) printf(" sse2");
    if (__builtin_cpu_supports("avx")) printf(" avx");
    if (__builtin_cpu_supports("avx2")) printf(" avx2");
    if (__builtin_cpu_supports("fma")) printf(" fma");
    if (__builtin_cpu_supports("avx512f")) printf(" avx512f");
    if (__builtin_cpu_supports("avx512bw")) printf(" avx512bw");
    if (__builtin_cpu_supports("avx512dq")) printf(" avx512dq");
    if (__builtin_cpu_supports("avx512vl")) printf(" avx512vl");
    printf("\n");
#endif
    return 0;
}
