/* Test fixture shared by the audio tests: WAV files written byte by byte,
 * so that a test can make headers that lie (sizes, rates, channels). */
#ifndef CMIR_TEST_WAV_H
#define CMIR_TEST_WAV_H

#include <stdint.h>
#include <stdio.h>

static void put16(FILE *f, unsigned v) { fputc(v & 255, f), fputc((v >> 8) & 255, f); }
static void put32(FILE *f, uint32_t v) { put16(f, v & 0xffff), put16(f, v >> 16); }

/* A canonical 44-byte WAV header (fmt: 1 = PCM, 3 = IEEE float) whose
 * RIFF size is riff_size and data size data_bytes, then `len` bytes of
 * data. */
static void write_wav_sizes(const char *path, int fmt, int ch, uint32_t rate, int bits,
                            uint32_t riff_size, uint32_t data_bytes, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite("RIFF", 1, 4, f);
    put32(f, riff_size);
    fwrite("WAVEfmt ", 1, 8, f);
    put32(f, 16);
    put16(f, (unsigned)fmt);
    put16(f, (unsigned)ch);
    put32(f, rate);
    put32(f, rate * (uint32_t)ch * (uint32_t)bits / 8);
    put16(f, (unsigned)(ch * bits / 8));
    put16(f, (unsigned)bits);
    fwrite("data", 1, 4, f);
    put32(f, data_bytes);
    if (len)
        fwrite(data, 1, len, f);
    fclose(f);
}

/* The same with the RIFF size that data_bytes implies. */
static void write_wav(const char *path, int fmt, int ch, uint32_t rate, int bits,
                      uint32_t data_bytes, const void *data, size_t len)
{
    write_wav_sizes(path, fmt, ch, rate, bits,
                    data_bytes > 0xffffffffu - 36 ? 0xffffffffu : data_bytes + 36, data_bytes, data,
                    len);
}

#endif
