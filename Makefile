# finetune.c: `make` builds everything, `make test` runs every check, `make demo` runs the main job.
CC ?= cc
# -O3 -march=native lets gcc vectorise the matmul micro-kernel; -ffp-contract=fast lets it fuse a*b+c into one
# FMA instruction (strict -std=c11 turns that off; FMA rounds once instead of twice, so it is if anything more
# accurate, and it doubles the matmul speed). No -ffast-math: reassociation broke GELU in llm.c.
# -fno-math-errno: sqrtf need not set errno for a negative argument (nothing here reads errno after math),
# so it is one instruction and the loops around it vectorise (AdamW's update ran scalar, calling sqrtf).
# ARCH picks the target CPU, and with it the vector ISA the matmul's register tile is built for ("matmul" in
# model.h): e.g. ARCH=-march=haswell (AVX2), ARCH=-march=x86-64 (no AVX: the plain-C tile); dev/test_isa.sh.
ARCH ?= -march=native
CFLAGS ?= -O3 $(ARCH) -ffp-contract=fast -fno-math-errno -std=c11 -Wall -Wextra -Wno-unused-function
ifneq ($(findstring x86_64,$(shell $(CC) -dumpmachine)),)
  CFLAGS += -mprefer-vector-width=512
endif
LDLIBS = -lm

# OpenMP is optional: used when the compiler accepts -fopenmp, and the build says which.
OMP_OK := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
ifeq ($(NO_OMP),1)
  OMP_OK :=
endif
ifeq ($(OMP_OK),yes)
  CFLAGS += -fopenmp
  $(info OpenMP: found, building with -fopenmp)
else
  CFLAGS += -Wno-unknown-pragmas
  $(info OpenMP: not found (or NO_OMP=1), building single-threaded)
endif

BINS = train test_gpt dataprep test_dataprep train_mpi train_prof gen_arith fuzz_replay test_serve

# Each program is one translation unit (train.c includes the files it needs). The compiler writes the list of
# files each one read to .deps/NAME.d (-MMD -MP), and make reads those lists back: touching any source file
# rebuilds exactly the programs that include it, with no hand-kept dependency list to go stale.
DEPFLAGS = -MMD -MP -MF .deps/$(subst /,_,$@).d
$(shell mkdir -p .deps)

# all: the trainer, the data tool and the tests
all: train test_gpt dataprep test_dataprep

# train: the trainer (train / eval / sample)
train: train.c Makefile
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LDLIBS)

# test_gpt: kernel finite-difference checks, PyTorch reference checks, loader and invariant tests
test_gpt: test_gpt.c Makefile
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LDLIBS)

# dataprep: tokenizer and dataset preparation
dataprep: dataprep.c Makefile
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LDLIBS)

# test_dataprep: tokenizer and dataprep tests
test_dataprep: test_dataprep.c Makefile
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LDLIBS)

# gen_arith: the demo's arithmetic corpus (dev/gen_arith.c); `./gen_arith check-splits` tests its val split
gen_arith: dev/gen_arith.c Makefile
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LDLIBS)

# fuzz_replay: feeds every saved fuzz input under dev/fuzz/regress/NAME/ to reader NAME (dev/fuzz/replay.c)
fuzz_replay: dev/fuzz/replay.c Makefile
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LDLIBS)

# test_serve: the HTTP parser, and ./train serve over sockets (against ./train sample and classify)
test_serve: test_serve.c Makefile
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LDLIBS)

# test: every test; the exit code is the tests' own
test: test_gpt test_dataprep train dataprep gen_arith fuzz_replay test_serve
	./test_gpt
	./test_dataprep
	./gen_arith check-splits
	./fuzz_replay
	./test_serve

# fuzz: the readers' libFuzzer targets (dev/fuzz/readers.h) as dev/fuzz/bin/fuzz_NAME, with ASan + UBSan (needs
# clang); bash dev/fuzz/run_readers.sh [SECONDS] [NAMES...] makes seed corpora and runs them
FUZZ_TARGETS = ckpt resume safetensors gguf adapter peft ds tokens tokenizer tokjson peft_llama
FUZZ_CC ?= clang
FUZZ_CFLAGS = -O1 -g -std=c11 -Wall -Wextra -Wno-unused-function -Wno-unknown-pragmas \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz: $(patsubst %,dev/fuzz/bin/fuzz_%,$(FUZZ_TARGETS))
dev/fuzz/bin/fuzz_%: dev/fuzz/fuzz_readers.c Makefile
	@mkdir -p dev/fuzz/bin
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -DFZ_TARGET_NAME='"$*"' -o $@ $< -lm

