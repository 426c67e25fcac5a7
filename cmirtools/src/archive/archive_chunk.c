/* Whole-tile chunks through libdeflate: written as standard zlib streams
 * with HDF5's direct chunk write (the dataset declares HDF5's own shuffle
 * and deflate filters, so every HDF5 reader inflates them), read back with
 * the direct chunk read and inflated here, where the dataset's layout
 * allows. */
#include "archive_internal.h"

#include <libdeflate.h>
#include <math.h>
#include <string.h>

int cmir__ar_chunk_plan(hid_t ds, cmir_dtype type, cmir__chunkfmt *f)
{
    memset(f, 0, sizeof *f);
    hid_t dcpl = H5Dget_create_plist(ds), sp = H5Dget_space(ds), fty = H5Dget_type(ds);
    hsize_t dims[4], chunk[4];
    int ok = dcpl >= 0 && sp >= 0 && fty >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
             H5Sget_simple_extent_ndims(sp) == 4 && H5Sget_simple_extent_dims(sp, dims, NULL) == 4 &&
             H5Pget_chunk(dcpl, 4, chunk) == 4 && chunk[0] == 1 && chunk[1] == dims[1] &&
             chunk[2] == dims[2] && chunk[3] == dims[3] &&
             H5Tequal(fty, cmir__h5_memtype(type)) > 0;
    int nf = ok ? H5Pget_nfilters(dcpl) : -1;
    f->elem = (int)cmir_dtype_size(type);
    f->bytes = ok ? (size_t)(dims[1] * dims[2] * dims[3]) * (size_t)f->elem : 0;
    for (int i = 0; ok && i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE && i == 0 && nf == 2) {
            f->shuffle = 1;
        } else if (id == H5Z_FILTER_DEFLATE && i == nf - 1) {
            f->level = ncd >= 1 && cd[0] >= 1 && cd[0] <= 9 ? (int)cd[0] : 6;
            f->deflate_bit = 1u << i;
        } else {
            ok = 0;
        }
    }
    if (ok && nf > 0 && !f->level)
        ok = 0; /* shuffle alone: not ours */
    f->direct = ok;
    cmir__h5_close(fty);
    cmir__h5_close(sp);
    cmir__h5_close(dcpl);
    return 0;
}

/* HDF5's shuffle filter: byte j of element i goes to j * n + i. */
static void shuffle(const uint8_t *in, uint8_t *out, size_t bytes, int elem, int back)
{
    size_t n = bytes / (size_t)elem;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < elem; j++) {
            if (back)
                out[i * elem + j] = in[(size_t)j * n + i];
            else
                out[(size_t)j * n + i] = in[i * elem + j];
        }
}

/* Grows *buf to at least n bytes. */
static int reserve(void **buf, size_t *cap, size_t n)
{
    if (*cap >= n)
        return 0;
    void *p = cmir__malloc(n);
    if (!p)
        return CMIR_ENOMEM;
    cmir__free(*buf);
    *buf = p;
    *cap = n;
    return 0;
}

/* Byte planes (after the shuffle, plane j holds byte j of every element)
 * whose order-0 entropy is at least this many bits per byte are close to
 * incompressible (at most 2.5% smaller through Huffman coding, and LZ77
 * matches are rare in such data): they are stored, not searched for
 * matches, which is most of deflate's time on sensor noise. */
#define STORE_ENTROPY 7.8

/* Order-0 entropy of a plane, bits per byte; from every 4th byte when
 * the plane has 16 KiB or more (the estimate is then low by about 0.01
 * bit at most for uniform bytes). */
static double plane_entropy(const uint8_t *p, size_t n)
{
    size_t h[256] = {0}, step = n >= 16384 ? 4 : 1, cnt = 0;
    for (size_t i = 0; i < n; i += step, cnt++)
        h[p[i]]++;
    double e = 0.0;
    for (int b = 0; b < 256; b++)
        if (h[b]) {
            double f = (double)h[b] / (double)cnt;
            e -= f * log2(f);
        }
    return e;
}

/* Appends `n` bytes as deflate stored blocks (at most 65535 bytes each);
 * the last one final when `final`. Returns the bytes written. */
static size_t put_stored(uint8_t *out, const uint8_t *in, size_t n, int final)
{
    size_t o = 0;
    do {
        size_t len = n > 65535 ? 65535 : n;
        n -= len;
        out[o++] = (uint8_t)(final && n == 0); /* BFINAL, BTYPE 00, padding */
        out[o++] = (uint8_t)(len & 255);
        out[o++] = (uint8_t)(len >> 8);
        out[o++] = (uint8_t)(~len & 255);
        out[o++] = (uint8_t)((~len >> 8) & 255);
        memcpy(out + o, in, len);
        o += len;
        in += len;
    } while (n > 0);
    return o;
}

/* One zlib stream for `n` bytes of `in` (shuffled when f->shuffle): the
 * leading near-incompressible planes as stored blocks, the rest through
 * libdeflate in one raw deflate stream; header 78 01 and Adler-32 as zlib
 * writes them. Returns its size, 0 when `cap` is too small. */
