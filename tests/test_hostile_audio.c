/* cmir_audio_load on hostile audio files, made here with libsndfile or
 * byte by byte. Each is refused cleanly (non-zero return, *samples NULL,
 * a one-line message naming the file and the problem) or accepted with
 * sensible output (finite samples, the expected length at 16 kHz, and a
 * clip feature close to the clean file's).
 *
 * Behaviour per case (libsndfile 1.2.0, measured):
 *
 *  case                                    | result
 *  ----------------------------------------+----------------------------------------------
 *  WAV (16-bit) cut at every byte          | every cut refused: inside the 44-byte header
 *                                          |   "sndfile: ..."; inside the data chunk
 *                                          |   "truncated: the header declares N bytes"
 *                                          |   (before the fix in src/audio/load.c these
 *                                          |   loaded as shorter audio)
 *  FLAC cut at every byte                  | every cut refused ("sndfile: ..." or
 *                                          |   "truncated: the header promises N frames",
 *                                          |   the STREAMINFO total)
 *  PNG renamed .wav, text renamed .wav     | refused "sndfile: ... unknown format"-like
 *  0-frame WAV                             | refused "empty"
 *  1-sample WAV                            | refused "too short"
 *  data size 0xFFFFFFF0, 1 s of data       | refused "truncated"
 *  data size 0xFFFFFFF0, no data           | refused "empty"
 *  data size 0xFFFFFFFF (streamed WAV)     | accepted: the 1 s that is there
 *  RIFF and data sizes 0, 0x7FFFFFFF or    | accepted, all 9 combinations: "until the end
 *    0xFFFFFFFF (streamed WAV markers)     |   of the file" as sox reads them (before, data
 *                                          |   0 was refused "empty", 0x7FFFFFFF "truncated")
 *  data size 0x7FFFFFFE, 1 s of data       | refused "truncated"
 *  64 channels                             | refused CMIR_EUNSUPPORTED "64 channels"
 *  32 channels (the limit)                 | accepted, = the mono file's feature
 *  1 Hz / 10 MHz sample rate               | refused CMIR_EUNSUPPORTED "sample rate"
 *  4 kHz / 384 kHz (the limits)            | accepted, 16 kHz output of the right length
 *  all-NaN float WAV                       | refused "NaN"
 *  DC only (constant 0.5)                  | refused "clipped or constant"
 *  clipped square wave (full scale)        | refused "clipped"
 *  8-bit, 24-bit, u-law, A-law, float64,   | accepted, 1 s at 16 kHz, feature within 0.005
 *    WAVEX 32-bit, Ogg Vorbis, a trailing  |   relative L2 of the 16-bit file's (checked
 *    LIST chunk                            |   against 0.05)
 *  4 kHz source (the lowest rate)          | accepted, feature 0.15 away (2 kHz of band;
 *                                          |   checked against 0.3)
 *
 * WAV cut inside its data chunk: libsndfile clamps the length to the file
 * and only logs "data : N (should be M)", so such files used to load as
 * shorter audio; cmir_audio_load now compares the data chunk's declared
 * size (libsndfile's chunk API) with the frames present. AIFF, W64, RF64
 * and CAF cut inside their sample data still load as shorter audio: their
 * declared sizes are not exposed by libsndfile's API (only in its log). */
#include "cmir/audio.h"
#include "test_util.h"
#include "test_wav.h"

#include <sndfile.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_hostile_audio_XXXXXX";

static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

static const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- fixtures ---- */
/* A harmonic tone with a pitch glide, frames x ch at rate, amplitude 0.4. */
static float *tone(int rate, int ch, double seconds, int64_t *frames)
{
    int64_t n = (int64_t)(seconds * rate);
    float *x = malloc(sizeof(float) * (size_t)(n * ch));
    double ph = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / rate, v = 0;
        ph += 2 * 3.14159265358979 * (200 + 80 * t) / rate;
        for (int h = 1; h <= 8; h++)
            v += 0.5 / h * sin(h * ph);
        for (int c = 0; c < ch; c++)
            x[i * ch + c] = (float)(0.4 * v);
    }
    *frames = n;
    return x;
}

