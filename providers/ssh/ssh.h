/* ssh: the provider for real Linux hosts over SSH: ssh.file, ssh.directory,
 * ssh.exec, ssh.service and the data source ssh.facts.
 *
 * Every resource names its host in a `host` attribute (the object a
 * `host "web1" {...}` declaration makes); everything on one host shares
 * one connection of the run's hosts (iac/host), whose SSH settings come
 * from this provider's block. Hosts need a POSIX shell and GNU coreutils
 * (stat, sha256sum, install).
 */
#ifndef IAC_PROVIDERS_SSH_H
#define IAC_PROVIDERS_SSH_H

#include "iac/host/host.h"
#include "iac/provider/provider.h"

extern const iac_rtype iac_ssh_file_type;
extern const iac_rtype iac_ssh_directory_type;
extern const iac_rtype iac_ssh_exec_type;
extern const iac_rtype iac_ssh_service_type;
extern const iac_rtype iac_ssh_facts_type;
extern const iac_rtype iac_ssh_line_type;
extern const iac_rtype iac_ssh_user_type;
extern const iac_rtype iac_ssh_package_type;
extern const iac_provider iac_provider_ssh;

/* What configure() returns. */
typedef struct {
	double command_timeout_ms;   /* internal commands (stat, write...) */
	int use_sftp;                /* write files over SFTP instead of stdin */
} iac_ssh_pdata;

/* The connection for the resource's `host` attribute. Messages name the
 * resource's host. */
int iac_ssh_host_conn(iac_ssh_conn **out, const iac_rctx *ctx, const json_t *attrs);

/* The rtype probe hook of every ssh type: connect to attrs.host. */
int iac_ssh_probe(const iac_rctx *ctx, const json_t *attrs);

/* Run a command. Returns 0 when it ran (any exit status), IAC_ERR with a
 * message naming host and command on connection failure or timeout. */
int iac_ssh_run(iac_ssh_result *res, const iac_rctx *ctx, iac_ssh_conn *c, const char *what,
		const char *cmd, const void *input, size_t input_len, double timeout_ms);

/* Like iac_ssh_run, but a non-zero exit status is a failure too, whose
 * message shows host, command (`shown`, or cmd when NULL), status and the
 * tail of stderr. */
int iac_ssh_run_ok(iac_ssh_result *res, const iac_rctx *ctx, iac_ssh_conn *c, const char *what,
		   const char *cmd, const char *shown, const void *input, size_t input_len,
		   double timeout_ms);

/* Default deadline for the provider's own commands. */
double iac_ssh_timeout(const iac_rctx *ctx);


/* Check that attrs.path is an absolute path without newlines. */
int iac_ssh_check_path(const json_t *attrs);

/* What is at attrs.path on the resource's host (iac_host_stat: batched,
 * with the provider's command timeout). */
int iac_ssh_stat_path(iac_host_stat_info *st, const iac_rctx *ctx, const json_t *attrs);

/* Group commit on the run's hosts (iac_hosts_batch), with the caller's
 * context and connection handed to `run`: concurrent requests of one kind
 * for one host run as one remote command. `run` gets every queued item
 * (the caller's included) and must fill each item's result; it runs on
 * one caller's thread while the others wait. */
typedef void (*iac_ssh_batch_fn)(const iac_rctx *ctx, iac_ssh_conn *c, void **items, size_t n);
void iac_ssh_batch(const iac_rctx *ctx, iac_ssh_conn *c, const char *kind, iac_ssh_batch_fn run, void *item);

#endif
