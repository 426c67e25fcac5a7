/* Thread-local error message and the names of return codes, plus the
 * library version (CMIR_VERSION_STRING, generated from the project VERSION;
 * kept here, not in info.c, so that printing it links no matio). */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char tls_msg[1024];
static _Thread_local int tls_code;

const char *cmir_version(void) { return CMIR_VERSION_STRING; }

const char *cmir_last_error(void) { return tls_msg; }

int cmir_last_error_code(void) { return tls_code; }

void cmir__clear_error(void)
{
    tls_msg[0] = '\0';
    tls_code = 0;
}

int cmir__error(int code, const char *fmt, ...)
{
    va_list ap;
    tls_code = code;
    va_start(ap, fmt);
    vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
    va_end(ap);
    return code;
}

void cmir__error_prefix(const char *prefix)
{
    char tmp[sizeof tls_msg];
    snprintf(tmp, sizeof tmp, "%.100s: %.900s", prefix, tls_msg);
    memcpy(tls_msg, tmp, sizeof tls_msg);
}

const char *cmir_strerror(int code)
{
    switch (code) {
    case CMIR_OK: return "CMIR_OK";
    case CMIR_EINVAL: return "CMIR_EINVAL";
    case CMIR_ENOMEM: return "CMIR_ENOMEM";
    case CMIR_EIO: return "CMIR_EIO";
    case CMIR_EFORMAT: return "CMIR_EFORMAT";
    case CMIR_ECANCEL: return "CMIR_ECANCEL";
    case CMIR_ENOTFOUND: return "CMIR_ENOTFOUND";
    case CMIR_EUNSUPPORTED: return "CMIR_EUNSUPPORTED";
    default: return "CMIR_E(unknown)";
    }
}

int cmir__failed(int fallback) { return tls_code < 0 ? tls_code : fallback; }
