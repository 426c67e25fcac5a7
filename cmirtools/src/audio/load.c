/* Decoding audio files through libsndfile: header limits checked before
 * any allocation, streamed WAVs (length markers 0, 0x7FFFFFFF, 0xFFFFFFFF)
 * read to the end of the file, chunked reading mixed to mono into a buffer
 * that grows with the data actually read, libsndfile's errors as
 * "sndfile: ...". */
#include "audio_internal.h"
#include "../base/internal.h"

#include <sndfile.h>
#include <stdio.h>
#include <string.h>

#define CHUNK 4096 /* frames decoded per call */

/* Reads every frame into a new mono buffer. */
static int read_mono(SNDFILE *sf, const SF_INFO *info, const char *path, float **mono,
                     int64_t *got)
{
    int ch = info->channels;
    int64_t cap = 0, n = 0;
    float *buf = cmir__malloc(sizeof(float) * CHUNK * (size_t)ch), *m = NULL;
    if (!buf)
        return CMIR_ENOMEM;
    while (n < info->frames) {
        sf_count_t want = info->frames - n < CHUNK ? info->frames - n : CHUNK;
        sf_count_t r = sf_readf_float(sf, buf, want);
        if (r <= 0)
            break;
        if (n + r > cap) {
            int64_t nc = cap ? 2 * cap : 65536;
            float *t;
            nc = nc > info->frames ? info->frames : nc;
            if (!(t = cmir__realloc(m, sizeof(float) * (size_t)nc))) {
                cmir__free(buf);
                cmir__free(m);
                return CMIR_ENOMEM;
            }
            m = t;
            cap = nc;
        }
        for (sf_count_t i = 0; i < r; i++) {
            float s = 0.0f;
            for (int c = 0; c < ch; c++)
                s += buf[i * ch + c];
            m[n + i] = s / (float)ch;
        }
        n += r;
    }
    cmir__free(buf);
    if (n < info->frames) {
        int rc = sf_error(sf)
                     ? cmir__error(CMIR_EFORMAT, "sndfile: %s: read failed after %lld of %lld frames (%s)",
                                   path, (long long)n, (long long)info->frames, sf_strerror(sf))
                     : cmir__error(CMIR_EFORMAT, "%s: truncated: the header promises %lld frames, "
                                   "only %lld could be read", path, (long long)info->frames,
                                   (long long)n);
        cmir__free(m);
        return rc;
    }
    *mono = m;
    *got = n;
    return 0;
}

/* Bytes per sample of the fixed-width encodings, 0 for the others
 * (ADPCM, GSM, ...: their frame count is not data bytes / block). */
static int sample_bytes(int subformat)
{
    switch (subformat) {
    case SF_FORMAT_PCM_S8: case SF_FORMAT_PCM_U8: case SF_FORMAT_ULAW: case SF_FORMAT_ALAW:
        return 1;
    case SF_FORMAT_PCM_16: return 2;
    case SF_FORMAT_PCM_24: return 3;
    case SF_FORMAT_PCM_32: case SF_FORMAT_FLOAT: return 4;
    case SF_FORMAT_DOUBLE: return 8;
    default: return 0;
    }
}

/* ---- streamed WAV ----
 * A recorder writing to a pipe cannot go back to fill in the sizes: it
 * leaves the RIFF and data sizes at 0, 0x7FFFFFFF or 0xFFFFFFFF, meaning
 * "until the end of the file" (sox and libsndfile read them so).
 * libsndfile already clamps the two large markers to the file; a data
 * size of 0 it takes as no audio, so such a file is read through a view
 * of it that shows 0xFFFFFFFF in that field instead. */
static int is_stream_marker(uint32_t v) { return v == 0 || v == 0x7fffffffu || v == 0xffffffffu; }

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Offset of the size field of a RIFF/WAVE file's data chunk when that size
 * is 0 and audio bytes follow it; -1 otherwise. */
static off_t zero_data_size_at(FILE *f, off_t flen)
{
    unsigned char h[12];
    if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4))
        return -1;
    off_t at = 12;
    for (int k = 0; k < 256 && at + 8 <= flen; k++) { /* chunks before data are few */
        if (fseeko(f, at, SEEK_SET) || fread(h, 1, 8, f) != 8)
            return -1;
        uint32_t size = le32(h + 4);
        if (!memcmp(h, "data", 4))
            return size == 0 && at + 8 < flen ? at + 4 : -1;
        at += 8 + (off_t)size + (size & 1);
    }
    return -1;
}

typedef struct view {
    FILE *f;
    off_t len, patch; /* patch: offset of 4 bytes shown as 0xFF */
} view;

static sf_count_t v_len(void *u) { return ((view *)u)->len; }
static sf_count_t v_tell(void *u) { return ftello(((view *)u)->f); }
static sf_count_t v_write(const void *p, sf_count_t n, void *u) { (void)p, (void)n, (void)u; return 0; }
static sf_count_t v_seek(sf_count_t off, int whence, void *u)
{
    view *v = u;
    return fseeko(v->f, off, whence) ? -1 : ftello(v->f);
}
static sf_count_t v_read(void *p, sf_count_t n, void *u)
{
    view *v = u;
    off_t at = ftello(v->f);
    size_t got = fread(p, 1, (size_t)n, v->f);
    for (off_t k = v->patch; k < v->patch + 4; k++)
        if (k >= at && k < at + (off_t)got)
            ((unsigned char *)p)[k - at] = 0xff;
    return (sf_count_t)got;
}

