/* lt_tls: https for the load generator (see engine_int.h), on OpenSSL.
 *
 * Each worker thread has its own SSL_CTX, made when it meets its first
 * https address, so that no lock is shared between the threads' event
 * loops (a shared CTX would be read-only but reference-counted on every
 * SSL_new). Everything is non-blocking: a handshake, read or write that
 * needs the socket says which way (WANT_READ / WANT_WRITE) and the VU waits
 * for that event in its thread's epoll loop like any other.
 *
 * Session resumption: a session cache per connection slot. The server's
 * session (a TLS 1.3 ticket or a 1.2 session) is handed to the VU that
 * owns the connection (the CTX's new-session callback; OpenSSL's internal
 * client cache is off), which keeps the last one of each of up to
 * LT_TLS_SESSIONS addresses, and offered again when that VU reconnects to
 * the same address, so a VU whose keep-alive connection closed (or that
 * went to another host in between) comes back with an abbreviated
 * handshake, as a returning browser would.
 *
 * Verification is on unless the scenario turns it off
 * (insecure_skip_tls_verify): the chain against the system store or
 * tls.ca_file, the name against the URL's host (the target's: or
 * tls.server_name).
 */
#include "iac/loadtest/engine_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "iac/core/err.h"

/* ---- the context ---------------------------------------------------- */

/* vu's session slot for address a, or -1. */
static int sess_slot(const lt_vu *vu, int a)
{
	for (int i = 0; i < LT_TLS_SESSIONS; i++)
		if (vu->sess[i] && vu->sess_addr[i] == a)
			return i;
	return -1;
}

/* The server gave a session: it belongs to the VU whose connection it
 * came on, in that address's slot (a new address takes the next slot in
 * turn); returning 1 keeps OpenSSL's reference for us. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	lt_vu *vu = SSL_get_app_data(ssl);
	if (!vu)
		return 0;
	int i = sess_slot(vu, vu->addr);
	if (i < 0)
		i = (int)(vu->sess_next++ % LT_TLS_SESSIONS);
	if (vu->sess[i])
		SSL_SESSION_free(vu->sess[i]);
	vu->sess[i] = sess;
	vu->sess_addr[i] = vu->addr;
	return 1;
}

/* The reason of OpenSSL's last error, "unknown" when there is none. */
static const char *ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "unknown error";
}

int lt_tls_ctx(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	if (w->tls)
		return 0;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return iac_err_set("cannot set up TLS: %s", ossl_reason());
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* a whole record (and what follows) in one read(), not its header
	 * first: half the read() calls per response */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	if (cfg->tls_insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		/* say why in words before OpenSSL's "system lib" does */
		if (cfg->tls_ca_file && access(cfg->tls_ca_file, R_OK) != 0) {
			iac_err_set("cannot read the CA file '%s': %s", cfg->tls_ca_file, strerror(errno));
			SSL_CTX_free(ctx);
			return IAC_ERR;
		}
		int ok = cfg->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL)
					  : SSL_CTX_set_default_verify_paths(ctx);
		if (ok != 1) {
			iac_err_set(cfg->tls_ca_file ? "cannot read the CA file '%s': %s"
						     : "cannot read the system's CA certificates%s: %s",
				    cfg->tls_ca_file ? cfg->tls_ca_file : "", ossl_reason());
			ERR_clear_error();
			SSL_CTX_free(ctx);
			return IAC_ERR;
		}
	}
	ERR_clear_error();   /* SSL_get_error() reads the queue: leave it empty */
	w->tls = ctx;
	return 0;
}

void lt_tls_ctx_free(iac_lt_worker *w)
{
	if (w->tls)
		SSL_CTX_free(w->tls);
	w->tls = NULL;
}

/* ---- a connection --------------------------------------------------- */

/* Why the TLS of vu failed, for the report: the certificate's own verdict
 * when it was refused, else OpenSSL's reason. */
