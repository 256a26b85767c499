// train.cu: the CUDA mirror of the CPU path. The same model (model.h), the same trainer (train.c), on one
// NVIDIA GPU. Read it next to kernels.h and model.h: every kernel there that runs on the GPU has a kernel and
// a launcher here, in the same section order (encoder, layernorm, matmul, residual, attention, gelu, softmax +
// cross-entropy, then the model and the optimizer), with the same name and argument order (in namespace gpu),
// forward above backward. The training loop is train.c's: this file supplies its Backend (the last section).
//
//   ./train_gpu --init 4,4,128 --vocab 256 --train data_train.bin --val data_val.bin --steps 500 --out run
//   ./train_gpu --resume run --train data_train.bin ...           (a run started by ./train, or by ./train_gpu)
//   ./train_gpu eval --model run/model.bin --data data_val.bin
//   ./train_gpu sample --model run/model.bin --tokens "12 43 7"
//   ./train_gpu bench --init 12,12,768 --batch 16 --seq 1024 --precision bf16
//   ./train_gpu --model gpt2_124M.bin --train sft_train.bin --method prefix --prefix-len 10 ...
//
// Every flag of ./train works unchanged, and the logs (console and --log JSONL) and the checkpoints
// (model.bin, ckpt.bin) are train.c's own, written by train.c's functions: a run can stop on one device and
// --resume on the other. One flag is added:
//   --precision fp32   (default) fp32 everywhere, cuBLAS in true fp32 (TF32 off): the mirror of the CPU path,
//                      what test_gpt.cu holds to the PyTorch reference with the CPU test's tolerances
//   --precision tf32   the same, but cuBLAS may use TF32 tensor cores (10-bit mantissa inputs) for matmuls
//   --precision bf16   mixed precision: bf16 activations, activation gradients and matmul inputs; fp32 master
//                      weights, parameter gradients and AdamW state (what modern GPU trainers do)
//
// Build (make cuda does this when nvcc is found):
//   nvcc -O3 -std=c++17 -arch=sm_90 -Xcompiler -fopenmp,-Wall,-Wextra,-Wno-unused-function,-Wno-missing-field-initializers
//        -o train_gpu train.cu -lcublas -lgomp                                          (one line)
// (-Wno-missing-field-initializers: g++ warns on train.c's C-style `= {0}` initializers; C does not.)
//
// ---------------------------------------------------------------------------- Differences from the CPU path
// Semantics (what a student comparing the two files should know):
//  1. Summation order. Every reduction (matmul dot products, LayerNorm statistics, softmax sums, column sums
//     for bias and LayerNorm weight gradients, the embedding gradient) adds the same terms in a different,
//     fixed order, so fp32 results differ from the CPU's in the last bits (test_gpt.cu: within the CPU
//     test's tolerances against PyTorch). The order is fixed: every kernel is deterministic (no floating
//     point atomics), and cuBLAS is deterministic on one GPU model, so a run reproduces itself bit for bit
//     and --resume reproduces the uninterrupted run bit for bit, as on the CPU.
//  2. Matmuls are cuBLAS (the CPU's are model.h's own blocked gemm). The bias is written first and cuBLAS
//     adds the product onto it (beta = 1), as the CPU does. Attention's two matmuls per head are cuBLAS
//     batched matmuls over the full T x T square (the CPU loops only over t2 <= t); the softmax then zeroes
//     the masked part exactly, so att is the same tensor, zero above the diagonal.
//  3. The attention scores (before softmax) are computed in an fp32 scratch buffer per batch row, not kept:
//     only the probabilities att are saved for backward, as on the CPU.
//  4. encoder_backward copies the B*T token ids to the host and groups positions by token there, so that each
//     token's embedding-gradient row is summed by one thread in position order (deterministic, no atomics).
//  5. crossentropy_forward copies the per-position losses to the host and takes their mean there, in double,
//     in the CPU's order. The per-row normaliser is summed in double, as on the CPU.
//  6. gpt_grad_norm sums squares in double per 64K-element chunk on the GPU, then adds the chunks in order on
//     the host, as the CPU does (the order inside a chunk differs).
//  7. Sampling (sample command) copies one row of logits to the host and uses train.c's sample_next. There is
//     no KV cache: every token recomputes the window (the CPU path prefills once, then decodes one position
//     per token), and past maxT the window slides by one token (the CPU path: by maxT/2).
//  8. bf16 only: activations (including logits and probs) and activation gradients are stored in bf16, so
//     every stored value is rounded to 8 mantissa bits; the math inside each kernel is fp32 (LayerNorm
//     statistics, softmax, GELU, AdamW) and cuBLAS accumulates in fp32. LayerNorm mean/rstd and the
//     per-position losses stay fp32. Parameter gradients are fp32 (cuBLAS writes the weight gradient of
//     bf16 inputs straight into fp32), so the gradient norm, clipping and AdamW are the fp32 code. After each
//     AdamW step the bf16 copy of the weights is re-rounded from the fp32 master weights (round to nearest
//     even). No loss scaling: bf16 has fp32's exponent range.
//  9. Not on the GPU yet: LoRA, adapters and the classification head (lora.c's kernels), dropout (--dropout),
//     early stopping, the final test evaluation and keeping a pruned model's zeros (--early-stop, --test,
//     --keep-sparsity); a model or flags that use them stop with an error naming ./train. The base model,
//     SFT data (targets masked with -1), prefix-tuning (in attention), freezing (--freeze, --unfreeze: frozen
//     slices get no gradient, backward stops at the lowest trainable layer), layer-wise LR decay, gradient
//     accumulation (--accum) and --epochs are mirrored.
// 10. The training loop is train.c's own (run_prepare, run_train, run_finish), with a Backend whose step
//     functions run here: the model is built, loaded and set up on the host by train.c, then copied to the
//     GPU; the host copy is what save_checkpoint writes, after the GPU's weights and AdamW state are copied
//     back into it (to_host). So the console lines, the JSONL log, the run folder (log.jsonl, command.txt,
//     best.bin, curves.svg, report.md) and the checkpoints are the CPU's, line for line.
// Not differences: the same data order, the same RNG streams (host side), the same learning-rate schedule
// (lr_at), the same AdamW expression, the same checkpoint and log formats, the same error messages.

// model.h and train.c are C11; nvcc compiles this file as C++. These spell the C-only keywords they use.
#define _Static_assert static_assert
#define restrict __restrict__
#define _Thread_local thread_local
#define TESTING  // train.c without its main(): we get its loaders, checkpoints, data loader and flag parser
#include "train.c"
#undef restrict
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <type_traits>

// ---------------------------------------------------------------------------- error helpers
// The same one-line error and hint as everything else (die() from model.h), for CUDA and cuBLAS calls.
static void cuda_check(cudaError_t e, const char* file, int line) {
    if (e == cudaSuccess) return;
    char msg[256];
    snprintf(msg, sizeof msg, "CUDA error: %s", cudaGetErrorString(e));
    die(file, line, msg,
        e == cudaErrorMemoryAllocation ? "use a smaller --batch/--seq or --precision bf16" : "run with CUDA_LAUNCH_BLOCKING=1 to find the failing kernel");
}
#define cudaCheck(x) cuda_check((x), __FILE__, __LINE__)

static void cublas_check(cublasStatus_t s, const char* file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return;
    char msg[128];
    snprintf(msg, sizeof msg, "cuBLAS error %d", (int)s);
    die(file, line, msg, "check the matrix shapes passed to gpu::gemm");
}
#define cublasCheck(x) cublas_check((x), __FILE__, __LINE__)

// After every launch: a bad launch configuration is reported here, at its launcher, not at a later call.
#define launchCheck() cudaCheck(cudaGetLastError())

namespace gpu {

typedef __nv_bfloat16 bf16;

// Loads and stores in the storage type, math in fp32: to_float widens, from_float<T> rounds (to nearest even).
__host__ __device__ inline float to_float(float x) { return x; }
__host__ __device__ inline float to_float(bf16 x) { return __bfloat162float(x); }
template <typename floatX> __host__ __device__ inline floatX from_float(float x);
template <> __host__ __device__ inline float from_float<float>(float x) { return x; }
template <> __host__ __device__ inline bf16 from_float<bf16>(float x) { return __float2bfloat16(x); }

static inline unsigned ceil_div(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

// ---------------------------------------------------------------------------- device setup
static cublasHandle_t cublas_handle;
static cudaDeviceProp device_prop;
// Compute type of cuBLAS calls on fp32 inputs: true fp32, or TF32 tensor cores with --precision tf32.
// bf16 inputs always accumulate in fp32 (CUBLAS_COMPUTE_32F).
static cublasComputeType_t fp32_compute = CUBLAS_COMPUTE_32F;

// Started on first use, so --help and flag errors work on a machine without a GPU.
static void device_init(void) {
    static int done = 0;
    if (done) return;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        failf("this is the CUDA trainer; on a machine without an NVIDIA GPU use ./train (same flags and files)",
              "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices found");
    cudaCheck(cudaSetDevice(0));
    cudaCheck(cudaGetDeviceProperties(&device_prop, 0));
    cublasCheck(cublasCreate(&cublas_handle));
    done = 1;
}

// A grow-only device buffer (the launchers' scratch space): reallocated only when a larger one is asked for.
// cudaFree waits for the device, so no kernel is still using the old one.
static void* grow(void** buf, size_t* cap, size_t bytes) {
    if (bytes > *cap) {
        if (*buf) cudaCheck(cudaFree(*buf));
        cudaCheck(cudaMalloc(buf, bytes));
        *cap = bytes;
    }
    return *buf;
}

// ---------------------------------------------------------------------------- reductions
// Sums (or maxes) across the 32 lanes of a warp by butterfly shuffles: a fixed pattern, so deterministic.
__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Across a whole block (blockDim.x a multiple of 32, at most 1024): warps first, then warp 0 over the warp
// results. Every thread gets the result. `shared` holds 32 values of type V.
template <typename V, typename Op>
__device__ inline V block_reduce(V v, V* shared, Op op) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = op(v);
    __syncthreads();  // shared may still be read by a previous call
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < nwarps ? shared[lane] : V(0);  // lanes past the number of warps add the identity, 0
    return op(v);
}
struct WarpSum {
    template <typename V> __device__ V operator()(V v) const { return warp_sum(v); }
};

// Column sums of a row-major (N, C) matrix in two deterministic stages: stage 1, block (x, y) sums the rows
// of chunk y for 32 columns (threads: 32 columns x 8 row-strides, then the 8 in order); stage 2 adds the
// chunks in order. Used for bias gradients (dbias = sum over rows of dout) and LayerNorm's dw, db.
#define COLSUM_ROWS 128  // rows per chunk
template <typename floatX>
__global__ void column_sum_partial_kernel(float* partial, const floatX* in, size_t N, int C) {
    __shared__ float acc[8][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    size_t r0 = (size_t)blockIdx.y * COLSUM_ROWS, r1 = r0 + COLSUM_ROWS < N ? r0 + COLSUM_ROWS : N;
    float s = 0.0f;
    if (c < C)
        for (size_t r = r0 + threadIdx.y; r < r1; r += 8) s += to_float(in[r * C + c]);
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int k = 1; k < 8; k++) s += acc[k][threadIdx.x];
        partial[(size_t)blockIdx.y * C + c] = s;
    }
}
// out[c] += sum over chunks k (in order) of partial[k, c]; one thread per column
__global__ void sum_partials_kernel(float* out, const float* partial, int nchunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int k = 0; k < nchunks; k++) s += partial[(size_t)k * C + c];
    out[c] += s;
}
// Accumulates (+=) the column sums of in (N, C) into out (C).
template <typename floatX>
static void column_sum(float* out, const floatX* in, size_t N, int C) {
    static void* buf;
    static size_t cap;
    int nchunks = (int)ceil_div(N, COLSUM_ROWS);
    float* partial = (float*)grow(&buf, &cap, (size_t)nchunks * C * sizeof(float));
    column_sum_partial_kernel<<<dim3(ceil_div(C, 32), nchunks), dim3(32, 8)>>>(partial, in, N, C);
    launchCheck();
    sum_partials_kernel<<<ceil_div(C, 256), 256>>>(out, partial, nchunks, C);
    launchCheck();
}

