#ifndef RUNNER_CCRYPTO_SHIM_H
#define RUNNER_CCRYPTO_SHIM_H
// OpenSSL's libcrypto (already loaded through libpq and libcurl): HMAC-SHA256 for signed webhooks.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif
