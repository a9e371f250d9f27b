/* libFuzzer target: the IDX reader on raw file bytes (plain IDX, or gzip as the mutator finds or breaks it).
 * Each input is read both as an image file and as a label file. Checks, beyond the sanitizers: failures give
 * one non-empty line and zeroed outputs; successes return exactly the bytes the header describes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_file.h"
#include "fuzz_idx_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    fuzz_idx_check_images(path, data, size, 1);
    fuzz_idx_check_labels(path, data, size, 1);
    return 0;
}