// ---------------------------------------------------------------------------- encoder
// x[b,t,:] = wte[inp[b,t],:] + wpe[t,:].  PyTorch: wte(idx) + wpe(pos)
// out: (B,T,C)   inp: (B,T) ids in [0,V), on the device   wte: (Vp,C)   wpe: (maxT,C)
// One thread per output element.
template <typename floatX>
__global__ void encoder_forward_kernel(floatX* out, const int* inp, const floatX* wte, const floatX* wpe, int B, int T,
                                       int C) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * T * C) return;
    size_t bt = idx / C;
    int i = (int)(idx % C), t = (int)(bt % T);
    out[idx] = from_float<floatX>(to_float(wte[(size_t)inp[bt] * C + i]) + to_float(wpe[(size_t)t * C + i]));
}
template <typename floatX>
static void encoder_forward(floatX* out, const int* inp, const floatX* wte, const floatX* wpe, int B, int T, int C) {
    size_t n = (size_t)B * T * C;
    encoder_forward_kernel<<<ceil_div(n, 256), 256>>>(out, inp, wte, wpe, B, T, C);
    launchCheck();
}
// forward was out = wte[ix] + wpe[t], so dwte[ix] += dout and dwpe[t] += dout. Either may be NULL (frozen).
// dwte: one block row per distinct token u (grid.x), one thread per channel: sums the positions holding u,
// in position order (positions grouped by token on the host: see the launcher), then adds once.
template <typename floatX>
__global__ void encoder_backward_wte_kernel(float* dwte, const floatX* dout, const int* tok, const int* start,
                                            const int* pos, int C) {
    int u = blockIdx.x, i = blockIdx.y * blockDim.x + threadIdx.x;
    if (i >= C) return;
    float s = 0.0f;
    for (int j = start[u]; j < start[u + 1]; j++) s += to_float(dout[(size_t)pos[j] * C + i]);
    dwte[(size_t)tok[u] * C + i] += s;
}
// dwpe: one thread per (t, i), summing over the batch in order.
template <typename floatX>
__global__ void encoder_backward_wpe_kernel(float* dwpe, const floatX* dout, int B, int T, int C) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= (size_t)T * C) return;
    size_t t = idx / C, i = idx % C;
    float s = 0.0f;
    for (int b = 0; b < B; b++) s += to_float(dout[((size_t)b * T + t) * C + i]);
    dwpe[idx] += s;
}
// Groups the N positions of inp (host ids) by token, for encoder_backward: tok[u] is the u-th distinct id
// (ascending), and its positions are pos[start[u] .. start[u+1]), ascending (a counting sort: stable).
// tok holds N ints, start N+1, pos N. Returns U, the number of distinct ids.
static int group_by_token(int* tok, int* start, int* pos, const int* inp, int N) {
    int maxid = 0;
    for (int n = 0; n < N; n++) maxid = inp[n] > maxid ? inp[n] : maxid;
    int* first = (int*)callocCheck((size_t)maxid + 2, sizeof(int));  // first[v]: first slot of token v
    for (int n = 0; n < N; n++) first[inp[n] + 1]++;
    for (int v = 0; v <= maxid; v++) first[v + 1] += first[v];
    int U = 0;
    for (int v = 0; v <= maxid; v++)
        if (first[v + 1] > first[v]) {
            tok[U] = v;
            start[U] = first[v];
            U++;
        }
    start[U] = N;
    for (int n = 0; n < N; n++) pos[first[inp[n]]++] = n;
    free(first);
    return U;
}
template <typename floatX>
static void encoder_backward(float* dwte, float* dwpe, const floatX* dout, const int* inp, int B, int T, int C) {
    int BT = B * T;
    if (dwte) {
        static int* h_buf;  // host: the ids, then tok (BT), start (BT+1), pos (BT)
        static int h_cap;
        static void* d_buf;
        static size_t d_cap;
        if (BT > h_cap) {
            free(h_buf);
            h_buf = (int*)mallocCheck((size_t)(4 * BT + 1) * sizeof(int));
            h_cap = BT;
        }
        int *ids = h_buf, *groups = h_buf + BT;
        cudaCheck(cudaMemcpy(ids, inp, (size_t)BT * sizeof(int), cudaMemcpyDeviceToHost));
        int U = group_by_token(groups, groups + BT, groups + 2 * BT + 1, ids, BT);
        int* d = (int*)grow(&d_buf, &d_cap, (size_t)(3 * BT + 1) * sizeof(int));
        cudaCheck(cudaMemcpy(d, groups, (size_t)(3 * BT + 1) * sizeof(int), cudaMemcpyHostToDevice));
        encoder_backward_wte_kernel<<<dim3(U, ceil_div(C, 256)), 256>>>(dwte, dout, d, d + BT, d + 2 * BT + 1, C);
        launchCheck();
    }
    if (dwpe) {
        encoder_backward_wpe_kernel<<<ceil_div((size_t)T * C, 256), 256>>>(dwpe, dout, B, T, C);
        launchCheck();
    }
}

// ---------------------------------------------------------------------------- layernorm
// y = (x - mean) * rstd * w + b over the last axis, rstd = 1/sqrt(var + 1e-5) with the biased variance.
// PyTorch: nn.LayerNorm(C, eps=1e-5)
// y, x: (N,C)   w, b: (C)   mean, rstd: (N), fp32 in both precisions, saved for backward
// One warp per row: lanes stride over the C channels, then warp sums. Two passes, as on the CPU.
template <typename floatX>
__global__ void layernorm_forward_kernel(floatX* y, float* mean, float* rstd, const floatX* x, const floatX* w,
                                         const floatX* b, size_t N, int C) {
    size_t n = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (n >= N) return;
    const floatX* xn = x + n * C;
    float m = 0.0f;
    for (int i = lane; i < C; i += 32) m += to_float(xn[i]);
    m = warp_sum(m) / C;
    float v = 0.0f;
    for (int i = lane; i < C; i += 32) {
        float d = to_float(xn[i]) - m;
        v += d * d;
    }
    v = warp_sum(v) / C;
    float s = 1.0f / sqrtf(v + 1e-5f);  // not rsqrtf: that one is approximate, this rounds like the CPU's
    floatX* yn = y + n * C;
    for (int i = lane; i < C; i += 32) yn[i] = from_float<floatX>((to_float(xn[i]) - m) * s * to_float(w[i]) + to_float(b[i]));
    if (lane == 0) {
        mean[n] = m;
        rstd[n] = s;
    }
}
template <typename floatX>
static void layernorm_forward(floatX* y, float* mean, float* rstd, const floatX* x, const floatX* w, const floatX* b,
                              size_t N, int C) {
    layernorm_forward_kernel<<<ceil_div(N * 32, 256), 256>>>(y, mean, rstd, x, w, b, N, C);
    launchCheck();
}
// forward was y = xhat * w + b with xhat = (x - mean) * rstd. So dw += dy * xhat, db += dy, and with
// g = dy * w:  dx += rstd * (g - mean(g) - xhat * mean(g * xhat))   (mean over the C channels).
// dx: one warp per row, as the forward.
template <typename floatX>
__global__ void layernorm_backward_dx_kernel(floatX* dx, const floatX* dy, const floatX* x, const floatX* w,
                                             const float* mean, const float* rstd, size_t N, int C) {
    size_t n = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (n >= N) return;
    const floatX *dyn = dy + n * C, *xn = x + n * C;
    float m = mean[n], s = rstd[n], gmean = 0.0f, gxmean = 0.0f;
    for (int i = lane; i < C; i += 32) {
        float xhat = (to_float(xn[i]) - m) * s, g = to_float(dyn[i]) * to_float(w[i]);
        gmean += g;
        gxmean += g * xhat;
    }
    gmean = warp_sum(gmean) / C;
    gxmean = warp_sum(gxmean) / C;
    floatX* dxn = dx + n * C;
    for (int i = lane; i < C; i += 32) {
        float xhat = (to_float(xn[i]) - m) * s;
        dxn[i] = from_float<floatX>(to_float(dxn[i]) + s * (to_float(dyn[i]) * to_float(w[i]) - gmean - xhat * gxmean));
    }
}
// dw, db: sums over rows, done like column_sum (stage 1 here, stage 2 is sum_partials_kernel)
template <typename floatX>
__global__ void layernorm_backward_dwdb_kernel(float* pdw, float* pdb, const floatX* dy, const floatX* x,
                                               const float* mean, const float* rstd, size_t N, int C) {
    __shared__ float accw[8][32], accb[8][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    size_t r0 = (size_t)blockIdx.y * COLSUM_ROWS, r1 = r0 + COLSUM_ROWS < N ? r0 + COLSUM_ROWS : N;
    float sw = 0.0f, sb = 0.0f;
    if (c < C)
        for (size_t r = r0 + threadIdx.y; r < r1; r += 8) {
            float d = to_float(dy[r * C + c]);
            sw += d * (to_float(x[r * C + c]) - mean[r]) * rstd[r];
            sb += d;
        }
    accw[threadIdx.y][threadIdx.x] = sw;
    accb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int k = 1; k < 8; k++) {
            sw += accw[k][threadIdx.x];
            sb += accb[k][threadIdx.x];
        }
        pdw[(size_t)blockIdx.y * C + c] = sw;
        pdb[(size_t)blockIdx.y * C + c] = sb;
    }
}
// Accumulates into dx, dw, db; dw and db may be NULL (frozen).
template <typename floatX>
static void layernorm_backward(floatX* dx, float* dw, float* db, const floatX* dy, const floatX* x, const floatX* w,
                               const float* mean, const float* rstd, size_t N, int C) {
    layernorm_backward_dx_kernel<<<ceil_div(N * 32, 256), 256>>>(dx, dy, x, w, mean, rstd, N, C);
    launchCheck();
    if (dw || db) {
        static void* buf;
        static size_t cap;
        int nchunks = (int)ceil_div(N, COLSUM_ROWS);
        float* pdw = (float*)grow(&buf, &cap, 2 * (size_t)nchunks * C * sizeof(float));
        float* pdb = pdw + (size_t)nchunks * C;
        layernorm_backward_dwdb_kernel<<<dim3(ceil_div(C, 32), nchunks), dim3(32, 8)>>>(pdw, pdb, dy, x, mean, rstd, N, C);
        launchCheck();
        if (dw) sum_partials_kernel<<<ceil_div(C, 256), 256>>>(dw, pdw, nchunks, C);
        if (db) sum_partials_kernel<<<ceil_div(C, 256), 256>>>(db, pdb, nchunks, C);
        launchCheck();
    }
}

