// replay: feeds every file under dev/fuzz/regress/NAME/ to fuzz target NAME (readers.h), without libFuzzer.
// These are the inputs that once crashed a reader (and a few hand-made hostile files): `make test` runs this,
// so `make debug` replays them under AddressSanitizer + UndefinedBehaviorSanitizer. Each must be handled,
// refused or loaded, without a crash; the exit code is non-zero when a folder is missing or empty.
//   ./fuzz_replay [DIR]            (DIR defaults to dev/fuzz/regress)
#include "readers.h"

int main(int argc, char** argv) {
    const char* root = argc > 1 ? argv[1] : "dev/fuzz/regress";
    int total = 0, refused = 0, bad = 0;
    for (int t = 0; t < FZ_NUM_TARGETS; t++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, FZ_TARGETS[t].name);
        DIR* d = opendir(dir);
        int n = 0;
        for (struct dirent* e; d && (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            FILE* f = fopen(path, "rb");
            if (!f) continue;
            uint8_t* buf = NULL;
            size_t len = 0, cap = 0, got;
            do {
                if (len == cap) buf = (uint8_t*)realloc(buf, cap = cap ? 2 * cap : 65536);
                got = fread(buf + len, 1, cap - len, f);
                len += got;
            } while (got > 0);
            fclose(f);
            if (getenv("FZ_VERBOSE")) fprintf(stderr, "replay: %s\n", path);
            refused += fz_run(FZ_TARGETS[t].body, buf, len);
            free(buf);
            n++;
        }
        if (d) closedir(d);
        if (!n) fprintf(stderr, "replay: no inputs in %s\n", dir), fflush(stderr), bad = 1;
        total += n;
    }
    printf("replay: %d regression inputs for %d readers (%d ended in a reader's fail_at error), none crashed\n", total, FZ_NUM_TARGETS, refused);
    return bad;
}
