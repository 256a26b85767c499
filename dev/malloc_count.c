// dev/malloc_count.c: counts malloc calls, printed at exit, to check that a training step allocates nothing:
// the count is the same for 2 and for 6 steps when no step allocates (calloc and realloc are not counted;
// the model's buffers use them once, when they are first sized).
//   cc -O2 -shared -fPIC -o malloc_count.so dev/malloc_count.c -ldl
//   for s in 2 6; do LD_PRELOAD=./malloc_count.so ./train bench --init 4,4,128 --vocab 1000 --batch 4 \
//       --seq 32 --steps $s 2>&1 | grep mallocs; done
#define _GNU_SOURCE
#include <dlfcn.h>  // defines: dlsym, RTLD_NEXT (the real malloc)
#include <stdio.h>  // defines: fprintf

static long count;
static void* (*real_malloc)(size_t);

void* malloc(size_t size) {
    if (!real_malloc) real_malloc = (void* (*)(size_t))dlsym(RTLD_NEXT, "malloc");
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real_malloc(size);
}

__attribute__((destructor)) static void report(void) { fprintf(stderr, "mallocs: %ld\n", count); }