// ---------------------------------------------------------------------------- matmul
// out = inp @ w^T + bias.  PyTorch: nn.Linear(C, OC) (weight stored (OC, C))
// out: (N,OC)   inp: (N,C)   w: (OC,C)   bias: (OC) or NULL
//
// cuBLAS is column-major: a row-major (R, K) matrix is, to cuBLAS, the column-major (K, R) matrix, its
// transpose. So every product below is written for the transposes: out^T (OC,N) = w (OC,C) . inp^T (C,N),
// where cuBLAS sees w as the column-major (C,OC) matrix w^T and transposes it back (CUBLAS_OP_T).

template <typename T_> constexpr cudaDataType_t cuda_dtype();
template <> constexpr cudaDataType_t cuda_dtype<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t cuda_dtype<bf16>() { return CUDA_R_16BF; }

// Cm = alpha op(A) op(B) + beta Cm, column-major, m x n x k, over `batch` matrices `stride` elements apart.
// A and B of one type (fp32 or bf16), Cm of the same or fp32 (bf16 weight gradients go straight into fp32).
template <typename TA, typename TC>
static void gemm(bool transA, bool transB, int m, int n, int k, const TA* A, int lda, long long strideA, const TA* B,
                 int ldb, long long strideB, float beta, TC* Cm, int ldc, long long strideC, int batch,
                 float alpha = 1.0f) {
    cublasComputeType_t ct = std::is_same<TA, float>::value ? fp32_compute : CUBLAS_COMPUTE_32F;
    cublasOperation_t oa = transA ? CUBLAS_OP_T : CUBLAS_OP_N, ob = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1)
        cublasCheck(cublasGemmEx(cublas_handle, oa, ob, m, n, k, &alpha, A, cuda_dtype<TA>(), lda, B, cuda_dtype<TA>(), ldb,
                                 &beta, Cm, cuda_dtype<TC>(), ldc, ct, CUBLAS_GEMM_DEFAULT));
    else
        cublasCheck(cublasGemmStridedBatchedEx(cublas_handle, oa, ob, m, n, k, &alpha, A, cuda_dtype<TA>(), lda, strideA, B,
                                               cuda_dtype<TA>(), ldb, strideB, &beta, Cm, cuda_dtype<TC>(), ldc, strideC,
                                               batch, ct, CUBLAS_GEMM_DEFAULT));
}

// out[n, o] = bias[o]: one thread per element (the product is then added onto it)
template <typename floatX>
__global__ void fill_bias_kernel(floatX* out, const floatX* bias, size_t N, int OC) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx < N * OC) out[idx] = bias[idx % OC];
}

// The definition, three plain loops, one thread per output element: what tests hold cuBLAS to, and what a
// student can read. (model.h's matmul_forward_ref, on the GPU.)
template <typename floatX>
__global__ void matmul_forward_ref_kernel(floatX* out, const floatX* inp, const floatX* w, const floatX* bias, size_t N,
                                          int C, int OC) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= N * OC) return;
    size_t n = idx / OC;
    int o = (int)(idx % OC);
    float acc = bias ? to_float(bias[o]) : 0.0f;
    for (int i = 0; i < C; i++) acc += to_float(inp[n * C + i]) * to_float(w[(size_t)o * C + i]);
    out[idx] = from_float<floatX>(acc);
}
template <typename floatX>
static void matmul_forward_ref(floatX* out, const floatX* inp, const floatX* w, const floatX* bias, size_t N, int C,
                               int OC) {
    matmul_forward_ref_kernel<<<ceil_div(N * OC, 256), 256>>>(out, inp, w, bias, N, C, OC);
    launchCheck();
}

template <typename floatX>
static void matmul_forward(floatX* out, const floatX* inp, const floatX* w, const floatX* bias, size_t N, int C,
                           int OC) {
    if (bias) {
        fill_bias_kernel<<<ceil_div(N * OC, 256), 256>>>(out, bias, N, OC);
        launchCheck();
    }
    // out^T (OC,N) = op(w as (C,OC))^T . inp^T (C,N)
    gemm<floatX, floatX>(true, false, OC, (int)N, C, w, C, 0, inp, C, 0, bias ? 1.0f : 0.0f, out, OC, 0, 1);
}
// forward was out[n,o] = sum_i inp[n,i] w[o,i] + bias[o], so
//   dinp[n,i] += sum_o dout[n,o] w[o,i]     dw[o,i] += sum_n dout[n,o] inp[n,i]     dbias[o] += sum_n dout[n,o]
// Any of dinp, dw, dbias may be NULL (not needed / frozen). dw and dbias are fp32 in both precisions.
template <typename floatX>
static void matmul_backward(floatX* dinp, float* dw, float* dbias, const floatX* dout, const floatX* inp,
                            const floatX* w, size_t N, int C, int OC) {
    // dinp^T (C,N) += w^T (C,OC) . dout^T (OC,N); to cuBLAS, w (row-major (OC,C)) already is the (C,OC) w^T
    if (dinp) gemm<floatX, floatX>(false, false, C, (int)N, OC, w, C, 0, dout, OC, 0, 1.0f, dinp, C, 0, 1);
    // dw^T (C,OC) += inp^T (C,N) . dout (N,OC)
    if (dw) gemm<floatX, float>(false, true, C, OC, (int)N, inp, C, 0, dout, OC, 0, 1.0f, dw, C, 0, 1);
    if (dbias) column_sum(dbias, dout, N, OC);
}

// ---------------------------------------------------------------------------- residual
// y = x1 + x2.  y, x1, x2: (N). One thread per element.
template <typename floatX>
__global__ void residual_forward_kernel(floatX* y, const floatX* x1, const floatX* x2, size_t N) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < N) y[i] = from_float<floatX>(to_float(x1[i]) + to_float(x2[i]));
}
template <typename floatX>
static void residual_forward(floatX* y, const floatX* x1, const floatX* x2, size_t N) {
    residual_forward_kernel<<<ceil_div(N, 256), 256>>>(y, x1, x2, N);
    launchCheck();
}
// forward was y = x1 + x2, so dx1 += dy and dx2 += dy. As on the CPU, gpt_backward needs no call to it.
template <typename floatX>
__global__ void residual_backward_kernel(floatX* dx1, floatX* dx2, const floatX* dy, size_t N) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= N) return;
    dx1[i] = from_float<floatX>(to_float(dx1[i]) + to_float(dy[i]));
    dx2[i] = from_float<floatX>(to_float(dx2[i]) + to_float(dy[i]));
}
template <typename floatX>
static void residual_backward(floatX* dx1, floatX* dx2, const floatX* dy, size_t N) {
    residual_backward_kernel<<<ceil_div(N, 256), 256>>>(dx1, dx2, dy, N);
    launchCheck();
}

// ---------------------------------------------------------------------------- attention
// Causal multi-head self-attention on a packed qkv, optionally with P prefix keys/values (prefix-tuning)
// that every position attends to. For batch b, head h, query position t, with keys j over the prefix
// (j < P: pk_j, pv_j) and the sequence up to t (j = P + t2, t2 <= t: k_t2, v_t2):
//   s[j] = q_t . key_j / sqrt(hs);  att[j] = softmax(s)[j];  y_t = sum_j att[j] value_j
// PyTorch: F.scaled_dot_product_attention(q, cat(pk, k), cat(pv, v), attn_mask) (is_causal when P = 0)
// out: (B,T,C) heads concatenated   att: (B,NH,T,P+T) probabilities, saved for backward   qkv: (B,T,3C)
// pk, pv: (P,C) this layer's prefix, heads concatenated like q/k/v; NULL when P = 0
// p, seed: dropout on the attention probabilities (model.h); not on the GPU yet, so p must be 0
//
// Per batch row b, the NH heads are one strided batch of cuBLAS products: head h's q is the row-major (T,hs)
// matrix at qkv + b*T*3C + h*hs with row stride 3C (k at +C, v at +2C), and head h+1 starts hs further on.
// So to cuBLAS, q_h is the column-major (hs,T) matrix q_h^T with leading dimension 3C. The prefix is one
// more such matrix (pk_h: (hs,P), leading dimension C), shared by every batch row. A row of scores (and of
// att) is P + T long: the prefix columns first, then the sequence's, so each product writes its own columns.

