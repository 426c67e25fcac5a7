/* Build information: the versions of the numerical and file libraries
 * libcmir runs on, for --version output and bug reports. */
#include "internal.h"

#include <cblas.h>
#include <matio.h>
#include <pthread.h>
#include <stdio.h>

static char info[512];
static pthread_once_t info_once = PTHREAD_ONCE_INIT;

static void make_info(void)
{
    int ma, mi, re;
    Mat_GetLibraryVersion(&ma, &mi, &re);
    snprintf(info, sizeof info, "OpenBLAS: %s (core %s)\nmatio: %d.%d.%d", openblas_get_config(),
             openblas_get_corename(), ma, mi, re);
}

const char *cmir_build_info(void)
{
    pthread_once(&info_once, make_info);
    return info;
}
