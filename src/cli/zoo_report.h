/* `elbo zoo`'s outputs from its JSON tree: each training's % of the measured peak, the JSON file and the Markdown
 * table, each written atomically. */
#ifndef ELBO_ZOO_REPORT_H
#define ELBO_ZOO_REPORT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Adds to every run of root["runs"] with a "train" and "train_flops_per_sample": train_gflops, and against
 * root["peaks"] (fma_gflops, bf16_gflops: 0 when not measured) pct_peak and peak ("fma", or "bf16" for a bf16 run
 * when a bf16 peak was measured; null and no pct_peak without a peak). */
void zoo_report_add_efficiency(cJSON *root);

/* Writes root as indented JSON to path; 0, or -1 with one line in err. */
int zoo_report_write_json(const cJSON *root, const char *path, char *err, size_t errlen);

/* Writes the Markdown page (the one table, how to read it, the commands) to path; 0, or -1 with one line in err. */
int zoo_report_write_md(const cJSON *root, const char *path, char *err, size_t errlen);

#endif