// Causal softmax of one score row per warp: att[j] = exp(s[j] - max) / sum over j <= P + t, 0 above.
// scores, att: (rows, PT) with row r holding query t = r % T.
template <typename floatX>
__global__ void attention_softmax_kernel(floatX* att, const float* scores, size_t rows, int T, int P) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32, PT = P + T;
    if (r >= rows) return;
    int last = P + (int)(r % T);  // the last key this query sees
    const float* s = scores + r * PT;
    floatX* a = att + r * PT;
    float maxv = -INFINITY;
    for (int j = lane; j <= last; j += 32) maxv = fmaxf(maxv, s[j]);
    maxv = warp_max(maxv);
    float sum = 0.0f;  // subtract the max before exp: same softmax, no overflow
    for (int j = lane; j <= last; j += 32) sum += expf(s[j] - maxv);
    sum = warp_sum(sum);
    for (int j = lane; j < PT; j += 32) a[j] = from_float<floatX>(j <= last ? expf(s[j] - maxv) / sum : 0.0f);
}
template <typename floatX>
static void attention_forward(floatX* out, floatX* att, const floatX* qkv, const floatX* pk, const floatX* pv, int B,
                              int T, int C, int NH, int P, float p, uint64_t seed) {
    if (p > 0.0f) failf("train with --dropout 0 on the GPU, or with ./train", "attention dropout is not on the GPU yet");
    (void)seed;
    int hs = C / NH, PT = P + T;
    float scale = 1.0f / sqrtf((float)hs);
    long long TPT = (long long)T * PT;
    static void* buf;
    static size_t cap;
    float* scores = (float*)grow(&buf, &cap, (size_t)NH * TPT * sizeof(float));  // one batch row's scores
    for (int b = 0; b < B; b++) {
        const floatX* q = qkv + (size_t)b * T * 3 * C;
        const floatX *k = q + C, *v = q + 2 * C;
        floatX* att_b = att + (size_t)b * NH * TPT;
        floatX* y = out + (size_t)b * T * C;
        // scores[h][t][j] = scale * q_t . key_j: as column-major (PT,T) per head, scores^T = key . q^T
        if (P) gemm<floatX, float>(true, false, P, T, hs, pk, C, hs, q, 3 * C, hs, 0.0f, scores, PT, TPT, NH, scale);
        gemm<floatX, float>(true, false, T, T, hs, k, 3 * C, hs, q, 3 * C, hs, 0.0f, scores + P, PT, TPT, NH, scale);
        attention_softmax_kernel<<<ceil_div((size_t)NH * T * 32, 256), 256>>>(att_b, scores, (size_t)NH * T, T, P);
        launchCheck();
        // y[t][i] = sum_j att[t][j] value_j[i]: as column-major, y^T (hs,T) = value^T (hs,PT) . att^T (PT,T)
        if (P) gemm<floatX, floatX>(false, false, hs, T, P, pv, C, hs, att_b, PT, TPT, 0.0f, y, C, hs, NH);
        gemm<floatX, floatX>(false, false, hs, T, T, v, 3 * C, hs, att_b + P, PT, TPT, P ? 1.0f : 0.0f, y, C, hs, NH);
    }
}
// forward was y_t = sum_j att[j] value_j, att = softmax(s), s[j] = q_t.key_j * scale. So, per query row t:
//   dvalue_j += att[j] dy_t;  datt[j] = dy_t . value_j;
//   ds[j] = att[j] (datt[j] - sum_i att[i] datt[i])     (softmax backward)
//   dq_t += sum_j ds[j] key_j * scale;  dkey_j += ds[j] q_t * scale
// Softmax backward, one row per warp: ds = att * (datt - att.datt) * scale, into ds (the storage type, as it
// is the input of the next products).
template <typename floatX>
__global__ void attention_softmax_backward_kernel(floatX* ds, const float* datt, const floatX* att, size_t rows, int T,
                                                  int P, float scale) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32, PT = P + T;
    if (r >= rows) return;
    int last = P + (int)(r % T);
    const float* d = datt + r * PT;
    const floatX* a = att + r * PT;
    float dot = 0.0f;
    for (int j = lane; j <= last; j += 32) dot += to_float(a[j]) * d[j];
    dot = warp_sum(dot);
    for (int j = lane; j < PT; j += 32)
        ds[r * PT + j] = from_float<floatX>(j <= last ? to_float(a[j]) * (d[j] - dot) * scale : 0.0f);
}
// Accumulates into dqkv, and into dpk, dpv (fp32, parameter gradients) unless NULL. The batch rows are
// walked in order, so the prefix gradients, shared by all rows, are summed in a fixed order.
template <typename floatX>
static void attention_backward(floatX* dqkv, float* dpk, float* dpv, const floatX* dout, const floatX* qkv,
                               const floatX* pk, const floatX* pv, const floatX* att, int B, int T, int C, int NH,
                               int P, float p, uint64_t seed) {
    if (p > 0.0f) failf("train with --dropout 0 on the GPU, or with ./train", "attention dropout is not on the GPU yet");
    (void)seed;
    int hs = C / NH, PT = P + T;
    float scale = 1.0f / sqrtf((float)hs);
    long long TPT = (long long)T * PT;
    static void *buf1, *buf2;
    static size_t cap1, cap2;
    float* datt = (float*)grow(&buf1, &cap1, (size_t)NH * TPT * sizeof(float));
    floatX* ds = (floatX*)grow(&buf2, &cap2, (size_t)NH * TPT * sizeof(floatX));
    for (int b = 0; b < B; b++) {
        const floatX* q = qkv + (size_t)b * T * 3 * C;
        const floatX *k = q + C, *v = q + 2 * C;
        floatX* dq = dqkv + (size_t)b * T * 3 * C;
        floatX *dk = dq + C, *dv = dq + 2 * C;
        const floatX* dy = dout + (size_t)b * T * C;
        const floatX* att_b = att + (size_t)b * NH * TPT;
        // datt[t][j] = dy_t . value_j: column-major datt^T (PT,T) = value . dy^T
        if (P) gemm<floatX, float>(true, false, P, T, hs, pv, C, hs, dy, C, hs, 0.0f, datt, PT, TPT, NH);
        gemm<floatX, float>(true, false, T, T, hs, v, 3 * C, hs, dy, C, hs, 0.0f, datt + P, PT, TPT, NH);
        attention_softmax_backward_kernel<<<ceil_div((size_t)NH * T * 32, 256), 256>>>(ds, datt, att_b, (size_t)NH * T, T,
                                                                                        P, scale);
        launchCheck();
        // dq[t][i] += sum_j ds[t][j] key_j[i]:  dq^T (hs,T) += key^T (hs,PT) . ds^T (PT,T)
        if (P) gemm<floatX, floatX>(false, false, hs, T, P, pk, C, hs, ds, PT, TPT, 1.0f, dq, 3 * C, hs, NH);
        gemm<floatX, floatX>(false, false, hs, T, T, k, 3 * C, hs, ds + P, PT, TPT, 1.0f, dq, 3 * C, hs, NH);
        // dk[t2][i] += sum_t ds[t][P+t2] q[t][i]:  dk^T (hs,T) += q^T (hs,T) . ds[:, P:] (T,T)
        gemm<floatX, floatX>(false, true, hs, T, T, q, 3 * C, hs, ds + P, PT, TPT, 1.0f, dk, 3 * C, hs, NH);
        // dv[t2][i] += sum_t att[t][P+t2] dy[t][i]:  dv^T (hs,T) += dy^T (hs,T) . att[:, P:] (T,T)
        gemm<floatX, floatX>(false, true, hs, T, T, dy, C, hs, att_b + P, PT, TPT, 1.0f, dv, 3 * C, hs, NH);
        // the prefix, the same with the first P columns, into fp32 gradients: dpk^T (hs,P) += q^T . ds[:, :P]
        if (P && dpk) gemm<floatX, float>(false, true, hs, P, T, q, 3 * C, hs, ds, PT, TPT, 1.0f, dpk, C, hs, NH);
        if (P && dpv) gemm<floatX, float>(false, true, hs, P, T, dy, C, hs, att_b, PT, TPT, 1.0f, dpv, C, hs, NH);
    }
}

// ---------------------------------------------------------------------------- gelu
// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).  PyTorch: nn.GELU(approximate='tanh')
// y, x: (N). One thread per element.
template <typename floatX>
__global__ void gelu_forward_kernel(floatX* y, const floatX* x, size_t N) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= N) return;
    float xi = to_float(x[i]);
    y[i] = from_float<floatX>(0.5f * xi * (1.0f + tanhf(GELU_SCALE * (xi + 0.044715f * xi * xi * xi))));
}
template <typename floatX>
static void gelu_forward(floatX* y, const floatX* x, size_t N) {
    gelu_forward_kernel<<<ceil_div(N, 256), 256>>>(y, x, N);
    launchCheck();
}
// forward was y = 0.5 x (1 + tanh(u)), u = s (x + 0.044715 x^3), so
//   dy/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) s (1 + 3 * 0.044715 x^2).  Accumulates into dx.
template <typename floatX>
__global__ void gelu_backward_kernel(floatX* dx, const floatX* x, const floatX* dy, size_t N) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= N) return;
    float xi = to_float(x[i]);
    float th = tanhf(GELU_SCALE * (xi + 0.044715f * xi * xi * xi));
    float grad = 0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * xi * xi);
    dx[i] = from_float<floatX>(to_float(dx[i]) + grad * to_float(dy[i]));
}
template <typename floatX>
static void gelu_backward(floatX* dx, const floatX* x, const floatX* dy, size_t N) {
    gelu_backward_kernel<<<ceil_div(N, 256), 256>>>(dx, x, dy, N);
    launchCheck();
}

// ---------------------------------------------------------------------------- softmax + cross-entropy
// probs = softmax(logits[:V]); loss[n] = -log(probs[n, target[n]]); targets of -1 are ignored (loss 0).
// Returns the mean loss over the non-ignored positions, or NaN when every target is ignored (undefined).
// PyTorch: F.cross_entropy(logits[..., :V].view(-1, V), targets.view(-1), ignore_index=-1)
// probs: (N,Vp), zero in the padded columns   losses: (N), fp32   logits: (N,Vp)   targets: (N), on the device
// One block per row n: block max, then the normaliser z summed in double (as on the CPU), then probs.
template <typename floatX>
__global__ void crossentropy_forward_kernel(floatX* probs, float* losses, const floatX* logits, const int* targets,
                                            int V, int Vp) {
    __shared__ float fshared[32];
    __shared__ double dshared[32];
    size_t n = blockIdx.x;
    const floatX* lg = logits + n * Vp;
    floatX* p = probs + n * Vp;
    float maxv = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) maxv = fmaxf(maxv, to_float(lg[i]));
    // block max: warp max, then the warp maxima (a max needs no identity trick: repeat a real value)
    maxv = warp_max(maxv);
    __syncthreads();
    if (threadIdx.x % 32 == 0) fshared[threadIdx.x / 32] = maxv;
    __syncthreads();
    maxv = fshared[threadIdx.x % 32 < blockDim.x / 32 ? threadIdx.x % 32 : 0];
    maxv = warp_max(maxv);
    double z = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) z += (double)expf(to_float(lg[i]) - maxv);
    z = block_reduce(z, dshared, WarpSum());
    float inv = (float)(1.0 / z);
    for (int i = threadIdx.x; i < Vp; i += blockDim.x)
        p[i] = from_float<floatX>(i < V ? expf(to_float(lg[i]) - maxv) * inv : 0.0f);
    if (threadIdx.x == 0) {
        int tg = targets[n];
        // -log p[tg] = log z - (lg[tg] - max): exact even when p[tg] underflows to 0
        losses[n] = tg < 0 ? 0.0f : (float)(log(z) - (double)(to_float(lg[tg]) - maxv));
    }
}
template <typename floatX>
static float crossentropy_forward(floatX* probs, float* losses, const floatX* logits, const int* targets, size_t N,
                                  int V, int Vp) {
    crossentropy_forward_kernel<<<(unsigned)N, 256>>>(probs, losses, logits, targets, V, Vp);
    launchCheck();
    // the mean on the host, in double, in the CPU's order: the same number whatever the kernel's schedule
    float* h_losses = (float*)mallocCheck(N * sizeof(float));
    int* h_targets = (int*)mallocCheck(N * sizeof(int));
    cudaCheck(cudaMemcpy(h_losses, losses, N * sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(h_targets, targets, N * sizeof(int), cudaMemcpyDeviceToHost));
    double sum = 0.0;
    size_t count = 0;
    for (size_t n = 0; n < N; n++) {
        if (h_targets[n] < 0) continue;
        sum += h_losses[n];
        count++;
    }
    free(h_losses);
    free(h_targets);
    return count ? (float)(sum / count) : NAN;
}
// forward was loss = mean_n -log softmax(logits_n)[target_n], so for a kept position
//   dlogits[n,i] = (probs[n,i] - [i == target_n]) / count,  and 0 for ignored positions and padded columns.
// Writes (=) dlogits. scale multiplies the whole gradient (1 normally; gradient accumulation weights each
// micro-batch by its share of the targets). count: one block counts the kept targets (integer atomics:
// exact), then one thread per element of dlogits.
__global__ void count_targets_kernel(int* count, const int* targets, size_t N) {
    __shared__ int c;
    if (threadIdx.x == 0) c = 0;
    __syncthreads();
    int mine = 0;
    for (size_t n = threadIdx.x; n < N; n += blockDim.x) mine += targets[n] >= 0;
    atomicAdd(&c, mine);
    __syncthreads();
    if (threadIdx.x == 0) *count = c;
}
template <typename floatX>
__global__ void crossentropy_backward_kernel(floatX* dlogits, const floatX* probs, const int* targets, const int* count,
                                             size_t N, int V, int Vp, float scale) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= N * Vp) return;
    size_t n = idx / Vp;
    int i = (int)(idx % Vp), tg = targets[n];
    float w = *count ? scale / *count : 0.0f;
    float d = 0.0f;
    if (tg >= 0 && i < V) d = to_float(probs[idx]) * w - (i == tg ? w : 0.0f);
    dlogits[idx] = from_float<floatX>(d);
}
template <typename floatX>
static void crossentropy_backward(floatX* dlogits, const floatX* probs, const int* targets, size_t N, int V, int Vp,
                                  float scale) {
    static void* buf;
    static size_t cap;
    int* count = (int*)grow(&buf, &cap, sizeof(int));
    count_targets_kernel<<<1, 1024>>>(count, targets, N);
    launchCheck();
    crossentropy_backward_kernel<<<ceil_div(N * Vp, 256), 256>>>(dlogits, probs, targets, count, N, V, Vp, scale);
    launchCheck();
}

// ---------------------------------------------------------------------------- the model
// gpu::GPT mirrors ::GPT (model.h) field for field, on the device, plus what mixed precision adds. The
// trainable set and the gradients' packing are the host model's (copied from it): only trainable slices have
// gradients and AdamW state, packed in table order, exactly as on the CPU, so checkpoints carry over.
enum Precision { PREC_FP32, PREC_TF32, PREC_BF16 };
static const char* precision_name(Precision p) { return p == PREC_BF16 ? "bf16" : p == PREC_TF32 ? "tf32" : "fp32"; }