/* sf_open, or for a streamed WAV whose data size is 0, sf_open_virtual on
 * the patched view (vw->f stays open while sf reads it; NULL otherwise). */
static SNDFILE *open_audio(const char *path, SF_INFO *info, view *vw)
{
    static SF_VIRTUAL_IO io = {v_len, v_seek, v_read, v_write, v_tell};
    FILE *f = fopen(path, "rb");
    vw->f = NULL;
    if (f && !fseeko(f, 0, SEEK_END) && (vw->len = ftello(f)) > 0 && !fseeko(f, 0, SEEK_SET) &&
        (vw->patch = zero_data_size_at(f, vw->len)) >= 0 && !fseeko(f, 0, SEEK_SET)) {
        vw->f = f;
        SNDFILE *sf = sf_open_virtual(&io, SFM_READ, info, vw);
        if (!sf) {
            fclose(f);
            vw->f = NULL;
        }
        return sf;
    }
    if (f)
        fclose(f);
    return sf_open(path, SFM_READ, info);
}

/* A WAV whose data chunk declares more bytes than the file holds: libsndfile
 * clamps the length to the file (it only notes it in its log), so the cut
 * file would load as shorter audio. The declared size comes from the chunk
 * itself (libsndfile's chunk API); the streamed-WAV markers (0,
 * 0x7FFFFFFF, 0xFFFFFFFF: "until the end of the file") are let through. Other containers (AIFF, W64, RF64, CAF)
 * and compressed encodings are not checked here (FLAC and Ogg fail in
 * decoding when cut). */
static int check_declared_length(SNDFILE *sf, const SF_INFO *info, const char *path)
{
    int major = info->format & SF_FORMAT_TYPEMASK, width = sample_bytes(info->format & SF_FORMAT_SUBMASK);
    if ((major != SF_FORMAT_WAV && major != SF_FORMAT_WAVEX) || !width || info->frames <= 0)
        return 0;
    SF_CHUNK_INFO want, got;
    memset(&want, 0, sizeof want);
    memset(&got, 0, sizeof got);
    memcpy(want.id, "data", 4);
    want.id_size = 4;
    SF_CHUNK_ITERATOR *it = sf_get_chunk_iterator(sf, &want);
    if (!it || sf_get_chunk_size(it, &got) != SF_ERR_NO_ERROR || is_stream_marker(got.datalen))
        return 0;
    int64_t promised = (int64_t)(got.datalen / ((unsigned)width * (unsigned)info->channels));
    if (info->frames >= promised)
        return 0;
    return cmir__error(CMIR_EFORMAT,
                       "%s: truncated: the header declares %u bytes of audio data (%lld frames), "
                       "the file holds %lld frames",
                       path, got.datalen, (long long)promised, (long long)info->frames);
}

int cmir_audio_load(const char *path, cmir_audio_params p, float **samples, int64_t *n)
{
    SF_INFO info = {0};
    SNDFILE *sf;
    float *mono = NULL;
    int64_t frames = 0;
    int rc;
    if (samples)
        *samples = NULL;
    if (n)
        *n = 0;
    if (!path || !samples || !n)
        return cmir__error(CMIR_EINVAL, "audio: NULL argument");
    if ((rc = cmir__audio_check_params(&p)) != 0)
        return rc;
    view vw;
    if (!(sf = open_audio(path, &info, &vw)))
        return cmir__error(sf_error(NULL) == SF_ERR_SYSTEM ? CMIR_EIO : CMIR_EFORMAT,
                           "sndfile: %s: %s", path, sf_strerror(NULL));
    if (info.channels < 1 || info.channels > CMIR_AUDIO_MAX_CHANNELS)
        rc = cmir__error(CMIR_EUNSUPPORTED, "%s: %d channels (accepted: 1 to %d)", path,
                         info.channels, CMIR_AUDIO_MAX_CHANNELS);
    else if (info.samplerate < CMIR_AUDIO_MIN_RATE || info.samplerate > CMIR_AUDIO_MAX_RATE)
        rc = cmir__error(CMIR_EUNSUPPORTED, "%s: sample rate %d Hz (accepted: %d to %d Hz)", path,
                         info.samplerate, CMIR_AUDIO_MIN_RATE, CMIR_AUDIO_MAX_RATE);
    else if (info.frames < 0)
        rc = cmir__error(CMIR_EFORMAT, "%s: negative frame count in the header", path);
    else if ((double)info.frames > p.max_seconds * info.samplerate)
        rc = cmir__error(CMIR_EUNSUPPORTED, "%s: %lld frames = %.1f s at %d Hz, above the limit of %g s",
                         path, (long long)info.frames, (double)info.frames / info.samplerate,
                         info.samplerate, p.max_seconds);
    else if ((rc = check_declared_length(sf, &info, path)) == 0)
        rc = read_mono(sf, &info, path, &mono, &frames);
    sf_close(sf);
    if (vw.f)
        fclose(vw.f);
    if (rc)
        return rc;
    rc = cmir__audio_condition(mono, frames, info.samplerate, &p, path, samples, n);
    cmir__free(mono);
    return rc;
}
