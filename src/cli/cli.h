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

#endif