struct GPT {
    GPTConfig config;
    Precision precision;
    ParameterTensors params;   // fp32 master weights, shapes: PARAM_TABLE (device)
    float* params_memory;
    size_t num_parameters;
    ParameterTensors paramsx;  // the weights the kernels read: == params in fp32; in bf16, a bf16 copy (the
    void* paramsx_memory;      //   pointers are bf16*, stored as float* and cast back by X<bf16>); NULL in fp32
    size_t* grad_offset;       // (NUM_PARAMS, L), host: a slice's offset in grads/m/v, SIZE_MAX when frozen
    float* lr_scale;           // (NUM_PARAMS, L), host: learning-rate multiplier (layer-wise decay)
    float* grads_memory;       // fp32 in both precisions, num_trainable floats; allocated on the first backward
    size_t num_trainable;
    float* m_memory;           // AdamW first moment (fp32), allocated on the first update
    float* v_memory;           // AdamW second moment
    ActivationTensors acts;    // shapes: ACT_TABLE at (B, T); element type floatX, except act_is_fp32 ones
    void* acts_memory;
    GradActTensors gacts;      // shapes: GRAD_ACT_TABLE at (B, T); element type floatX
    void* gacts_memory;
    int B, T;                  // the batch shape the activations were allocated for (0 before the first forward)
    int* inputs;               // (B,T) device copy of the last forward's inputs
    int* targets;              // (B,T) device copy of the last forward's targets (-1 = ignore)
    float grad_scale;          // pending gradient clipping factor, applied by the next AdamW update (1 = none)
    float loss_scale;          // backward differentiates loss_scale * loss (1; gradient accumulation sets it)
    float mean_loss;           // the last forward's loss; NaN when no targets
};

// The union fields are float*; in bf16 the activations and the weight copy are bf16. X<floatX>(p) is the
// same pointer, typed as what it points to.
template <typename floatX> __host__ __device__ inline floatX* X(float* p) { return reinterpret_cast<floatX*>(p); }

// LayerNorm statistics and the per-position losses are fp32 in both precisions (see Differences, 8).
static int act_is_fp32(const char* name) {
    return strstr(name, "_mean") || strstr(name, "_rstd") || !strcmp(name, "losses");
}
static size_t act_size(Precision p) { return p == PREC_BF16 ? sizeof(bf16) : sizeof(float); }

// What the GPU does not do yet stops here, with the CPU as the way out (see Differences, 9).
static void check_supported(const GPTConfig* c) {
    const char* what = c->lora_r ? "LoRA" : c->adapter_dim ? "adapters" : c->num_classes ? "a classification head"
                     : c->num_tags ? "a token-classification head"
                     : c->arch == ARCH_LLAMA ? "the llama architecture (RMSNorm, RoPE, grouped-query attention, SwiGLU)"
                     : c->arch != ARCH_GPT2 ? "the encoder architecture (bidirectional attention, masked-LM batches)" : NULL;
    if (what)
        failf("train and evaluate it with ./train for now (the CUDA mirror of lora.c is the next step)",
              "this model uses %s, which is not on the GPU yet", what);
}

// The gradient of slice (i, l) (l = 0 for tensors without a layer axis) on the device, or NULL when it is
// frozen or empty. (::gpt_grad's mirror.)
static float* gpt_grad(const GPT* model, int i, int l) {
    if (!model->grads_memory) return NULL;
    size_t off = model->grad_offset[(size_t)i * model->config.L + l];
    return off == SIZE_MAX ? NULL : model->grads_memory + off;
}

// Re-rounds the bf16 weight copy from the fp32 master weights: one thread per element.
__global__ void round_to_bf16_kernel(bf16* dst, const float* src, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16(src[i]);
}
static void gpt_sync_weight_copy(GPT* model) {
    if (!model->paramsx_memory) return;
    size_t n = model->num_parameters;
    round_to_bf16_kernel<<<ceil_div(n, 256), 256>>>((bf16*)model->paramsx_memory, model->params_memory, n);
    launchCheck();
}

