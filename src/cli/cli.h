/* Subcommands of the `elbo` command; each takes its own argv (argv[0] is the subcommand name)
 * and returns the process exit status (0 ok, 2 bad usage or input). */
#ifndef ELBO_CLI_H
#define ELBO_CLI_H

/* `elbo info`: CPU features, kernel path, build flags. */
int cli_info(int argc, char **argv);

/* `elbo train`: trains a VAE (see --help). */
int cli_train(int argc, char **argv);

/* `elbo eval`: test -ELBO of a checkpoint. */
int cli_eval(int argc, char **argv);

/* `elbo sample`: a grid of decoded prior samples (PNG). */
int cli_sample(int argc, char **argv);

/* `elbo reconstruct`: test images over their reconstructions (PNG). */
int cli_reconstruct(int argc, char **argv);

/* `elbo interpolate`: decoded points between two test images' latent means (PNG). */
int cli_interpolate(int argc, char **argv);

/* `elbo latent-map`: latent means (CSV), class scatter and, for Z = 2, the manifold grid (PNG). */
int cli_latent_map(int argc, char **argv);

/* `elbo anomaly`: per-image anomaly scores, AUROC and threshold, histogram (CSV, PNG). */
int cli_anomaly(int argc, char **argv);

/* `elbo zoo`: the four families trained and scored side by side (JSON, Markdown, PNG). */
int cli_zoo(int argc, char **argv);

#endif
