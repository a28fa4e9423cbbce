/*
 * tls.c - TLS for the service port (server.tls_cert, server.tls_key).
 *
 * Debian's libwebsockets is built against OpenSSL, so the policy is set in
 * OpenSSL terms: TLS 1.2 and 1.3 only (SSL_CTX_set_min_proto_version, and
 * the SSL_OP_NO_* options for older protocols), AEAD cipher suites only
 * (ECDHE with AES-GCM or ChaCha20-Poly1305 for 1.2; 1.3's suites are all
 * AEAD), server preference, no compression, no renegotiation.
 */
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "appliance/server.h"

/* TLS 1.2: forward-secret AEAD only (no CBC, no RSA key exchange, no SHA-1 MACs). */
static const char tls12_ciphers[] =
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char tls13_ciphers[] =
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

int app_tls_configure(struct lws_context_creation_info *info, const struct app_config *cfg,
		      char *errbuf, size_t errlen)
{
	if (!cfg->tls_cert[0] && !cfg->tls_key[0])
		return 0;
	if (!cfg->tls_cert[0] || !cfg->tls_key[0]) {
		snprintf(errbuf, errlen, "server.tls_cert and server.tls_key must be set together");
		return APP_ECONFIG;
	}
	info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info->ssl_cert_filepath = cfg->tls_cert;
	info->ssl_private_key_filepath = cfg->tls_key;
	info->ssl_cipher_list = tls12_ciphers;
	info->tls1_3_plus_cipher_list = tls13_ciphers;
	info->ssl_options_set = (long)(SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 |
				       SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION |
				       SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	return 0;
}

/* From LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS: the vhost's SSL_CTX. */
int app_tls_harden(void *ssl_ctx)
{
	SSL_CTX *ctx = ssl_ctx;

	if (!ctx)
		return 0;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, tls12_ciphers) ||
	    !SSL_CTX_set_ciphersuites(ctx, tls13_ciphers))
		return -1;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_RENEGOTIATION);
	return 0;
}