// Host model -> device model: the parameters, the trainable set and its packing, the LR scales, and the
// AdamW state when the host model has one (a resumed run). The host's trainable set is final from here on
// (::gpt_alloc_grads fixes the packing, as the first backward would).
static void gpt_from_host(GPT* model, ::GPT* host, Precision precision) {
    device_init();
    const GPTConfig* c = &host->config;
    check_supported(c);
    if (!host->grads_memory) ::gpt_alloc_grads(host);
    memset(model, 0, sizeof(*model));
    model->config = *c;
    model->precision = precision;
    model->num_parameters = host->num_parameters;
    model->num_trainable = host->num_trainable;
    size_t np = model->num_parameters, ns = (size_t)NUM_PARAMS * c->L;
    model->grad_offset = (size_t*)mallocCheck(ns * sizeof(size_t));
    model->lr_scale = (float*)mallocCheck(ns * sizeof(float));
    memcpy(model->grad_offset, host->grad_offset, ns * sizeof(size_t));
    memcpy(model->lr_scale, host->lr_scale, ns * sizeof(float));
    cudaCheck(cudaMalloc(&model->params_memory, np * sizeof(float)));
    cudaCheck(cudaMemcpy(model->params_memory, host->params_memory, np * sizeof(float), cudaMemcpyHostToDevice));
    point_parameters(&model->params, model->params_memory, c);
    if (precision == PREC_BF16) {
        cudaCheck(cudaMalloc(&model->paramsx_memory, np * sizeof(bf16)));
        for (int i = 0; i < NUM_PARAMS; i++)
            model->paramsx.t[i] = (float*)((bf16*)model->paramsx_memory + (host->params.t[i] - host->params_memory));
        gpt_sync_weight_copy(model);
    } else {
        model->paramsx = model->params;
    }
    if (host->m_memory) {
        size_t bytes = model->num_trainable * sizeof(float);
        cudaCheck(cudaMalloc(&model->m_memory, bytes + 4));
        cudaCheck(cudaMalloc(&model->v_memory, bytes + 4));
        cudaCheck(cudaMemcpy(model->m_memory, host->m_memory, bytes, cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(model->v_memory, host->v_memory, bytes, cudaMemcpyHostToDevice));
    }
    model->grad_scale = 1.0f;
    model->loss_scale = 1.0f;
    model->mean_loss = NAN;
}

// Device model -> host model (the one it came from): the parameters and, when there is one, the AdamW state.
// This is how the GPU writes checkpoints: with train.c's save_checkpoint, on the host copy.
static void gpt_to_host(::GPT* host, const GPT* model) {
    cudaCheck(cudaMemcpy(host->params_memory, model->params_memory, model->num_parameters * sizeof(float),
                         cudaMemcpyDeviceToHost));
    if (model->m_memory) {
        size_t bytes = model->num_trainable * sizeof(float);
        if (!host->m_memory) {
            host->m_memory = (float*)mallocCheck(bytes + 4);
            host->v_memory = (float*)mallocCheck(bytes + 4);
        }
        cudaCheck(cudaMemcpy(host->m_memory, model->m_memory, bytes, cudaMemcpyDeviceToHost));
        cudaCheck(cudaMemcpy(host->v_memory, model->v_memory, bytes, cudaMemcpyDeviceToHost));
    }
}

static void gpt_free(GPT* model) {
    free(model->grad_offset);
    free(model->lr_scale);
    cudaCheck(cudaFree(model->params_memory));
    cudaCheck(cudaFree(model->paramsx_memory));
    cudaCheck(cudaFree(model->grads_memory));
    cudaCheck(cudaFree(model->m_memory));
    cudaCheck(cudaFree(model->v_memory));
    cudaCheck(cudaFree(model->acts_memory));
    cudaCheck(cudaFree(model->gacts_memory));
    cudaCheck(cudaFree(model->inputs));
    cudaCheck(cudaFree(model->targets));
    memset(model, 0, sizeof(*model));
}

// (Re)allocates activations for a batch shape: one block per table, carved into tensors. The activation
// gradients wait for the first backward (inference never needs them).
static void gpt_alloc_activations(GPT* model, int B, int T) {
    if (model->B == B && model->T == T) return;
    const GPTConfig* c = &model->config;
    cudaCheck(cudaFree(model->acts_memory));
    cudaCheck(cudaFree(model->gacts_memory));
    cudaCheck(cudaFree(model->inputs));
    cudaCheck(cudaFree(model->targets));
    size_t bytes = 0, xs = act_size(model->precision);
    for (int i = 0; i < NUM_ACTS; i++)
        bytes += shape_numel(ACT_TABLE[i].shape, c, B, T) * (act_is_fp32(ACT_TABLE[i].name) ? sizeof(float) : xs);
    cudaCheck(cudaMalloc(&model->acts_memory, bytes));
    cudaCheck(cudaMemset(model->acts_memory, 0, bytes));
    char* p = (char*)model->acts_memory;
    for (int i = 0; i < NUM_ACTS; i++) {
        model->acts.t[i] = (float*)p;
        p += shape_numel(ACT_TABLE[i].shape, c, B, T) * (act_is_fp32(ACT_TABLE[i].name) ? sizeof(float) : xs);
    }
    model->gacts_memory = NULL;
    cudaCheck(cudaMalloc(&model->inputs, (size_t)B * T * sizeof(int)));
    cudaCheck(cudaMalloc(&model->targets, (size_t)B * T * sizeof(int)));
    model->B = B;
    model->T = T;
}

// Sets what cuBLAS does with fp32 inputs for this model's precision (a process-wide cuBLAS setting).
static void use_precision(const GPT* model) {
    fp32_compute = model->precision == PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

// The body of the forward pass, line for line ::gpt_forward_body's (the base model and prefix-tuning).
template <typename floatX>
static void gpt_forward_body(GPT* model) {
    const GPTConfig* c = &model->config;
    int B = model->B, T = model->T;
    size_t BT = (size_t)B * T;
    int C = c->C, L = c->L, NH = c->NH, P = c->prefix_len, PT = P + T;
    ParameterTensors p = model->paramsx;
    ActivationTensors a = model->acts;
    encoder_forward(X<floatX>(a.encoded), model->inputs, X<floatX>(p.wte), X<floatX>(p.wpe), B, T, C);
    for (int l = 0; l < L; l++) {
        const floatX* residual = l == 0 ? X<floatX>(a.encoded) : X<floatX>(a.residual3) + (size_t)(l - 1) * BT * C;
        // this layer's slices of weights and activations
        const floatX* l_ln1w = X<floatX>(p.ln1w) + (size_t)l * C;
        const floatX* l_ln1b = X<floatX>(p.ln1b) + (size_t)l * C;
        const floatX* l_qkvw = X<floatX>(p.qkvw) + (size_t)l * 3 * C * C;
        const floatX* l_qkvb = X<floatX>(p.qkvb) + (size_t)l * 3 * C;
        const floatX* l_attprojw = X<floatX>(p.attprojw) + (size_t)l * C * C;
        const floatX* l_attprojb = X<floatX>(p.attprojb) + (size_t)l * C;
        const floatX* l_ln2w = X<floatX>(p.ln2w) + (size_t)l * C;
        const floatX* l_ln2b = X<floatX>(p.ln2b) + (size_t)l * C;
        const floatX* l_fcw = X<floatX>(p.fcw) + (size_t)l * 4 * C * C;
        const floatX* l_fcb = X<floatX>(p.fcb) + (size_t)l * 4 * C;
        const floatX* l_fcprojw = X<floatX>(p.fcprojw) + (size_t)l * C * 4 * C;
        const floatX* l_fcprojb = X<floatX>(p.fcprojb) + (size_t)l * C;
        floatX* l_ln1 = X<floatX>(a.ln1) + (size_t)l * BT * C;
        float* l_ln1_mean = a.ln1_mean + (size_t)l * BT;
        float* l_ln1_rstd = a.ln1_rstd + (size_t)l * BT;
        floatX* l_qkv = X<floatX>(a.qkv) + (size_t)l * BT * 3 * C;
        floatX* l_atty = X<floatX>(a.atty) + (size_t)l * BT * C;
        floatX* l_att = X<floatX>(a.att) + (size_t)l * B * NH * T * PT;
        floatX* l_attproj = X<floatX>(a.attproj) + (size_t)l * BT * C;
        floatX* l_residual2 = X<floatX>(a.residual2) + (size_t)l * BT * C;
        floatX* l_ln2 = X<floatX>(a.ln2) + (size_t)l * BT * C;
        float* l_ln2_mean = a.ln2_mean + (size_t)l * BT;
        float* l_ln2_rstd = a.ln2_rstd + (size_t)l * BT;
        floatX* l_fch = X<floatX>(a.fch) + (size_t)l * BT * 4 * C;
        floatX* l_fch_gelu = X<floatX>(a.fch_gelu) + (size_t)l * BT * 4 * C;
        floatX* l_fcproj = X<floatX>(a.fcproj) + (size_t)l * BT * C;
        floatX* l_residual3 = X<floatX>(a.residual3) + (size_t)l * BT * C;

        layernorm_forward(l_ln1, l_ln1_mean, l_ln1_rstd, residual, l_ln1w, l_ln1b, BT, C);
        matmul_forward(l_qkv, l_ln1, l_qkvw, l_qkvb, BT, C, 3 * C);
        attention_forward(l_atty, l_att, l_qkv, P ? X<floatX>(p.prefix_k) + (size_t)l * P * C : (const floatX*)NULL,
                          P ? X<floatX>(p.prefix_v) + (size_t)l * P * C : (const floatX*)NULL, B, T, C, NH, P, 0.0f, 0);
        matmul_forward(l_attproj, l_atty, l_attprojw, l_attprojb, BT, C, C);
        residual_forward(l_residual2, residual, l_attproj, BT * C);
        layernorm_forward(l_ln2, l_ln2_mean, l_ln2_rstd, l_residual2, l_ln2w, l_ln2b, BT, C);
        matmul_forward(l_fch, l_ln2, l_fcw, l_fcb, BT, C, 4 * C);
        gelu_forward(l_fch_gelu, l_fch, BT * 4 * C);
        matmul_forward(l_fcproj, l_fch_gelu, l_fcprojw, l_fcprojb, BT, 4 * C, C);
        residual_forward(l_residual3, l_residual2, l_fcproj, BT * C);
    }
    const floatX* residual = X<floatX>(a.residual3) + (size_t)(L - 1) * BT * C;
    layernorm_forward(X<floatX>(a.lnf), a.lnf_mean, a.lnf_rstd, residual, X<floatX>(p.lnfw), X<floatX>(p.lnfb), BT, C);
    matmul_forward(X<floatX>(a.logits), X<floatX>(a.lnf), X<floatX>(p.wte), (const floatX*)NULL, BT, C, c->Vp);  // tied LM head
    model->mean_loss = crossentropy_forward(X<floatX>(a.probs), a.losses, X<floatX>(a.logits), model->targets, BT, c->V, c->Vp);
}

// Forward pass with the LM head: the same contract as ::gpt_forward. inputs, targets are host arrays (B,T);
// targets may be NULL (inference). Fills acts and model->mean_loss (NaN without targets).
static void gpt_forward(GPT* model, const int* inputs, const int* targets, int B, int T) {
    const GPTConfig* c = &model->config;
    if (T > c->maxT) {
        char msg[160];
        snprintf(msg, sizeof msg, "sequence length T=%d is longer than the model's maxT=%d", T, c->maxT);
        DIE(msg, "use a smaller --seq");
    }
    long bad = gpt_check_tokens(c, inputs, targets, (size_t)B * T);
    if (bad >= 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "token id out of range at batch position %ld: input %d, target %d, vocab V=%d",
                 bad, inputs[bad], targets ? targets[bad] : -1, c->V);
        DIE(msg, "the data was tokenized for a different vocabulary than the model's");
    }
    gpt_alloc_activations(model, B, T);
    size_t BT = (size_t)B * T;
    cudaCheck(cudaMemcpy(model->inputs, inputs, BT * sizeof(int), cudaMemcpyHostToDevice));
    if (targets) {
        cudaCheck(cudaMemcpy(model->targets, targets, BT * sizeof(int), cudaMemcpyHostToDevice));
    } else {
        cudaCheck(cudaMemset(model->targets, 0xff, BT * sizeof(int)));  // every byte 0xff: every int -1
    }
    use_precision(model);
    if (model->precision == PREC_BF16) gpt_forward_body<bf16>(model);
    else gpt_forward_body<float>(model);
}

// The lowest layer backward must reach: below it nothing is trainable. (::gpt_lowest_trainable_layer.)
static int gpt_lowest_trainable_layer(const GPT* model) {
    const GPTConfig* c = &model->config;
    if (gpt_grad(model, PIDX(wte), 0) || gpt_grad(model, PIDX(wpe), 0)) return -1;
    for (int l = 0; l < c->L; l++)
        for (int i = 0; i < NUM_PARAMS; i++)
            if (param_per_layer(i) && gpt_grad(model, i, l)) return l;
    return c->L;
}

static void gpt_zero_grad(GPT* model) {
    if (model->grads_memory) cudaCheck(cudaMemset(model->grads_memory, 0, model->num_trainable * sizeof(float)));
}

// The backward pass, line for line ::gpt_backward's (the base model and prefix-tuning). Frozen slices get
// no gradient (NULL pointers into the kernels).
template <typename floatX>
static void gpt_backward_body(GPT* model) {
    const GPTConfig* c = &model->config;
    int B = model->B, T = model->T, C = c->C, L = c->L, NH = c->NH, P = c->prefix_len, PT = P + T;
    size_t BT = (size_t)B * T, xs = sizeof(floatX);
    ParameterTensors p = model->paramsx;
    ActivationTensors a = model->acts;
    GradActTensors ga = model->gacts;
    floatX *dlogits = X<floatX>(ga.dlogits), *dresidual = X<floatX>(ga.dresidual), *dln = X<floatX>(ga.dln);
    floatX *dqkv = X<floatX>(ga.dqkv), *datty = X<floatX>(ga.datty), *dfch = X<floatX>(ga.dfch);
    floatX* dfch_gelu = X<floatX>(ga.dfch_gelu);
#define G(name, l) gpt_grad(model, PIDX(name), l)

    cudaCheck(cudaMemset(dln, 0, BT * C * xs));
    crossentropy_backward(dlogits, X<floatX>(a.probs), model->targets, BT, c->V, c->Vp, model->loss_scale);
    matmul_backward(dln, G(wte, 0), (float*)NULL, dlogits, X<floatX>(a.lnf), X<floatX>(p.wte), BT, C, c->Vp);
    cudaCheck(cudaMemset(dresidual, 0, BT * C * xs));
    layernorm_backward(dresidual, G(lnfw, 0), G(lnfb, 0), dln, X<floatX>(a.residual3) + (size_t)(L - 1) * BT * C,
                       X<floatX>(p.lnfw), a.lnf_mean, a.lnf_rstd, BT, C);
    int lowest = gpt_lowest_trainable_layer(model);
    for (int l = L - 1; l >= 0 && l >= lowest; l--) {
        const floatX* residual = l == 0 ? X<floatX>(a.encoded) : X<floatX>(a.residual3) + (size_t)(l - 1) * BT * C;
        const floatX* l_ln1w = X<floatX>(p.ln1w) + (size_t)l * C;
        const floatX* l_qkvw = X<floatX>(p.qkvw) + (size_t)l * 3 * C * C;
        const floatX* l_attprojw = X<floatX>(p.attprojw) + (size_t)l * C * C;
        const floatX* l_ln2w = X<floatX>(p.ln2w) + (size_t)l * C;
        const floatX* l_fcw = X<floatX>(p.fcw) + (size_t)l * 4 * C * C;
        const floatX* l_fcprojw = X<floatX>(p.fcprojw) + (size_t)l * C * 4 * C;
        const floatX* l_ln1 = X<floatX>(a.ln1) + (size_t)l * BT * C;
        const float* l_ln1_mean = a.ln1_mean + (size_t)l * BT;
        const float* l_ln1_rstd = a.ln1_rstd + (size_t)l * BT;
        const floatX* l_qkv = X<floatX>(a.qkv) + (size_t)l * BT * 3 * C;
        const floatX* l_atty = X<floatX>(a.atty) + (size_t)l * BT * C;
        const floatX* l_att = X<floatX>(a.att) + (size_t)l * B * NH * T * PT;
        const floatX* l_residual2 = X<floatX>(a.residual2) + (size_t)l * BT * C;
        const floatX* l_ln2 = X<floatX>(a.ln2) + (size_t)l * BT * C;
        const float* l_ln2_mean = a.ln2_mean + (size_t)l * BT;
        const float* l_ln2_rstd = a.ln2_rstd + (size_t)l * BT;
        const floatX* l_fch = X<floatX>(a.fch) + (size_t)l * BT * 4 * C;
        const floatX* l_fch_gelu = X<floatX>(a.fch_gelu) + (size_t)l * BT * 4 * C;

        // residual3 = residual2 + fcproj: dresidual is read as d(fcproj), then becomes d(residual2) as
        // LayerNorm 2's backward adds its part into it (see ::gpt_backward). Same for residual2.
        cudaCheck(cudaMemset(dfch_gelu, 0, BT * 4 * C * xs));
        matmul_backward(dfch_gelu, G(fcprojw, l), G(fcprojb, l), dresidual, l_fch_gelu, l_fcprojw, BT, 4 * C, C);
        cudaCheck(cudaMemset(dfch, 0, BT * 4 * C * xs));
        gelu_backward(dfch, l_fch, dfch_gelu, BT * 4 * C);
        cudaCheck(cudaMemset(dln, 0, BT * C * xs));
        matmul_backward(dln, G(fcw, l), G(fcb, l), dfch, l_ln2, l_fcw, BT, C, 4 * C);
        layernorm_backward(dresidual, G(ln2w, l), G(ln2b, l), dln, l_residual2, l_ln2w, l_ln2_mean, l_ln2_rstd, BT, C);
        // residual2 = residual + attproj: dresidual is now d(residual2), read as d(attproj)
        cudaCheck(cudaMemset(datty, 0, BT * C * xs));
        matmul_backward(datty, G(attprojw, l), G(attprojb, l), dresidual, l_atty, l_attprojw, BT, C, C);
        cudaCheck(cudaMemset(dqkv, 0, BT * 3 * C * xs));
        attention_backward(dqkv, P ? G(prefix_k, l) : (float*)NULL, P ? G(prefix_v, l) : (float*)NULL, datty, l_qkv,
                           P ? X<floatX>(p.prefix_k) + (size_t)l * P * C : (const floatX*)NULL,
                           P ? X<floatX>(p.prefix_v) + (size_t)l * P * C : (const floatX*)NULL, l_att, B, T, C, NH, P,
                           0.0f, 0);
        cudaCheck(cudaMemset(dln, 0, BT * C * xs));
        matmul_backward(dln, G(qkvw, l), G(qkvb, l), dqkv, l_ln1, l_qkvw, BT, C, 3 * C);
        layernorm_backward(dresidual, G(ln1w, l), G(ln1b, l), dln, residual, l_ln1w, l_ln1_mean, l_ln1_rstd, BT, C);
    }
    if (lowest < 0) encoder_backward(G(wte, 0), G(wpe, 0), (const floatX*)dresidual, model->inputs, B, T, C);
#undef G
}

// Backward pass: accumulates (+=) into the gradients of trainable slices, as ::gpt_backward.
static void gpt_backward(GPT* model) {
    const GPTConfig* c = &model->config;
    if (!isfinite(model->mean_loss))
        DIE("backward called without a finite loss", "call gpt_forward with targets first (some not -1)");
    if (!model->grads_memory) {
        size_t bytes = (model->num_trainable ? model->num_trainable : 1) * sizeof(float);
        cudaCheck(cudaMalloc(&model->grads_memory, bytes));
        cudaCheck(cudaMemset(model->grads_memory, 0, bytes));
    }
    if (!model->gacts_memory) {
        size_t n = 0, xs = act_size(model->precision);
        for (int i = 0; i < NUM_GRAD_ACTS; i++) n += shape_numel(GRAD_ACT_TABLE[i].shape, c, model->B, model->T);
        cudaCheck(cudaMalloc(&model->gacts_memory, n * xs));
        cudaCheck(cudaMemset(model->gacts_memory, 0, n * xs));
        char* ptr = (char*)model->gacts_memory;
        for (int i = 0; i < NUM_GRAD_ACTS; i++) {
            model->gacts.t[i] = (float*)ptr;
            ptr += shape_numel(GRAD_ACT_TABLE[i].shape, c, model->B, model->T) * xs;
        }
    }
    use_precision(model);
    if (model->precision == PREC_BF16) gpt_backward_body<bf16>(model);
    else gpt_backward_body<float>(model);
}

// ---------------------------------------------------------------------------- optimizer
// Global L2 norm of all gradients, in double. PyTorch: torch.nn.utils.clip_grad_norm_ computes the same norm.
// One block per 64K-element chunk (the CPU's chunks), then the chunks added in order on the host.
__global__ void grad_norm_partial_kernel(double* partial, const float* g, size_t n, size_t chunk) {
    __shared__ double shared[32];
    size_t begin = blockIdx.x * chunk, end = begin + chunk < n ? begin + chunk : n;
    double s = 0.0;
    for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += (double)g[i] * g[i];
    s = block_reduce(s, shared, WarpSum());
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}
static float gpt_grad_norm(const GPT* model) {
    const size_t chunk = 1 << 16;
    size_t n = model->num_trainable, nchunks = (n + chunk - 1) / chunk;
    if (!nchunks) return 0.0f;
    static void* buf;
    static size_t cap;
    double* partial = (double*)grow(&buf, &cap, nchunks * sizeof(double));
    grad_norm_partial_kernel<<<(unsigned)nchunks, 512>>>(partial, model->grads_memory, n, chunk);
    launchCheck();
    double* h = (double*)mallocCheck(nchunks * sizeof(double));
    cudaCheck(cudaMemcpy(h, partial, nchunks * sizeof(double), cudaMemcpyDeviceToHost));
    double s = 0.0;
    for (size_t k = 0; k < nchunks; k++) s += h[k];
    free(h);
    return (float)sqrt(s);
}

// Clips the gradients so their global norm is at most max_norm, exactly as torch.nn.utils.clip_grad_norm_:
// coef = max_norm / (norm + 1e-6), applied only when coef < 1. Returns the norm before clipping. As on the
// CPU, the multiplication by coef is deferred to the next gpt_adamw_update (model->grad_scale).
static float gpt_clip_grad_norm(GPT* model, float max_norm) {
    float norm = gpt_grad_norm(model);
    model->grad_scale = 1.0f;
    if (max_norm > 0.0f) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f) model->grad_scale = coef;
    }
    return norm;
}

