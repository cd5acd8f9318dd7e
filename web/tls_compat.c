/* web/tls_compat.c - built as build/libenvhub-tls.so, not linked into envhub.
 *
 * Debian's libcivetweb 1.15 loads OpenSSL at run time (dlopen "libssl.so")
 * and looks up SSL_get_peer_certificate, which OpenSSL 3 no longer exports
 * (it became a macro for SSL_get1_peer_certificate). The lookup yields NULL
 * and civetweb calls it after every TLS handshake: the server crashes on the
 * first HTTPS request. This shim carries the soname "libssl.so", exports the
 * missing function and depends on the real libssl, so once envhub has loaded
 * it (web/server.c, before civetweb starts), civetweb's dlopen("libssl.so")
 * gets the shim and every other symbol resolves through to OpenSSL. */
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate
X509 *SSL_get_peer_certificate(const SSL *s);

X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}
