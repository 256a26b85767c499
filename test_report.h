// test_report.h: the report format every test program here prints, shared by test_gpt.c and test_gpt.cu
// (plain C that also compiles as C++). One line per check, [ OK ] or [FAIL]; the caller prints the summary
// from checks_passed / checks_failed and exits non-zero on any failure.
#pragma once
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static int checks_passed = 0, checks_failed = 0;

static void report(int ok, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "[ OK ]" : "[FAIL]");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) checks_passed++;
    else checks_failed++;
}

// Compares got against ref elementwise: |got - ref| <= rtol * (|ref| + rms(ref)).
// The floor rms(ref) keeps elements that cancel to nearly zero from being judged on digits no fp32 sum of
// their size can have; away from zero this is a plain relative tolerance. Prints one report line.
static int check_tensor(const char* name, const char* shape, const float* got, const float* ref, size_t n,
                        double rtol) {
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
    double rms = sqrt(ss / (n ? n : 1));
    double maxd = 0.0, worst = 0.0;
    long first_bad = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        double rel = d / (fabs(ref[i]) + rms + 1e-30);
        if (!(d <= rtol * (fabs(ref[i]) + rms))) {  // also catches NaN
            if (first_bad < 0) first_bad = (long)i;
            rel = isfinite(rel) ? rel : INFINITY;
        }
        if (d > maxd || isnan(d)) maxd = d;
        if (rel > worst || isnan(rel)) worst = rel;
    }
    int ok = first_bad < 0;
    if (ok)
        report(1, "%-10s %-8s n=%-7zu max|d|=%.1e  worst rel=%.1e  tol=%.0e  used %3.0f%%", name, shape, n, maxd, worst,
               rtol, 100.0 * worst / rtol);
    else
        report(0, "%-10s %-8s n=%-7zu max|d|=%.1e  worst rel=%.1e  tol=%.0e  first bad @%ld: ours=%.7g ref=%.7g", name,
               shape, n, maxd, worst, rtol, first_bad, got[first_bad], ref[first_bad]);
    return ok;
}