static size_t zlib_stream(struct libdeflate_compressor *c, const uint8_t *in, size_t n, int planes,
                          uint8_t *out, size_t cap)
{
    size_t pn = n / (size_t)planes, stored = 0;
    while (stored < (size_t)planes && plane_entropy(in + stored * pn, pn) >= STORE_ENTROPY)
        stored++;
    size_t skip = stored * pn, o = 2;
    out[0] = 0x78;
    out[1] = 0x01;
    if (skip)
        o += put_stored(out + o, in, skip, skip == n);
    if (skip < n) {
        size_t z = libdeflate_deflate_compress(c, in + skip, n - skip, out + o, cap - o - 4);
        if (z == 0)
            return 0;
        o += z;
    }
    uint32_t a = libdeflate_adler32(1, in, n);
    out[o++] = (uint8_t)(a >> 24);
    out[o++] = (uint8_t)(a >> 16);
    out[o++] = (uint8_t)(a >> 8);
    out[o++] = (uint8_t)a;
    return o;
}

int cmir__ar_write_chunk(cmir__chunkio *io, hid_t ds, const cmir__chunkfmt *f, hsize_t tile,
                         const void *raw)
{
    hsize_t off[4] = {tile, 0, 0, 0};
    const void *src = raw;
    size_t n = f->bytes;
    if (f->level) {
        if (io->comp && io->comp_level != f->level) {
            libdeflate_free_compressor(io->comp);
            io->comp = NULL;
        }
        if (!io->comp && !(io->comp = libdeflate_alloc_compressor(f->level)))
            return CMIR_ENOMEM;
        io->comp_level = f->level;
        /* stored blocks cost 5 bytes per 65535, the zlib frame 6 */
        size_t bound = libdeflate_deflate_compress_bound(io->comp, n) + n / 65535 * 5 + 64;
        if (reserve(&io->zbuf, &io->zcap, bound + n))
            return CMIR_ENOMEM;
        if (f->shuffle) {
            uint8_t *tmp = (uint8_t *)io->zbuf + bound;
            shuffle(raw, tmp, n, f->elem, 0);
            src = tmp;
        }
        n = zlib_stream(io->comp, src, f->bytes, f->shuffle ? f->elem : 1, io->zbuf, bound);
        if (n == 0)
            return cmir__error(CMIR_EIO, "libdeflate could not compress a tile");
        src = io->zbuf;
    }
    if (H5Dwrite_chunk(ds, H5P_DEFAULT, 0, off, n, src) < 0)
        return cmir__error(CMIR_EIO, "HDF5 direct chunk write failed");
    return 0;
}

int cmir__ar_read_chunk(cmir__chunkio *io, hid_t ds, const cmir__chunkfmt *f, hsize_t tile,
                        void *out)
{
    hsize_t off[4] = {tile, 0, 0, 0}, stored = 0;
    if (H5Dget_chunk_storage_size(ds, off, &stored) < 0 || stored == 0)
        return 1; /* not allocated (fill values) or not told: HDF5's own path */
    if (stored > (hsize_t)f->bytes + (hsize_t)f->bytes / 8 + 1024)
        return cmir__error(CMIR_EFORMAT, "chunk of %llu bytes for a tile of %zu bytes",
                           (unsigned long long)stored, f->bytes);
    if (reserve(&io->zbuf, &io->zcap, (size_t)stored + f->bytes))
        return CMIR_ENOMEM;
    uint32_t mask = 0;
    if (H5Dread_chunk(ds, H5P_DEFAULT, off, &mask, io->zbuf) < 0)
        return cmir__error(CMIR_EIO, "HDF5 direct chunk read failed");
    int inflate = f->level && !(mask & f->deflate_bit);
    int unshuf = f->shuffle && !(mask & 1u);
    uint8_t *tmp = (uint8_t *)io->zbuf + stored;
    if (!inflate) {
        if (stored != f->bytes)
            return cmir__error(CMIR_EFORMAT, "uncompressed chunk of %llu bytes for a tile of %zu",
                               (unsigned long long)stored, f->bytes);
        if (unshuf)
            shuffle(io->zbuf, out, f->bytes, f->elem, 1);
        else
            memcpy(out, io->zbuf, f->bytes);
        return 0;
    }
    if (!io->dec && !(io->dec = libdeflate_alloc_decompressor()))
        return CMIR_ENOMEM;
    size_t got = 0;
    enum libdeflate_result r = libdeflate_zlib_decompress(io->dec, io->zbuf, (size_t)stored,
                                                          unshuf ? tmp : out, f->bytes, &got);
    if (r != LIBDEFLATE_SUCCESS || got != f->bytes)
        return cmir__error(CMIR_EFORMAT, "corrupt compressed chunk (%s)",
                           r == LIBDEFLATE_SUCCESS ? "short data"
                           : r == LIBDEFLATE_INSUFFICIENT_SPACE ? "inflates past the tile size"
                                                                : "bad deflate data or checksum");
    if (unshuf)
        shuffle(tmp, out, f->bytes, f->elem, 1);
    return 0;
}

void cmir__ar_chunkio_free(cmir__chunkio *io)
{
    if (io->comp)
        libdeflate_free_compressor(io->comp);
    if (io->dec)
        libdeflate_free_decompressor(io->dec);
    cmir__free(io->zbuf);
    memset(io, 0, sizeof *io);
}