static void record_failure(lt_vu *vu, int sslerr)
{
	char msg[256];
	long v = SSL_get_verify_result(vu->ssl);
	if (v != X509_V_OK)
		snprintf(msg, sizeof(msg), "certificate verify failed: %s", X509_verify_cert_error_string(v));
	else if (ERR_peek_last_error())
		snprintf(msg, sizeof(msg), "%s", ossl_reason());
	else if (sslerr == SSL_ERROR_SYSCALL || sslerr == SSL_ERROR_ZERO_RETURN)
		snprintf(msg, sizeof(msg), "the server closed the connection during the TLS handshake");
	else
		snprintf(msg, sizeof(msg), "TLS error %d", sslerr);
	ERR_clear_error();
	lt_tally_tls_error(vu, msg);
}

/* An IP literal is verified against the certificate's IP addresses and
 * sent without SNI (RFC 6066 allows host names only). */
static int is_ip(const char *name)
{
	unsigned char b[16];
	return inet_pton(AF_INET, name, b) == 1 || inet_pton(AF_INET6, name, b) == 1;
}

enum lt_tls_rc lt_tls_start(lt_vu *vu, const lt_addr *a)
{
	const iac_lt_config *cfg = vu->w->run->cfg;
	SSL *ssl = SSL_new(vu->w->tls);
	if (!ssl || SSL_set_fd(ssl, vu->fd) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		lt_tally_tls_error(vu, "cannot set up TLS on the connection");
		return LT_TLS_FAILED;
	}
	vu->ssl = ssl;
	SSL_set_app_data(ssl, vu);
	const char *name = a->host;
	int ip = is_ip(name);
	if (!ip)
		SSL_set_tlsext_host_name(ssl, name);
	if (!cfg->tls_insecure) {
		int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) : SSL_set1_host(ssl, name);
		if (ok != 1) {
			record_failure(vu, SSL_ERROR_SSL);
			return LT_TLS_FAILED;
		}
	}
	int slot = sess_slot(vu, vu->addr);
	if (slot >= 0)
		SSL_set_session(ssl, vu->sess[slot]);
	SSL_set_connect_state(ssl);
	/* the clock itself, not the loop's cached w->now: a resumed
	 * handshake can end within this very call */
	vu->t_hs = lt_now_us();
	return lt_tls_handshake(vu);
}

enum lt_tls_rc lt_tls_handshake(lt_vu *vu)
{
	int r = SSL_do_handshake(vu->ssl);
	if (r == 1) {
		lt_tally_tls(vu, lt_now_us() - vu->t_hs, SSL_session_reused(vu->ssl));
		return LT_TLS_DONE;
	}
	int e = SSL_get_error(vu->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return LT_TLS_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return LT_TLS_WANT_WRITE;
	record_failure(vu, e);
	return LT_TLS_FAILED;
}

/* What a failed SSL_read/SSL_write (r <= 0) means for the caller. */
static ssize_t io_result(lt_vu *vu, int r, int *tls_failed)
{
	int saved = errno;
	int e = SSL_get_error(vu->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;   /* close_notify: the end of the stream */
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (!saved)
			return 0;   /* closed without close_notify: an end all the same */
		errno = saved;
		return -1;
	default:
		record_failure(vu, e);
		*tls_failed = 1;
		errno = EPROTO;
		return -1;
	}
}

ssize_t lt_tls_read(lt_vu *vu, void *buf, size_t n, int *tls_failed)
{
	errno = 0;
	int r = SSL_read(vu->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	return r > 0 ? r : io_result(vu, r, tls_failed);
}

ssize_t lt_tls_write(lt_vu *vu, const void *buf, size_t n, int *tls_failed)
{
	errno = 0;
	int r = SSL_write(vu->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	return r > 0 ? r : io_result(vu, r, tls_failed);
}

void lt_tls_close(lt_vu *vu, int clean)
{
	if (!vu->ssl)
		return;
	/* close_notify (one write, not waited on): OpenSSL forgets the
	 * session of a connection that ended without one */
	if (clean && SSL_is_init_finished(vu->ssl))
		SSL_shutdown(vu->ssl);
	ERR_clear_error();
	SSL_free(vu->ssl);
	vu->ssl = NULL;
}

void lt_tls_vu_free(lt_vu *vu)
{
	lt_tls_close(vu, 0);
	for (int i = 0; i < LT_TLS_SESSIONS; i++) {
		if (vu->sess[i])
			SSL_SESSION_free(vu->sess[i]);
		vu->sess[i] = NULL;
	}
}