// One AdamW step, exactly torch.optim.AdamW (see ::gpt_adamw_update): one thread per parameter of a slice.
// With a bf16 weight copy (px not NULL) the new fp32 weight is also rounded into it.
//   g *= clip;  p -= lr * wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr * mhat / (sqrt(vhat) + eps)
__global__ void adamw_kernel(float* p, bf16* px, const float* g, float* m, float* v, size_t n, float lr, float b1,
                             float b2, float eps, float decay, float inv_bc1, float inv_bc2, float gs) {
    size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (j >= n) return;
    float gj = g[j] * gs;  // gs: the clipping factor, deferred from gpt_clip_grad_norm
    float mj = b1 * m[j] + (1.0f - b1) * gj;
    float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
    m[j] = mj;
    v[j] = vj;
    float pj = p[j] * decay - lr * (mj * inv_bc1) / (sqrtf(vj * inv_bc2) + eps);
    p[j] = pj;
    if (px) px[j] = __float2bfloat16(pj);
}
// Only trainable slices are touched; each uses lr times its lr_scale (layer-wise decay). One launch per slice.
static void gpt_adamw_update(GPT* model, const AdamWConfig* o, int t) {
    if (!model->grads_memory) DIE("AdamW step before any backward", "");
    size_t bytes = (model->num_trainable ? model->num_trainable : 1) * sizeof(float);
    if (!model->m_memory) {
        cudaCheck(cudaMalloc(&model->m_memory, bytes));
        cudaCheck(cudaMalloc(&model->v_memory, bytes));
        cudaCheck(cudaMemset(model->m_memory, 0, bytes));
        cudaCheck(cudaMemset(model->v_memory, 0, bytes));
    }
    const GPTConfig* c = &model->config;
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float inv_bc1 = 1.0f / (1.0f - powf(b1, (float)t));  // on the host, as the CPU computes them
    const float inv_bc2 = 1.0f / (1.0f - powf(b2, (float)t));
    const float gs = model->grad_scale;  // clipping, deferred from gpt_clip_grad_norm
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = slice_numel(c, i);
        for (int l = 0; l < (param_per_layer(i) ? c->L : 1); l++) {
            size_t k = (size_t)i * c->L + l, off = model->grad_offset[k];
            if (off == SIZE_MAX) continue;
            const float lr = o->lr * model->lr_scale[k];
            const float decay = 1.0f - lr * (PARAM_TABLE[i].decay ? o->weight_decay : 0.0f);
            size_t at = (size_t)(model->params.t[i] - model->params_memory) + (size_t)l * n;  // the slice's first element
            bf16* px = model->paramsx_memory ? (bf16*)model->paramsx_memory + at : NULL;
            adamw_kernel<<<ceil_div(n, 256), 256>>>(model->params_memory + at, px, model->grads_memory + off,
                                                     model->m_memory + off, model->v_memory + off, n, lr, b1, b2, eps,
                                                     decay, inv_bc1, inv_bc2, gs);
            launchCheck();
        }
    }
    model->grad_scale = 1.0f;
}

// Copies the logits row of position `pos` (the first V of Vp) to the host, as fp32.
static void gpt_logits_row(const GPT* model, size_t pos, float* out) {
    const GPTConfig* c = &model->config;
    if (model->precision == PREC_BF16) {
        bf16* tmp = (bf16*)mallocCheck((size_t)c->V * sizeof(bf16));
        cudaCheck(cudaMemcpy(tmp, X<bf16>(model->acts.logits) + pos * c->Vp, (size_t)c->V * sizeof(bf16), cudaMemcpyDeviceToHost));
        for (int i = 0; i < c->V; i++) out[i] = __bfloat162float(tmp[i]);
        free(tmp);
    } else {
        cudaCheck(cudaMemcpy(out, model->acts.logits + pos * c->Vp, (size_t)c->V * sizeof(float), cudaMemcpyDeviceToHost));
    }
}

}  // namespace gpu

// ---------------------------------------------------------------------------- batches and evaluation
// ::batch_forward on the GPU, for evaluate_with: the next batch, then the forward. Returns the number of
// targets the mean loss was taken over. (Classification data never gets here: its model has a class head,
// refused on the GPU.)
static size_t batch_forward_gpu(void* ctx, DataLoader* dl, Batch* b, float* mean_loss, const float** cls_logits) {
    gpu::GPT* model = (gpu::GPT*)ctx;
    loader_next(dl, b->x, b->y, b->len, b->lab, model->config.V);
    if (dl->kind == DATA_CLS) failf("use ./train for classification", "%s: classification is not on the GPU yet", dl->path);
    gpu::gpt_forward(model, b->x, b->y, b->B, b->T);
    *mean_loss = model->mean_loss;
    *cls_logits = NULL;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)b->B * b->T; i++) n += b->y[i] >= 0;
    return n;
}

// ::evaluate on the GPU: host is the model's host copy, for its config and check_data_matches_model.
static EvalResult evaluate_gpu(gpu::GPT* model, const GPT* host, const char* path, int B, int T, int max_batches) {
    return evaluate_with(model, batch_forward_gpu, host, path, B, T, max_batches);
}

// ---------------------------------------------------------------------------- sampling
// ::generate on the GPU: the same windowing, and train.c's sample_next on the logits row copied back.
static int generate_gpu(gpu::GPT* model, Sampler* sampler, const int* prompt, int n, int steps, int* out) {
    int maxT = model->config.maxT;
    memcpy(out, prompt, (size_t)n * sizeof(int));
    int len = n;
    int T = n + steps < maxT ? n + steps : maxT;
    int* window = (int*)callocCheck((size_t)T, sizeof(int));
    float* logits = (float*)mallocCheck((size_t)model->config.V * sizeof(float));
    for (int s = 0; s < steps; s++) {
        int start = len > T ? len - T : 0;  // slide when the context is full
        int wlen = len - start;
        memset(window, 0, (size_t)T * sizeof(int));
        memcpy(window, out + start, (size_t)wlen * sizeof(int));
        gpu::gpt_forward(model, window, NULL, 1, T);
        gpu::gpt_logits_row(model, (size_t)(wlen - 1), logits);
        int next = sample_next(sampler, logits, model->config.V);
        out[len++] = next;
        if (next == sampler->stop_token) break;
    }
    free(window);
    free(logits);
    return len;
}

// ---------------------------------------------------------------------------- command line
// ./train's flags (train.c's parse_args), plus --precision, which is taken out of argv before parse_args.
static gpu::Precision parse_precision(int* argc, char** argv) {
    gpu::Precision p = gpu::PREC_FP32;
    int j = 1;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            printf("train_gpu: the CUDA trainer. ./train's commands and flags (below), plus\n"
                   "  --precision P       fp32 (default; TF32 off) | tf32 (TF32 tensor-core matmuls) | bf16 (mixed precision)\n"
                   "Not on the GPU yet: --method lora|adapter, classification data (use ./train).\n\n");
        if (!strcmp(argv[i], "--precision")) {
            if (i + 1 >= *argc) failf("see ./train_gpu --help", "flag --precision needs a value");
            const char* v = argv[++i];
            if (!strcmp(v, "fp32")) p = gpu::PREC_FP32;
            else if (!strcmp(v, "tf32")) p = gpu::PREC_TF32;
            else if (!strcmp(v, "bf16")) p = gpu::PREC_BF16;
            else failf("use fp32, tf32 or bf16", "unknown --precision '%s'", v);
            continue;
        }
        argv[j++] = argv[i];
    }
    *argc = j;
    return p;
}