static int write_snd(const char *path, int format, int rate, int ch, const float *x, int64_t frames)
{
    SF_INFO info = {0};
    info.samplerate = rate;
    info.channels = ch;
    info.format = format;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf)
        return -1;
    int ok = sf_writef_float(sf, x, frames) == frames;
    sf_close(sf);
    return ok ? 0 : -1;
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static double rel_l2(const float *a, const float *b)
{
    double d = 0, aa = 0;
    for (int i = 0; i < CMIR_AUDIO_FEATURE_DIM; i++)
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), aa += (double)a[i] * a[i];
    return sqrt(d / aa);
}

/* ---- checks ---- */
/* Refused with `code` (0: any error) and a one-line message naming the
 * file and containing `what`. */
static void expect_refused(const char *name, const char *path, int code, const char *what)
{
    float *x = (float *)1;
    int64_t n = 7;
    int rc = cmir_audio_load(path, cmir_audio_default_params(), &x, &n);
    const char *msg = cmir_last_error();
    int ok = rc != 0 && (code == 0 || rc == code) && strstr(msg, base_of(path)) && strstr(msg, what) &&
             !strchr(msg, '\n') && x == NULL && n == 0;
    printf("  %-34s refused (%d): %s\n", name, rc, msg);
    if (!ok)
        fprintf(stderr, "  %s: expected a refusal (%d) naming %s and saying '%s'\n", name, code, base_of(path), what);
    ASSERT_TRUE(rc != 0);
    if (code)
        ASSERT_EQ_INT(rc, code);
    ASSERT_TRUE(strstr(msg, base_of(path)) != NULL);
    ASSERT_TRUE(strstr(msg, what) != NULL);
    ASSERT_TRUE(strchr(msg, '\n') == NULL);
    ASSERT_TRUE(x == NULL && n == 0);
    if (rc == 0)
        cmir_free(x);
}

static float ref_feat[CMIR_AUDIO_FEATURE_DIM];

/* Accepted: finite samples, about `seconds` of 16 kHz output (trimming
 * off; tolerance 1%), and a clip feature within `tol` of the reference. */
static void expect_accepted(const char *name, const char *path, double seconds, double tol)
{
    cmir_audio_params p = cmir_audio_default_params();
    p.trim_db = 0;
    float *x = NULL, feat[CMIR_AUDIO_FEATURE_DIM];
    int64_t n = 0;
    int rc = cmir_audio_load(path, p, &x, &n);
    if (rc) {
        fprintf(stderr, "  %s: refused (%d): %s\n", name, rc, cmir_last_error());
        ASSERT_EQ_INT(rc, 0);
        return;
    }
    int finite = 1;
    float peak = 0;
    for (int64_t i = 0; i < n; i++) {
        finite &= isfinite(x[i]) != 0;
        peak = fmaxf(peak, fabsf(x[i]));
    }
    ASSERT_OK(cmir_audio_features(x, n, cmir_audio_default_params(), feat));
    double d = rel_l2(ref_feat, feat);
    printf("  %-34s accepted: %lld samples at 16 kHz (%.3f s), peak %.2f, feature %.3f from the reference\n", name,
           (long long)n, n / 16000.0, peak, d);
    ASSERT_TRUE(finite);
    ASSERT_NEAR(n, seconds * 16000, 0.01 * seconds * 16000 + 2);
    ASSERT_LE(peak, 1.01);
    ASSERT_LE(d, tol);
    cmir_free(x);
}

/* Cuts `path` at every byte offset below its size (every `step`-th) and
 * loads each cut: every one must be refused with a message naming it. */
