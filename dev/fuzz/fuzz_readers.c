// libFuzzer harness for one reader: built with -DFZ_TARGET_NAME='"NAME"', NAME one of readers.h's FZ_TARGETS
// (ckpt resume safetensors gguf adapter peft ds tokens tokenizer tokjson peft_llama).
//   make fuzz                                  builds all eleven as dev/fuzz/bin/fuzz_NAME (clang; libFuzzer, ASan, UBSan)
//   bash dev/fuzz/run_readers.sh [SECONDS] [NAMES...]   seeds (make_seeds.sh), replay, then fuzzes each target
#include "readers.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static int target = -1;
    for (int t = 0; target < 0 && t < FZ_NUM_TARGETS; t++)
        if (!strcmp(FZ_TARGETS[t].name, FZ_TARGET_NAME)) target = t;
    if (target < 0) abort();
    fz_run(FZ_TARGETS[target].body, data, size);
    return 0;
}
