// dev/cuda/emu/emu_runtime.cpp: the emulator itself (see emu.h): fibers for CUDA threads, the CUDA runtime
// calls train.cu makes, and cuBLAS GemmEx / GemmStridedBatchedEx as a plain column-major loop (fp32 accumulate).
#include "emu.h"
#include <ucontext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vector>
namespace emu {
struct Fiber { ucontext_t ctx; uint3 tid; bool done; char* stack; };
Fiber* cur;
uint3 block_idx;
dim3 block_dim, grid_dim;
double slots[1024];
static ucontext_t sched;
static std::function<void()>* body;
static std::vector<Fiber> fibers;
static const size_t STACK = 256 * 1024;
uint3& thread_idx() { return cur->tid; }
int linear_tid() { return (int)(cur->tid.x + block_dim.x * (cur->tid.y + block_dim.y * cur->tid.z)); }
void yield() { swapcontext(&cur->ctx, &sched); }
static void fiber_main() {
    (*body)();
    cur->done = true;
    swapcontext(&cur->ctx, &sched);
}
void launch(dim3 grid, dim3 block, std::function<void()> f) {
    size_t nt = (size_t)block.x * block.y * block.z;
    if (nt == 0 || nt > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
        fprintf(stderr, "emu: bad launch grid (%u,%u,%u) block (%u,%u,%u)\n", grid.x, grid.y, grid.z, block.x, block.y, block.z);
        abort();
    }
    if (fibers.size() < nt) {
        size_t old = fibers.size();
        fibers.resize(nt);
        for (size_t i = old; i < nt; i++) fibers[i].stack = (char*)malloc(STACK);
        // (stacks of earlier fibers moved with the vector: their pointers are unchanged)
    }
    body = &f;
    grid_dim = grid;
    block_dim = block;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                block_idx = make_uint3(bx, by, bz);
                for (size_t i = 0; i < nt; i++) {
                    Fiber* fb = &fibers[i];
                    fb->tid = make_uint3((unsigned)(i % block.x), (unsigned)(i / block.x % block.y), (unsigned)(i / block.x / block.y));
                    fb->done = false;
                    getcontext(&fb->ctx);
                    fb->ctx.uc_stack.ss_sp = fb->stack;
                    fb->ctx.uc_stack.ss_size = STACK;
                    fb->ctx.uc_link = NULL;
                    makecontext(&fb->ctx, fiber_main, 0);
                }
                for (;;) {
                    size_t alive = 0;
                    for (size_t i = 0; i < nt; i++) {
                        if (fibers[i].done) continue;
                        cur = &fibers[i];
                        swapcontext(&sched, &cur->ctx);
                        alive += !fibers[i].done;
                    }
                    if (!alive) break;
                }
            }
}
}  // namespace emu

static float ld(const void* p, cudaDataType t, size_t i) {
    return t == CUDA_R_32F ? ((const float*)p)[i] : __bfloat162float(((const __nv_bfloat16*)p)[i]);
}
static void st(void* p, cudaDataType t, size_t i, float v) {
    if (t == CUDA_R_32F) ((float*)p)[i] = v;
    else ((__nv_bfloat16*)p)[i] = __float2bfloat16(v);
}
struct CUevent_st { double t; };
struct cublasContext { int x; };
extern "C" {
const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* p, int) {
    memset(p, 0, sizeof *p);
    strcpy(p->name, "CPU emulator (not a GPU)");
    p->multiProcessorCount = 1;
    p->totalGlobalMem = 1ull << 33;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t n) { *p = malloc(n ? n : 1); memset(*p, 0xA5, n); return cudaSuccess; }  // garbage, as a GPU gives
cudaError_t cudaFree(void* p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpy(void* d, const void* s, size_t n, enum cudaMemcpyKind) { memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemset(void* d, int v, size_t n) { memset(d, v, n); return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* f, size_t* t) { *f = 1ull << 32; *t = 1ull << 33; return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); e->t = ts.tv_sec + ts.tv_nsec * 1e-9; return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) { *ms = (float)((b->t - a->t) * 1e3); return cudaSuccess; }
cublasStatus_t cublasCreate_v2(cublasHandle_t* h) { *h = new cublasContext; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType At, int lda, long long sA,
                                          const void* B, cudaDataType Bt, int ldb, long long sB, const void* beta, void* C,
                                          cudaDataType Ct, int ldc, long long sC, int batch, cublasComputeType_t ct,
                                          cublasGemmAlgo_t) {
    if (At != Bt || (At == CUDA_R_32F && Ct != CUDA_R_32F)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (At == CUDA_R_16BF && ct != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    // leading dimensions as cuBLAS checks them
    if (lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m) {
        fprintf(stderr, "emu cublas: bad leading dimension m=%d n=%d k=%d lda=%d ldb=%d ldc=%d\n", m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    float al = *(const float*)alpha, be = *(const float*)beta;
    for (int b = 0; b < batch; b++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0.0f;
                for (int l = 0; l < k; l++) {
                    size_t ia = ta == CUBLAS_OP_N ? (size_t)i + (size_t)l * lda : (size_t)l + (size_t)i * lda;
                    size_t ib = tb == CUBLAS_OP_N ? (size_t)l + (size_t)j * ldb : (size_t)j + (size_t)l * ldb;
                    acc += ld(A, At, ia + b * sA) * ld(B, Bt, ib + b * sB);
                }
                size_t ic = (size_t)i + (size_t)j * ldc + b * sC;
                st(C, Ct, ic, al * acc + (be == 0.0f ? 0.0f : be * ld(C, Ct, ic)));
            }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType At, int lda, const void* B, cudaDataType Bt,
                            int ldb, const void* beta, void* C, cudaDataType Ct, int ldc, cublasComputeType_t ct,
                            cublasGemmAlgo_t algo) {
    return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, At, lda, 0, B, Bt, ldb, 0, beta, C, Ct, ldc, 0, 1, ct, algo);
}
}
