/* gitnet: what every libgit2 user in iac shares: the library's one-time
 * initialisation, libgit2 errors as iac messages, and talking to remotes
 * (file, ssh, https): ssh logins with the agent or key files, server host
 * keys checked against known_hosts (OpenSSH format: plain, [host]:port,
 * hashed, wildcard entries; @revoked honoured; an unknown or changed key
 * refuses the connection), TLS certificates verified, passwords kept out
 * of messages. Users: the change history (gitlog.c, push) and module
 * sources (iac/load/modsrc.c, fetch).
 *
 * Ownership: strings returned are new (free). An iac_gitnet is the
 * callbacks' payload for one operation on one remote; it owns nothing.
 */
#ifndef IAC_STATE_GITNET_H
#define IAC_STATE_GITNET_H

#include <git2.h>

typedef struct {
	int port;                    /* the remote's SSH port (known_hosts spells 22 apart) */
	int tried;                   /* credentials handed out so far */
	char tried_list[512];
	char why[2048];              /* why a callback refused: said instead of libgit2's words */
	const char *key_env;         /* env var naming the ssh key file ("IAC_HISTORY_SSH_KEY") */
	const char *known_hosts_env; /* env var naming known_hosts (default ~/.ssh/known_hosts) */
} iac_gitnet;

/* git_libgit2_init() once per process (never shut down). */
void iac_git_init(void);

/* Set the message "<formatted>: <libgit2's last error>"; returns IAC_ERR. */
int iac_git_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prepare n for url; key_env and known_hosts_env name the environment
 * variables that override the key file (~/.ssh/id_ed25519, ~/.ssh/id_rsa)
 * and ~/.ssh/known_hosts (borrowed: string literals). */
void iac_gitnet_init(iac_gitnet *n, const char *url, const char *key_env, const char *known_hosts_env);

/* Set cb's credentials and certificate_check callbacks, payload n. After a
 * failure, n->why (when not empty) says why better than libgit2 does. */
void iac_gitnet_callbacks(git_remote_callbacks *cb, iac_gitnet *n);

/* The URL's password, or NULL. */
char *iac_gitnet_url_password(const char *url);
/* text with every copy of secret (may be NULL) replaced by "***". */
char *iac_gitnet_scrub(const char *text, const char *secret);
/* The URL as messages show it: without its password. */
char *iac_gitnet_url_shown(const char *url);

#endif
