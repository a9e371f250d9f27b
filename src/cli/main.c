/* The `elbo` command: subcommand dispatch. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand SUBCOMMANDS[] = {
    {"train", cli_train, "train a VAE on a dataset (default: Fashion-MNIST)"},
    {"eval", cli_eval, "test -ELBO of a checkpoint with its parts; --iw K: importance-weighted log p(x)"},
    {"sample", cli_sample, "decode z ~ N(0, I) into an image grid (PNG)"},
    {"reconstruct", cli_reconstruct, "test images over their reconstructions (PNG)"},
    {"interpolate", cli_interpolate, "decoded path between two test images in latent space (PNG)"},
    {"latent-map", cli_latent_map, "test set in latent space: class scatter, manifold grid for Z = 2 (CSV, PNG)"},
    {"anomaly", cli_anomaly, "anomaly scores of test images: AUROC, threshold, histogram (CSV, PNG)"},
    {"zoo", cli_zoo, "the four families trained side by side: one table, one picture (make zoo)"},
    {"info", cli_info, "CPU features, the kernel path chosen, build flags; a checkpoint's model"},
};

/* Prints the top-level usage to f. */
static void print_usage(FILE *f)
{
    fprintf(f, "usage: elbo <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof SUBCOMMANDS / sizeof SUBCOMMANDS[0]; i++)
        fprintf(f, "  %-12s %s\n", SUBCOMMANDS[i].name, SUBCOMMANDS[i].summary);
    fprintf(f, "\n'elbo <command> --help' describes a command's options.\n"
               "Environment: ELBO_ISA=scalar|avx2|avx512|neon forces a kernel path.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof SUBCOMMANDS / sizeof SUBCOMMANDS[0]; i++)
        if (strcmp(argv[1], SUBCOMMANDS[i].name) == 0)
            return SUBCOMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "elbo: unknown command '%s' (try 'elbo --help')\n", argv[1]);
    return 2;
}