# test-crash: kill -9 training at random moments and between a checkpoint's write and rename; each resume must
# end bit-identical to an uninterrupted run, log every step once and leave no temp file (dev/crash_test.sh)
test-crash: train dataprep
	bash dev/crash_test.sh 12

# debug: the tests built with -g and AddressSanitizer + UndefinedBehaviorSanitizer, and run
debug:
	$(MAKE) clean
	$(MAKE) CFLAGS="-O1 -g -std=c11 -Wall -Wextra -Wno-unused-function -Wno-unknown-pragmas -fsanitize=address,undefined -fno-omit-frame-pointer" NO_OMP=1 test

# demo: the main job, on data the project generates itself
demo: train dataprep
	bash dev/demo.sh

# cuda: train_gpu and test_gpt_gpu (train.cu mirrors model.h on CUDA; cuBLAS for the large matmuls), and the
# per-kernel programs in dev/cuda; only when nvcc is found. CUDA_ARCH defaults to Hopper (H100/H200).
NVCC ?= nvcc
CUDA_ARCH ?= sm_90
NVCC_OMP := $(if $(OMP_OK),-fopenmp,)
NVCCFLAGS ?= -O3 -std=c++17 -arch=$(CUDA_ARCH) -Xcompiler $(NVCC_OMP)$(if $(NVCC_OMP),$(comma),)-Wall,-Wextra,-Wno-unused-function,-Wno-missing-field-initializers
comma := ,
NVCC_LIBS = -lcublas $(if $(OMP_OK),-lgomp,)
CUDA_KERNEL_BENCHES = $(patsubst %.cu,%,$(wildcard dev/cuda/*.cu))
ifneq ($(shell command -v $(NVCC) 2>/dev/null),)
cuda: train_gpu test_gpt_gpu $(CUDA_KERNEL_BENCHES)
else
cuda:
	@echo "nvcc not found: skipping the CUDA build"
endif
train_gpu: train.cu Makefile
	$(NVCC) $(NVCCFLAGS) $(DEPFLAGS) -o $@ $< $(NVCC_LIBS)
test_gpt_gpu: test_gpt.cu Makefile
	$(NVCC) $(NVCCFLAGS) $(DEPFLAGS) -o $@ $< $(NVCC_LIBS)
dev/cuda/%: dev/cuda/%.cu Makefile
	$(NVCC) $(NVCCFLAGS) $(DEPFLAGS) -o $@ $< $(NVCC_LIBS)

# mpi: train_mpi, the trainer built against Open MPI (-DUSE_MPI) for mpirun; the default build has no MPI
MPICC ?= mpicc
mpi: train_mpi
train_mpi: train.c Makefile
	OMPI_CC=$(CC) $(MPICC) $(CFLAGS) $(DEPFLAGS) -DUSE_MPI -o $@ $< $(LDLIBS)

# test-mpi: 2 ranks against 1 rank at twice the batch, ZeRO-1, LoRA, resume (needs Open MPI)
test-mpi: train_mpi train
	bash dev/test_mpi.sh

# bench: GPT-2 124M-shaped and small training steps, 1 and 2 threads, side by side with PyTorch when installed
bench: train
	bash dev/bench.sh

# test-isa: the tests built for the other matmul tiles (AVX2, generic x86-64, clang, aarch64 under qemu-user),
# each in its own temp copy of the tree (dev/test_isa.sh; BUILDS="avx2 clang" picks some)
test-isa:
	bash dev/test_isa.sh $(BUILDS)
.PHONY: test-isa

# profile: train_prof, the trainer with per-kernel timers (-DKERNEL_TIMERS): `./train_prof bench ...` prints them
profile: train_prof
train_prof: train.c Makefile
	$(CC) $(CFLAGS) $(DEPFLAGS) -DKERNEL_TIMERS -o $@ $< $(LDLIBS)

# clean: remove what make built
clean:
	rm -f $(BINS) train_gpu test_gpt_gpu $(CUDA_KERNEL_BENCHES)
	rm -rf .deps dev/fuzz/bin

.PHONY: all test debug demo bench profile clean mpi test-mpi cuda fuzz test-crash

# the dependency lists the compiler wrote (last, so that `all` stays the default goal)
-include $(wildcard .deps/*.d)