static void print_device(gpu::Precision prec) {
    printf("device: %s (%d SMs, %.0f GiB), precision %s%s\n", gpu::device_prop.name, gpu::device_prop.multiProcessorCount,
           gpu::device_prop.totalGlobalMem / 1073741824.0, gpu::precision_name(prec),
           prec == gpu::PREC_FP32 ? " (TF32 off)" : prec == gpu::PREC_BF16 ? " (fp32 master weights and AdamW)" : "");
}

// ---------------------------------------------------------------------------- the GPU backend
// train.c's training loop (run_prepare, run_train, run_finish: the same console lines, JSONL log, run folder,
// checkpoints and report) with the arithmetic of each step on the GPU. The model is built and set up on the
// host by train.c, then copied to the GPU; to_host copies weights and AdamW state back before a file is written.
static void gpu_zero_grad(void* ctx) { gpu::gpt_zero_grad((gpu::GPT*)ctx); }

static float gpu_forward_backward(void* ctx, DataKind kind, const Batch* b, float share, uint64_t dropout_seed) {
    (void)kind, (void)dropout_seed;  // LM and SFT data only (a class head is refused), and no dropout yet
    gpu::GPT* model = (gpu::GPT*)ctx;
    gpu::gpt_forward(model, b->x, b->y, b->B, b->T);
    model->loss_scale = share;
    if (isfinite(model->mean_loss)) gpu::gpt_backward(model);
    model->loss_scale = 1.0f;
    return model->mean_loss;
}

static float gpu_update(void* ctx, Run* r, int t) {
    gpu::GPT* model = (gpu::GPT*)ctx;
    float norm = gpu::gpt_clip_grad_norm(model, r->a->grad_clip);
    gpu::gpt_adamw_update(model, &r->opt, t);
    cudaCheck(cudaDeviceSynchronize());  // the step is done when the GPU is: for the loop's timing
    return norm;
}

static EvalResult gpu_evaluate(void* ctx, const GPT* host, const char* path, int B, int T, int max_batches) {
    return evaluate_gpu((gpu::GPT*)ctx, host, path, B, T, max_batches);
}
static void gpu_to_host(void* ctx, GPT* host) { gpu::gpt_to_host(host, (gpu::GPT*)ctx); }

// Flags whose work is not on the GPU yet (Differences, 9): refused before any work, naming the flag.
static const char* gpu_unsupported(const Args* a, const GPT* model) {
    (void)model;  // LoRA, adapters and a class head are refused by gpt_from_host
    if (a->dropout > 0.0f) return "--dropout";
    if (a->early_stop) return "--early-stop";
    if (a->test) return "--test";
    if (a->keep_sparsity) return "--keep-sparsity";
    return NULL;
}

static int cmd_train_gpu(const Args* a, gpu::Precision prec) {
    Run r;
    Backend be = {NULL, gpu_zero_grad, gpu_forward_backward, gpu_update, gpu_evaluate, gpu_to_host, gpu_unsupported};
    run_prepare(&r, a, &be);
    print_device(prec);
    gpu::GPT model;
    gpu::gpt_from_host(&model, &r.model, prec);  // the trainable set and LR scales are fixed from here
    be.ctx = &model;
    run_train(&r, &be);
    run_finish(&r, &be);
    size_t free_b = 0, total_b = 0;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    printf("GPU memory in use: %.0f MB\n", (total_b - free_b) / 1048576.0);
    gpu::gpt_free(&model);
    run_free(&r);
    return 0;
}

static int cmd_eval_gpu(const Args* a, gpu::Precision prec) {
    GPT host;
    uint64_t rng = a->seed;
    model_from_args(&host, a, NULL, &rng);
    if (!a->data) failf("give --data FILE (a dataset from ./dataprep)", "nothing to evaluate");
    gpu::GPT model;
    gpu::gpt_from_host(&model, &host, prec);
    EvalResult r = evaluate_gpu(&model, &host, a->data, a->B, a->T, a->max_batches);
    printf("{\"loss\": %.6f, \"ppl\": %.4f, \"tokens\": %zu}\n", r.loss, exp(r.loss), r.count);
    gpu::gpt_free(&model);
    gpt_free(&host);
    return 0;
}

static int cmd_sample_gpu(const Args* a, gpu::Precision prec) {
    GPT host;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&host, a, NULL, &rng);
    if (host.config.num_classes) failf("sampling needs the LM head", "this model has a %d-class head", host.config.num_classes);
    if (!a->tokens) failf("give --tokens \"id id ...\" as the prompt", "no prompt");
    gpu::GPT model;
    gpu::gpt_from_host(&model, &host, prec);
    int cap = 16, n = 0;
    int* prompt = parse_token_ids(a->tokens, model.config.V, (int*)mallocCheck((size_t)cap * sizeof(int)), &n, &cap);
    if (n == 0 || n >= model.config.maxT) failf(NULL, "the prompt needs 1 to maxT-1 = %d tokens, got %d", model.config.maxT - 1, n);
    int* out = (int*)mallocCheck((size_t)(n + a->gen_steps) * sizeof(int));
    Sampler sampler;
    sampler_init(&sampler, model.config.V, a->temperature, a->top_k, a->top_p, a->stop_token, rng);
    int len = generate_gpu(&model, &sampler, prompt, n, a->gen_steps, out);
    for (int i = 0; i < len; i++) printf("%d%s", out[i], i + 1 < len ? " " : "\n");
    sampler_free(&sampler);
    free(prompt);
    free(out);
    gpu::gpt_free(&model);
    gpt_free(&host);
    return 0;
}

// The ceiling MFU is measured against: the best of a few large square bf16 cuBLAS matmuls (fp32 accumulate),
// in TFLOP/s. 8192^3 is large enough to reach the tensor cores' sustained rate.
static double measure_bf16_matmul_tflops(void) {
    const int n = 8192, reps = 10;
    gpu::bf16 *A, *B, *Cm;
    size_t bytes = (size_t)n * n * sizeof(gpu::bf16);
    cudaCheck(cudaMalloc(&A, bytes));
    cudaCheck(cudaMalloc(&B, bytes));
    cudaCheck(cudaMalloc(&Cm, bytes));
    cudaCheck(cudaMemset(A, 0, bytes));  // zeros: the tensor cores' speed does not depend on the values
    cudaCheck(cudaMemset(B, 0, bytes));
    cudaEvent_t e0, e1;
    cudaCheck(cudaEventCreate(&e0));
    cudaCheck(cudaEventCreate(&e1));
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        cudaCheck(cudaEventRecord(e0));
        gpu::gemm<gpu::bf16, gpu::bf16>(false, false, n, n, n, A, n, 0, B, n, 0, 0.0f, Cm, n, 0, 1);
        cudaCheck(cudaEventRecord(e1));
        cudaCheck(cudaEventSynchronize(e1));
        float ms;
        cudaCheck(cudaEventElapsedTime(&ms, e0, e1));
        double tf = 2.0 * n * n * (double)n / (ms * 1e9);
        if (r > 0 && tf > best) best = tf;  // the first call includes cuBLAS's heuristics and warmup
    }
    cudaCheck(cudaEventDestroy(e0));
    cudaCheck(cudaEventDestroy(e1));
    cudaCheck(cudaFree(A));
    cudaCheck(cudaFree(B));
    cudaCheck(cudaFree(Cm));
    return best;
}

// cmd_bench of train.c on the GPU: timed full training steps on random tokens, one JSON line, plus the MFU
// (model FLOPs per second over the measured bf16 matmul ceiling) and the GPU memory in use.
static int cmd_bench_gpu(const Args* a, gpu::Precision prec) {
    GPT host;
    uint64_t rng = a->seed ? a->seed : 1;
    model_from_args(&host, a, NULL, &rng);
    DataLoader lm;  // random tokens: the LM task
    memset(&lm, 0, sizeof lm);
    lm.kind = DATA_LM;
    setup_finetuning(&host, a, &lm, &rng);
    gpu::GPT model;
    gpu::gpt_from_host(&model, &host, prec);
    const GPTConfig* c = &model.config;
    size_t BT = (size_t)a->B * a->T;
    int* x = random_tokens(BT, c->V, &rng);  // inputs
    int* y = random_tokens(BT, c->V, &rng);  // targets
    AdamWConfig opt = adamw_config(a);
    double t_total = 0.0, t_fwd = 0.0, t_bwd = 0.0, t_opt = 0.0;
    float loss = NAN;
    for (int s = 0; s <= a->steps; s++) {  // step 0 is the warmup (allocation, cuBLAS heuristics): not timed
        cudaCheck(cudaDeviceSynchronize());
        double t0 = now_seconds();
        gpu::gpt_forward(&model, x, y, a->B, a->T);  // ends with a copy to the host: synchronous
        loss = model.mean_loss;
        double t1 = now_seconds();
        gpu::gpt_zero_grad(&model);
        gpu::gpt_backward(&model);
        cudaCheck(cudaDeviceSynchronize());
        double t2 = now_seconds();
        gpu::gpt_clip_grad_norm(&model, a->grad_clip);
        gpu::gpt_adamw_update(&model, &opt, s + 1);
        cudaCheck(cudaDeviceSynchronize());
        double t3 = now_seconds();
        if (s > 0) {
            t_total += t3 - t0;
            t_fwd += t1 - t0;
            t_bwd += t2 - t1;
            t_opt += t3 - t2;
        }
    }
    int steps = a->steps > 0 ? a->steps : 1;
    double ms = 1000.0 * t_total / steps;
    double tflops = train_flops_full(c, a->B, a->T) / (ms * 1e9);
    double ceiling = measure_bf16_matmul_tflops();
    size_t free_b = 0, total_b = 0;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    printf("{\"impl\": \"finetune.cu\", \"device\": \"%s\", \"precision\": \"%s\", \"L\": %d, \"C\": %d, \"B\": %d, "
           "\"T\": %d, \"ms_per_step\": %.2f, \"tokens_per_s\": %.1f, \"tflops\": %.2f, \"bf16_matmul_ceiling_tflops\": "
           "%.1f, \"mfu\": %.4f, \"gpu_mem_mb\": %.0f, \"loss\": %.6f, \"ms_forward\": %.2f, \"ms_backward\": %.2f, "
           "\"ms_optimizer\": %.2f, \"method\": \"%s\", \"trainable\": %zu}\n",
           gpu::device_prop.name, gpu::precision_name(prec), c->L, c->C, a->B, a->T, ms, BT / (ms / 1000.0), tflops, ceiling,
           tflops / ceiling, (total_b - free_b) / 1048576.0, loss, 1000.0 * t_fwd / steps, 1000.0 * t_bwd / steps,
           1000.0 * t_opt / steps, a->method, count_trainable(&host));
    free(x);
    free(y);
    gpu::gpt_free(&model);
    gpt_free(&host);
    return 0;
}

#ifndef TRAIN_CU_NO_MAIN  // test_gpt.cu and dev/cuda/*.cu include this file for its kernels and model
int main(int argc, char** argv) {
    gpu::Precision prec = parse_precision(&argc, argv);
    Args a = parse_args(argc, argv);
    if (!strcmp(a.cmd, "eval")) return cmd_eval_gpu(&a, prec);
    if (!strcmp(a.cmd, "sample")) return cmd_sample_gpu(&a, prec);
    if (!strcmp(a.cmd, "bench")) return cmd_bench_gpu(&a, prec);
    return cmd_train_gpu(&a, prec);
}
#endif
