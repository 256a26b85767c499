// check_nfc: holds tokenizer.c's NFC (nfc_normalize, the normalizer of Qwen2's tokenizer.json) to the Unicode
// conformance file NormalizationTest.txt of the same version as unicode_tables.h (Debian's unicode-data):
// for every line c1;c2;c3;c4;c5 it checks NFC(c1) = NFC(c2) = NFC(c3) = c2 and NFC(c4) = NFC(c5) = c4.
//   cc -O2 -std=c11 -D_GNU_SOURCE -o /tmp/check_nfc dev/check_nfc.c -lm
//   bzcat /usr/share/unicode/NormalizationTest.txt.bz2 | /tmp/check_nfc
#include "../tokenizer.c"

// one field of space-separated hex code points, up to the next ';', as UTF-8
static const char* field(const char* f, ByteVec* o) {
    o->len = 0;
    bytevec_append(o, "", 0);
    while (*f && *f != ';') {
        char* e;
        unsigned long cp = strtoul(f, &e, 16);
        if (e == f) { f++; continue; }
        utf8_encode(o, (uint32_t)cp);
        f = e;
    }
    return *f == ';' ? f + 1 : f;
}

int main(void) {
    char line[4096];
    long checks = 0, wrong = 0;
    ByteVec c[5] = {{0}}, out = {0};
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == '#' || line[0] == '@' || line[0] == '\n') continue;
        const char* p = line;
        for (int k = 0; k < 5; k++) p = field(p, &c[k]);
        static const int want[5] = {1, 1, 1, 3, 3};  // the column each NFC must equal
        for (int k = 0; k < 5; k++) {
            nfc_normalize(c[k].data, c[k].len, &out);
            checks++;
            if (out.len != c[want[k]].len || memcmp(out.data, c[want[k]].data, out.len)) {
                if (wrong++ < 5) printf("wrong (column %d): %s", k + 1, line);
            }
        }
    }
    printf("NFC: %ld checks, %ld wrong\n", checks, wrong);
    return wrong || !checks;
}
