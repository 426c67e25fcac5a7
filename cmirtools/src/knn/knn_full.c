/* Exact k-NN, the full path (k >= n/4: every allowed row's exact distance,
 * radix-sorted per query, which also serves whole rankings) and the row
 * norms (value checks, and db_norms for the heap path). */
#include "knn_internal.h"

#ifdef KNN_HAVE_AVX512
/* 32 rows at once, one per double lane of four accumulators, each lane the
 * same in-order chain as exact_d (separate multiply and add), so results
 * are bit-identical; four chains hide the add latency. */
__attribute__((target("avx512f"))) KNN_NO_CONTRACT static void
exact_d32_avx512(const float *q, const float *db, const int64_t rows[KNN_BATCH], int d,
                 double out[KNN_BATCH])
{
    long long off[KNN_BATCH];
    for (int u = 0; u < KNN_BATCH; u++)
        off[u] = (long long)rows[u] * d;
    __m512i i0 = _mm512_loadu_si512((const void *)off);
    __m512i i1 = _mm512_loadu_si512((const void *)(off + 8));
    __m512i i2 = _mm512_loadu_si512((const void *)(off + 16));
    __m512i i3 = _mm512_loadu_si512((const void *)(off + 24));
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    for (int j = 0; j < d; j++) {
        const float *b = db + j;
        __m512d qj = _mm512_set1_pd((double)q[j]);
        __m512d t0 = _mm512_sub_pd(qj, _mm512_cvtps_pd(_mm512_i64gather_ps(i0, b, 4)));
        __m512d t1 = _mm512_sub_pd(qj, _mm512_cvtps_pd(_mm512_i64gather_ps(i1, b, 4)));
        __m512d t2 = _mm512_sub_pd(qj, _mm512_cvtps_pd(_mm512_i64gather_ps(i2, b, 4)));
        __m512d t3 = _mm512_sub_pd(qj, _mm512_cvtps_pd(_mm512_i64gather_ps(i3, b, 4)));
        s0 = _mm512_add_pd(s0, _mm512_mul_pd(t0, t0));
        s1 = _mm512_add_pd(s1, _mm512_mul_pd(t1, t1));
        s2 = _mm512_add_pd(s2, _mm512_mul_pd(t2, t2));
        s3 = _mm512_add_pd(s3, _mm512_mul_pd(t3, t3));
    }
    _mm512_storeu_pd(out, s0);
    _mm512_storeu_pd(out + 8, s1);
    _mm512_storeu_pd(out + 16, s2);
    _mm512_storeu_pd(out + 24, s3);
}
#endif

#ifdef KNN_HAVE_AVX512
/* The same in AVX-512 (products of floats are exact in double). */
__attribute__((target("avx512f"))) static double sq_norm_avx512(const float *x, int d)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int j = 0;
    for (; j + 16 <= d; j += 16) {
        __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
        __m512d hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + j + 8));
        a0 = _mm512_fmadd_pd(lo, lo, a0);
        a1 = _mm512_fmadd_pd(hi, hi, a1);
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (; j < d; j++)
        s += (double)x[j] * (double)x[j];
    return s;
}
#endif

/* ------------------------------------------------------------------------ */
/* Full path (k >= n/4): every allowed row's D, radix-sorted                 */

/* Stable LSD radix sort on the 64-bit keys (11-bit digits), so rows with
 * equal keys keep their (ascending index) order. Returns the sorted copy
 * (a or tmp). */
static knn_key *radix_sort(knn_key *a, knn_key *tmp, size_t n)
{
    size_t cnt[2048];
    knn_key *src = a, *dst = tmp;
    for (int shift = 0; shift < 64; shift += 11) {
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++)
            cnt[(src[i].key >> shift) & 2047]++;
        if (n == 0 || cnt[(src[0].key >> shift) & 2047] == n)
            continue; /* one digit value: the pass would change nothing */
        size_t sum = 0;
        for (int b = 0; b < 2048; b++) {
            size_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i].key >> shift) & 2047]++] = src[i];
        knn_key *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

static uint64_t dkey(double D)
{
    uint64_t u;
    memcpy(&u, &D, sizeof u); /* D >= +0: the bit pattern orders like D */
    return u;
}