static void cut_every_byte(const char *label, const char *path, const char *cutname, int step)
{
    long size = file_size(path);
    FILE *f = fopen(path, "rb");
    unsigned char *b = malloc((size_t)size);
    ASSERT_TRUE(f && b && fread(b, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    const char *cut = in_dir(cutname);
    int tried = 0, refused = 0, unnamed = 0, accepted = 0, by_header = 0, by_length = 0;
    FILE *o = fopen(cut, "wb");
    ASSERT_TRUE(o && fwrite(b, 1, (size_t)size, o) == (size_t)size);
    fclose(o);
    /* Offsets descending: the one copy is shortened each time. */
    for (long off = (size - 1) / step * step; off >= 0; off -= step) {
        ASSERT_EQ_INT(truncate(cut, off), 0);
        float *x = NULL;
        int64_t n = 0;
        int rc = cmir_audio_load(cut, cmir_audio_default_params(), &x, &n);
        tried++;
        if (rc == 0) {
            if (accepted++ < 3)
                fprintf(stderr, "  %s cut at %ld of %ld: loaded as %lld samples\n", label, off, size, (long long)n);
            cmir_free(x);
            continue;
        }
        refused++;
        const char *msg = cmir_last_error();
        if (!strstr(msg, cutname) || strchr(msg, '\n')) {
            if (unnamed++ < 3)
                fprintf(stderr, "  %s cut at %ld: message '%s'\n", label, off, msg);
        }
        by_header += strstr(msg, "sndfile: ") != NULL;
        by_length += strstr(msg, "truncated") != NULL;
    }
    printf("  %s (%ld bytes): %d cuts, %d refused (%d by libsndfile, %d as truncated against the header, "
           "%d other), %d loaded, %d messages without the file name\n",
           label, size, tried, refused, by_header, by_length, refused - by_header - by_length, accepted, unnamed);
    ASSERT_EQ_INT(accepted, 0);
    ASSERT_EQ_INT(unnamed, 0);
    ASSERT_EQ_INT(refused, tried);
    ASSERT_TRUE(tried >= size / step);
    free(b);
}

/* ---- cases ---- */
static void test_truncated(void)
{
    int64_t frames;
    float *x = tone(16000, 1, 0.3, &frames);
    const char *wav = in_dir("t.wav"), *flac = in_dir("t.flac");
    ASSERT_EQ_INT(write_snd(wav, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, x, frames), 0);
    ASSERT_EQ_INT(write_snd(flac, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, x, frames), 0);
    free(x);
    cut_every_byte("WAV 16-bit", wav, "cut.wav", 1);
    cut_every_byte("FLAC", flac, "cut.flac", 1);
    /* The files as they are load. */
    float *y = NULL;
    int64_t n;
    ASSERT_OK(cmir_audio_load(wav, cmir_audio_default_params(), &y, &n));
    cmir_free(y);
    ASSERT_OK(cmir_audio_load(flac, cmir_audio_default_params(), &y, &n));
    cmir_free(y);
}

static void test_not_audio(void)
{
    static const unsigned char png[] = {
        0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 'I', 'H', 'D', 'R', 0, 0, 0, 1, 0, 0, 0, 1,
        8, 0, 0, 0, 0, 0x3a, 0x7e, 0x9b, 0x55, 0, 0, 0, 0x0a, 'I', 'D', 'A', 'T', 0x78, 0x9c, 0x63, 0x60, 0,
        0, 0, 2, 0, 1, 0xe5, 0x27, 0xde, 0xfc, 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    const char *p = in_dir("image.wav"), *t = in_dir("notes.wav");
    FILE *f = fopen(p, "wb");
    fwrite(png, 1, sizeof png, f);
    fclose(f);
    f = fopen(t, "w");
    fputs("RIFF is not what this is: a text file with a .wav name.\n", f);
    fclose(f);
    expect_refused("PNG renamed .wav", p, CMIR_EFORMAT, "sndfile: ");
    expect_refused("text renamed .wav", t, CMIR_EFORMAT, "sndfile: ");
}

static void test_hostile_headers(void)
{
    static int16_t pcm[16000];
    static float fl[16000];
    for (int i = 0; i < 16000; i++)
        pcm[i] = (int16_t)(9000 * sin(i * 0.07) * (0.6 + 0.4 * sin(i * 0.001)));
    const char *p;
    write_wav(p = in_dir("zero_frames.wav"), 1, 1, 16000, 16, 0, NULL, 0);
    expect_refused("0-frame WAV", p, CMIR_EFORMAT, "empty");
    write_wav(p = in_dir("one_sample.wav"), 1, 1, 16000, 16, 2, pcm + 10, 2);
    expect_refused("1-sample WAV", p, CMIR_EFORMAT, "too short");
    write_wav(p = in_dir("claims_4gb.wav"), 1, 1, 16000, 16, 0xfffffff0u, pcm, sizeof pcm);
    expect_refused("data 0xFFFFFFF0, 1 s present", p, CMIR_EFORMAT, "truncated");
    write_wav(p = in_dir("claims_4gb_empty.wav"), 1, 1, 16000, 16, 0xfffffff0u, NULL, 0);
    expect_refused("data 0xFFFFFFF0, nothing present", p, CMIR_EFORMAT, "empty");
    write_wav(p = in_dir("ch64.wav"), 1, 64, 16000, 16, sizeof pcm, pcm, sizeof pcm);
    expect_refused("64 channels", p, CMIR_EUNSUPPORTED, "64 channels");
    write_wav(p = in_dir("rate1.wav"), 1, 1, 1, 16, sizeof pcm, pcm, sizeof pcm);
    expect_refused("1 Hz", p, CMIR_EUNSUPPORTED, "sample rate 1 Hz");
    write_wav(p = in_dir("rate10M.wav"), 1, 1, 10000000, 16, sizeof pcm, pcm, sizeof pcm);
    expect_refused("10 MHz", p, CMIR_EUNSUPPORTED, "sample rate 10000000 Hz");
    for (int i = 0; i < 16000; i++)
        fl[i] = NAN;
    write_wav(p = in_dir("nan.wav"), 3, 1, 16000, 32, sizeof fl, fl, sizeof fl);
    expect_refused("all-NaN float WAV", p, CMIR_EFORMAT, "NaN");
    for (int i = 0; i < 16000; i++)
        fl[i] = 0.5f;
    write_wav(p = in_dir("dc.wav"), 3, 1, 16000, 32, sizeof fl, fl, sizeof fl);
    expect_refused("DC only", p, CMIR_EFORMAT, "clipped or constant");
    static int16_t sq[16000];
    for (int i = 0; i < 16000; i++) /* a 200 Hz tone driven far into clipping */
        sq[i] = (int16_t)fmax(-32768, fmin(32767, 400000 * sin(i * 2 * 3.14159265358979 * 200 / 16000)));
    write_wav(p = in_dir("clipped.wav"), 1, 1, 16000, 16, sizeof sq, sq, sizeof sq);
    expect_refused("clipped square wave", p, CMIR_EFORMAT, "clipped");
}

static void test_accepted(void)
{
    int64_t frames;
    float *x = tone(16000, 1, 1.0, &frames);
    const char *ref = in_dir("ref.wav");
    ASSERT_EQ_INT(write_snd(ref, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, x, frames), 0);
    ASSERT_OK(cmir_audio_clip_feature(ref, cmir_audio_default_params(), ref_feat));
    static const struct {
        const char *name, *file;
        int format;
        double tol;
    } enc[] = {{"8-bit unsigned", "u8.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 0.05},
               {"24-bit", "s24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 0.05},
               {"u-law", "ulaw.wav", SF_FORMAT_WAV | SF_FORMAT_ULAW, 0.05},
               {"A-law", "alaw.wav", SF_FORMAT_WAV | SF_FORMAT_ALAW, 0.05},
               {"float64", "f64.wav", SF_FORMAT_WAV | SF_FORMAT_DOUBLE, 0.05},
               {"WAVEX 32-bit", "wavex.wav", SF_FORMAT_WAVEX | SF_FORMAT_PCM_32, 0.05},
               {"Ogg Vorbis", "v.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 0.05}};
    for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++) {
        const char *p = in_dir(enc[i].file);
        if (write_snd(p, enc[i].format, 16000, 1, x, frames) != 0) {
            printf("  %-34s skipped: this libsndfile cannot write it\n", enc[i].name);
            continue;
        }
        expect_accepted(enc[i].name, p, 1.0, enc[i].tol);
    }
    /* A streamed WAV: data size 0xFFFFFFFF ("unknown"), 1 s present. */
    static int16_t pcm[16000];
    for (int i = 0; i < 16000; i++)
        pcm[i] = (int16_t)lrintf(x[i] * 32767);
    const char *p = in_dir("streamed.wav");
    write_wav(p, 1, 1, 16000, 16, 0xffffffffu, pcm, sizeof pcm);
    expect_accepted("data 0xFFFFFFFF (streamed)", p, 1.0, 0.05);
    /* Every streamed-WAV marker in the RIFF and data sizes means "until
     * the end of the file", as sox reads them; a specific size the file
     * does not hold (one byte short of the 0x7FFFFFFF marker) is still
     * refused as truncated. */
    static const uint32_t marks[3] = {0, 0x7fffffffu, 0xffffffffu};
    for (int r = 0; r < 3; r++)
        for (int d = 0; d < 3; d++) {
            char name[64], what[80];
            snprintf(name, sizeof name, "streamed_%d_%d.wav", r, d);
            snprintf(what, sizeof what, "RIFF 0x%X, data 0x%X (streamed)", marks[r], marks[d]);
            write_wav_sizes(p = in_dir(name), 1, 1, 16000, 16, marks[r], marks[d], pcm, sizeof pcm);
            expect_accepted(what, p, 1.0, 0.05);
        }
    write_wav_sizes(p = in_dir("claims_7ffffffe.wav"), 1, 1, 16000, 16, 0x7fffffffu, 0x7ffffffeu,
                    pcm, sizeof pcm);
    expect_refused("data 0x7FFFFFFE, 1 s present", p, CMIR_EFORMAT, "truncated");
    /* A LIST chunk after the data chunk. */
    p = in_dir("trailing_list.wav");
    write_wav(p, 1, 1, 16000, 16, sizeof pcm, pcm, sizeof pcm);
    FILE *f = fopen(p, "r+b");
    fseek(f, 0, SEEK_END);
    fwrite("LIST", 1, 4, f);
    put32(f, 12);
    fwrite("INFOISFT\0\0\0\0", 1, 12, f);
    fseek(f, 4, SEEK_SET);
    put32(f, (uint32_t)(36 + sizeof pcm + 20));
    fclose(f);
    expect_accepted("trailing LIST chunk", p, 1.0, 0.05);
    free(x);
    /* Channel and rate limits. */
    float *c32 = tone(16000, 32, 1.0, &frames);
    ASSERT_EQ_INT(write_snd(p = in_dir("ch32.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 32, c32, frames), 0);
    free(c32);
    expect_accepted("32 channels (the limit)", p, 1.0, 0.05);
    float *lo = tone(4000, 1, 1.0, &frames);
    ASSERT_EQ_INT(write_snd(p = in_dir("rate4k.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 4000, 1, lo, frames), 0);
    free(lo);
    expect_accepted("4 kHz (the lowest rate)", p, 1.0, 0.3); /* 2 kHz of band left: measured 0.15 */
    float *hi = tone(384000, 1, 1.0, &frames);
    ASSERT_EQ_INT(write_snd(p = in_dir("rate384k.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, 384000, 1, hi, frames), 0);
    free(hi);
    expect_accepted("384 kHz (the highest rate)", p, 1.0, 0.05);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_truncated);
    RUN(test_not_audio);
    RUN(test_hostile_headers);
    RUN(test_accepted);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