int cmir__knn_task_full(int t, int T, void *user)
{
    const knn_job *j = user;
    knn_key *buf = (knn_key *)(j->scratch + (size_t)t * j->per_thread);
    knn_key *tmp = buf + j->n;
    size_t lo, hi;
    cmir__split((size_t)j->m, T, t, &lo, &hi);
    const int d = j->d;
    for (size_t i = lo; i < hi; i++) {
        const float *q = j->q + i * d;
        size_t cnt = 0;
        int64_t x = 0;
        double Db[KNN_BATCH];
        while (x < j->n) {
            int64_t r[KNN_BATCH];
            int nr = 0;
            for (; x < j->n && nr < KNN_BATCH; x++)
                if (cmir__knn_keep(j, x))
                    r[nr++] = x;
            if (nr == 0)
                break;
            for (int u = nr; u < KNN_BATCH; u++)
                r[u] = r[0];
#ifdef KNN_HAVE_AVX512
            if (j->avx512) {
                exact_d32_avx512(q, j->db, r, d, Db);
            } else
#endif
            {
                for (int u = 0; u < nr; u += 4)
                    exact_d4(q, j->db + (size_t)r[u] * d, j->db + (size_t)r[u + 1] * d,
                             j->db + (size_t)r[u + 2] * d, j->db + (size_t)r[u + 3] * d, d,
                             Db + u);
            }
            for (int u = 0; u < nr; u++)
                if (keep_dist(j, Db[u])) {
                    buf[cnt].key = dkey(Db[u]);
                    buf[cnt].id = r[u];
                    cnt++;
                }
        }
        knn_key *s = radix_sort(buf, tmp, cnt);
        int64_t *ids = j->ids + i * j->k;
        float *dist = j->dist ? j->dist + i * j->k : NULL;
        for (int r = 0; r < j->k; r++) {
            if ((size_t)r < cnt) {
                ids[r] = s[r].id;
                if (dist) {
                    double D;
                    memcpy(&D, &s[r].key, sizeof D);
                    dist[r] = (float)(j->squared ? D : sqrt(D));
                }
            } else {
                ids[r] = -1;
                if (dist)
                    dist[r] = INFINITY;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Norms                                                                     */

typedef struct norms_job {
    const float *x;
    int64_t n;
    int d, avx512;
    float *out;
    int64_t bad[64]; /* first bad row of each thread, -1 if none */
} norms_job;

static int task_norms(int t, int T, void *user)
{
    norms_job *nj = user;
    size_t lo, hi;
    cmir__split((size_t)nj->n, T, t, &lo, &hi);
    nj->bad[t] = -1;
    for (size_t i = lo; i < hi; i++) {
#ifdef KNN_HAVE_AVX512
        double s = nj->avx512 ? sq_norm_avx512(nj->x + i * nj->d, nj->d)
                              : sq_norm(nj->x + i * nj->d, nj->d);
#else
        double s = sq_norm(nj->x + i * nj->d, nj->d);
#endif
        if (!norm_ok(s)) {
            nj->bad[t] = (int64_t)i;
            return CMIR_EINVAL;
        }
        if (nj->out)
            nj->out[i] = (float)s;
    }
    return 0;
}

int cmir__knn_norms_threads(int T, const float *x, int64_t n, int d, float *norms)
{
    norms_job nj;
    if (n == 0)
        return 0;
    nj.x = x;
    nj.n = n;
    nj.d = d;
    nj.avx512 = cpu_avx512();
    nj.out = norms;
    if (T > 64)
        T = 64;
    if ((int64_t)T * 4096 > n)
        T = (int)(n / 4096) > 1 ? (int)(n / 4096) : 1;
    if (cmir__parallel(T, task_norms, &nj) == 0)
        return 0;
    for (int t = 0; t < T; t++)
        if (nj.bad[t] >= 0)
            return cmir__error(CMIR_EINVAL,
                               "cmir_knn: row %lld has a NaN or infinite value or a squared "
                               "norm >= 1e30",
                               (long long)nj.bad[t]);
    return cmir__error(CMIR_EINVAL, "cmir_knn: bad values");
}

int cmir_knn_norm_max(const float *x, int64_t n, int d, float *max)
{
    if ((!x && n > 0) || !max)
        return cmir__error(CMIR_EINVAL, "cmir_knn_norm_max: NULL argument");
    if (n < 0 || d <= 0 || d > KNN_MAX_D)
        return cmir__error(CMIR_EINVAL, "cmir_knn_norm_max: bad shape n=%lld d=%d", (long long)n, d);
    float buf[1024], m = 0.0f;
    for (int64_t i = 0; i < n; i += 1024) {
        int64_t b = n - i < 1024 ? n - i : 1024;
        int rc = cmir__knn_norms_threads(1, x + (size_t)i * (size_t)d, b, d, buf);
        if (rc)
            return rc;
        for (int64_t r = 0; r < b; r++)
            m = buf[r] > m ? buf[r] : m;
    }
    *max = m;
    return 0;
}

int cmir_knn_norms(const float *x, int64_t n, int d, float *norms)
{
    if ((!x && n > 0) || (!norms && n > 0))
        return cmir__error(CMIR_EINVAL, "cmir_knn_norms: NULL argument");
    if (n < 0 || d <= 0 || d > KNN_MAX_D)
        return cmir__error(CMIR_EINVAL, "cmir_knn_norms: bad shape n=%lld d=%d", (long long)n,
                           d);
    return cmir__knn_norms_threads(1, x, n, d, norms);
}
