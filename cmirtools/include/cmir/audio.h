/* cmir/audio.h: the audio front-end of the image <-> speech scenario (query
 * scenes by voice): decoding any file libsndfile reads, conditioning it to
 * 16 kHz mono, log-mel spectrograms and a fixed-length 128-d clip feature.
 *
 * Pipeline of cmir_audio_load / cmir_audio_prepare, in this order:
 *  1. Header limits, checked before anything is allocated: sample rate in
 *     [CMIR_AUDIO_MIN_RATE, CMIR_AUDIO_MAX_RATE] Hz, 1..CMIR_AUDIO_MAX_CHANNELS
 *     channels, at most params.max_seconds (<= CMIR_AUDIO_MAX_SECONDS) of
 *     audio. Buffers grow with the data actually decoded, so a header that
 *     lies about its length costs nothing.
 *  2. Decoding to float (integer formats scaled to [-1, 1), float formats
 *     as stored) and mixing to mono (mean of the channels).
 *  3. Refusals (CMIR_EFORMAT, message "path: problem"): no frames (empty),
 *     fewer than CMIR_AUDIO_MIN_SECONDS (too short), NaN or infinite
 *     samples, silent (peak below CMIR_AUDIO_SILENT_PEAK, i.e. -100 dBFS),
 *     saturated or constant ("clipped to nothing": more than half of the
 *     samples within 1% of the peak magnitude, e.g. all at full scale),
 *     and files truncated against their own header.
 *  4. Resampling to CMIR_AUDIO_RATE with libsamplerate SRC_SINC_MEDIUM_QUALITY
 *     (skipped at 16 kHz). MEDIUM rather than FASTEST because FASTEST's
 *     passband ends at 80% of the output Nyquist (6.4 kHz) while the mel
 *     bands reach 8 kHz; MEDIUM passes 90% (7.2 kHz) at 121 dB SNR, and
 *     clips are at most 10 minutes, so its cost does not matter.
 *  5. Trimming of leading and trailing silence: 20 ms frames every 10 ms;
 *     the kept span runs from the first to the last frame whose RMS is at
 *     least params.trim_db (default -40 dB) relative to the loudest frame.
 *
 * Features (see cmir_audio_extractor_logmel / _feature for the details):
 * log-mel spectrogram through FFTW3 (single precision) and a cepstral clip
 * feature of CMIR_AUDIO_FEATURE_DIM = 128 numbers (segmental by default,
 * or pooled), which stands in for the paper's 128-d VGGish embedding: it
 * needs no training data, is deterministic, invariant to gain and, because
 * it only looks at 50-8000 Hz of a 16 kHz signal, nearly unchanged by the
 * source's sample rate, channel count and encoding. What is learned from
 * speech is learned on top of it: the speech branch of CMIR-NET (an MLP
 * trained with softmax over the labels, cmir/model.h). A CNN over the
 * log-mel frames was the alternative; the fixed feature plus the MLP
 * already names the held-out voices' words at 0.96 (see
 * CMIR_AUDIO_FEATURE_SEGMENTAL), and needs no GPU-scale training data.
 *
 * Errors: functions return 0 or a negative CMIR_E* code, constructors NULL;
 * cmir_last_error() says why. libsndfile's messages are prefixed "sndfile: ",
 * libsamplerate's "samplerate: ". Nothing is printed. Buffers returned to
 * the caller are freed with cmir_free. */
#ifndef CMIR_AUDIO_H
#define CMIR_AUDIO_H

#include "cmir/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CMIR_AUDIO_RATE 16000          /* Hz, rate of every conditioned signal */
#define CMIR_AUDIO_FEATURE_DIM 128     /* length of a clip feature */
#define CMIR_AUDIO_MIN_RATE 4000       /* Hz, lowest accepted input rate */
#define CMIR_AUDIO_MAX_RATE 384000     /* Hz, highest accepted input rate */
#define CMIR_AUDIO_MAX_CHANNELS 32     /* most accepted input channels */
#define CMIR_AUDIO_MAX_SECONDS 600.0   /* hard cap on params.max_seconds */
#define CMIR_AUDIO_MIN_SECONDS 0.025   /* shortest accepted input (one window) */
#define CMIR_AUDIO_SILENT_PEAK 1e-5f   /* peak |x| below this (-100 dBFS): silent */

/* Which clip feature cmir_audio_extractor_feature computes. */
typedef enum cmir_audio_feature_kind {
    /* 32 MFCCs c1..c32 (orthonormal DCT-II of the log-mel, c0 left out),
     * pooled over frames: [0,32) mean, [32,64) standard deviation,
     * [64,96) mean of the deltas, [96,128) standard deviation of the
     * deltas (deltas: regression over +-2 frames, edges replicated). */
    CMIR_AUDIO_FEATURE_CEPSTRAL = 0,
    /* The default. MFCCs c1..c16 averaged over 8 equal spans of the
     * (trimmed) clip's frames, in time order: feat[16 s + k] = mean of
     * c_{k+1} over span s. Keeps the order of the sounds in a word, which
     * pooling over the whole clip loses: on the 17-label espeak-ng corpus
     * (make-speech-corpus.sh defaults, 408 clips of 6 voices to train, 136
     * of 2 held-out voices to test) an MLP classifier reaches 0.963 on the
     * held-out voices with it, against 0.824 with CEPSTRAL (1-nearest
     * neighbour on the standardised features: 0.882 against 0.699).
     * Resampled, re-encoded (FLAC, Vorbis) and 8 kHz versions of a word
     * stay within cosine 0.98 of the original, as with CEPSTRAL; 8-bit
     * linear PCM does not (about 0.5: its dither at either end of the word
     * moves the spans), where CEPSTRAL keeps 0.9: choose CEPSTRAL for such
     * sources, for training and queries alike. */
    CMIR_AUDIO_FEATURE_SEGMENTAL = 1,
    /* The default of cmir_train -speech. Speaker-independent: the clip is
     * decoded by pocketsphinx (Debian's pocketsphinx-en-us acoustic model,
     * trained on real speech) against a JSGF grammar whose words are the
     * labels of params.vocabulary, a phrase being one label or several
     * joined by "and" ("trees and water"). feat[k] is 1 when label k is on
     * the best path, else 0 (entries past the vocabulary are 0). A clip in
     * which nothing is heard (silence, noise: pocketsphinx's voice activity
     * detection finds no speech, or no path through the grammar) is
     * refused by cmir_audio_extractor_feature with "no speech"; a corpus
     * keeps such a clip with an all-zero feature. Why: the acoustic model
     * was trained on real speech, so the decision does not hang on whose
     * voice it is, where a cepstral feature learned from synthesisers is at
     * chance on real voices (issue 15: 14 of 170 real clips right). On the
     * 17-label corpus of bench/speech_quality.sh it keeps its mAP on a
     * held-out engine (Img->Aud 0.45 against 0.50 on seen voices) where the
     * segmental feature falls (0.31 against 0.55). Measured alternatives:
     * lattice node posteriors (ps_latnode_prob after ps_get_prob) are 1 for
     * every word of the FSG lattice in Debian 12's pocketsphinx (a clip got
     * up to 5 labels, and the largest entry named the first label in
     * vocabulary order, not the word heard); n-best lists repeat
     * hypotheses and hold empty ones; one forced alignment per label would
     * give graded scores at L times the cost. The best path is what a stock
     * recogniser answers (0.85 on the real clips) for one decode,
     * about 40 ms per second of audio (bench_sphinx). What limits
     * the mAP (bench/speech_quality.sh, 8 scenes, d_v 64, held-out engine
     * festival): pocketsphinx hears 0.91 of festival's clips, 0.92-1.0 of
     * flite's and 0.55-0.80 of espeak-ng's as exactly their label
     * (bench_heard); with a perfect recogniser (cmir_eval -ranking oracle)
     * Img->Aud would rise from 0.548 to 0.603 and Aud->Img from 0.409 to
     * 0.441, while a ranking with no network (-ranking floor: clips by
     * the label prior, images at random) gets 0.507 and 0.230. So the
     * recogniser costs about 0.05 and the image branch's multi-label
     * ranking is the ceiling; on a validation archive of other scenes
     * stage-2 weights (w_pair 0.2 -> 1) did not move it, 20 stage-1
     * epochs instead of 10 did (held-out engine 0.591 / 0.475, oracle
     * 0.646 / 0.512; 30 epochs: 0.638 / 0.514; README "Query by
     * voice"). Misheard corpus clips are kept out of training and out of
     * the index (cmir_index). Labels are words of the dictionary
     * (multi-word labels such as "bare soil" become one grammar word
     * whose pronunciation is the words' in order); a word the dictionary
     * lacks is refused naming it unless params.extra_dict or a
     * "label<TAB>PHONES" vocabulary entry supplies it. */
    CMIR_AUDIO_FEATURE_SPHINX = 2
} cmir_audio_feature_kind;

/* Debian's pocketsphinx-en-us acoustic model and dictionary. */
#ifndef CMIR_AUDIO_SPHINX_HMM
#define CMIR_AUDIO_SPHINX_HMM "/usr/share/pocketsphinx/model/en-us/en-us"
#endif
#ifndef CMIR_AUDIO_SPHINX_DICT
#define CMIR_AUDIO_SPHINX_DICT "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"
#endif

typedef struct cmir_audio_params {
    double max_seconds; /* longest accepted input, (0, 600]; default 600 */
    float trim_db;      /* trim threshold in dB relative to the loudest 20 ms
                           frame, in [-120, 0); 0 disables trimming; -40 */
    int n_mels;         /* mel bands, 33..256 (the feature needs > 32); 64 */
    float fmin_hz;      /* lowest mel edge, >= 0; 50 */
    float fmax_hz;      /* highest mel edge, <= 8000 (16 kHz Nyquist); 8000 */
    float win_ms;       /* analysis window (periodic Hann), 5..100 ms; 25 */
    float hop_ms;       /* hop between frames, 1..win_ms; 10 */
    float range_db;     /* log-mel dynamic range: values are floored this
                           many dB below the clip's largest mel value,
                           10..160; 30 (see cmir_audio_extractor_logmel) */
    int feature;        /* a cmir_audio_feature_kind; SEGMENTAL */
    /* CMIR_AUDIO_FEATURE_SPHINX only (the caller keeps the strings): */
    const char *vocabulary;  /* the labels, one per line (or separated by
                                '|'), at most CMIR_AUDIO_FEATURE_DIM; an
                                entry "label<TAB>PHONES" gives its
                                pronunciation; feat[k] is entry k. NULL */
    const char *sphinx_hmm;  /* acoustic model folder; NULL: CMIR_AUDIO_SPHINX_HMM */
    const char *sphinx_dict; /* main dictionary; NULL: CMIR_AUDIO_SPHINX_DICT */
    const char *extra_dict;  /* CMUdict-format file consulted before the main
                                dictionary (words it lacks); NULL: none */
} cmir_audio_params;

/* The defaults written above. */
CMIR_API cmir_audio_params cmir_audio_default_params(void);
/* 0, or CMIR_EINVAL with a message naming the first field outside the
 * ranges documented above. Every function taking the params calls it. */
CMIR_API int cmir_audio_check_params(cmir_audio_params p);

/* Decodes `path` (WAV, FLAC, OGG/Vorbis, ... whatever libsndfile reads;
 * any rate, channel count and sample format within the limits above) and
 * conditions it: mono, 16 kHz, silence trimmed. On success *samples is a
 * new buffer of *n float samples (nominally in [-1, 1]; free with
 * cmir_free) and 0 is returned. On failure *samples is NULL, *n is 0 and
 * the return is CMIR_EINVAL (bad arguments or params), CMIR_EIO (cannot
 * open or read the file), CMIR_EFORMAT (not audio, damaged, or refused by
 * a check above), CMIR_EUNSUPPORTED (beyond a limit) or CMIR_ENOMEM. */
CMIR_API int cmir_audio_load(const char *path, cmir_audio_params p, float **samples,
                             int64_t *n);

/* The same conditioning for audio already in memory: `frames` frames of
 * `channels` interleaved float samples at `rate` Hz (not modified, not
 * kept). Output and returns as cmir_audio_load; messages start "audio: ". */
CMIR_API int cmir_audio_prepare(const float *interleaved, int64_t frames, int channels,
                                int rate, cmir_audio_params p, float **samples,
                                int64_t *n);

/* ---- Feature extraction ------------------------------------------------
 * An extractor holds the FFTW plan, window, mel filterbank and DCT matrix
 * for one params, and scratch buffers: create it once and reuse it. One
 * extractor must not be used by two threads at once (use one each).
 * NULL on failure (bad params, allocation, FFTW planning);
 * cmir_audio_extractor_free(NULL) is a no-op. */
typedef struct cmir_audio_extractor cmir_audio_extractor;

CMIR_API cmir_audio_extractor *cmir_audio_extractor_new(cmir_audio_params p);
CMIR_API void cmir_audio_extractor_free(cmir_audio_extractor *ex);

/* Log-mel spectrogram of x (n >= 1 finite samples at 16 kHz, e.g. from
 * cmir_audio_load). Frame t covers x[t*hop, t*hop + win) (hop = 160,
 * win = 400 samples at the defaults), zero-padded past the end; there are
 * 1 + (n - win) / hop frames when n >= win, else 1. Each frame is windowed
 * (periodic Hann), zero-padded to the next power of two (512), transformed
 * (real FFT) and its power |X|^2 weighted by n_mels triangular filters
 * (peak 1, centres equally spaced on the HTK mel scale
 * 2595 log10(1 + f/700) between fmin_hz and fmax_hz). Output: the natural
 * log of the mel power, floored range_db below the clip's largest mel
 * value, so a gain change shifts every value by one constant. The default
 * 30 dB makes the features ignore what lies far under the loudest
 * time-frequency cells: background noise, the quantisation noise of 8-bit
 * files and the empty 4-8 kHz band of narrowband (8 kHz) sources. With
 * 80 dB the 8 kHz and 8-bit versions of a spoken word lay as far from it
 * (relative L2 of the clip feature up to 0.9) as a different word; with
 * 30 dB they lie within 0.10 (8 kHz) and 0.33 (8-bit) while "water" and
 * "forest" stay 0.35 or more apart (test_audio). On success *mel
 * is a new row-major [*n_frames][n_mels] buffer (free with cmir_free).
 * Returns 0, CMIR_EINVAL (NULL, n < 1, NaN/Inf input, too long) or
 * CMIR_ENOMEM. */
CMIR_API int cmir_audio_extractor_logmel(cmir_audio_extractor *ex, const float *x, int64_t n,
                                         float **mel, int64_t *n_frames);

/* The CMIR_AUDIO_FEATURE_DIM clip feature of x (as for _logmel) into
 * feat[0..127], laid out as described at cmir_audio_feature_kind. Returns
 * 0, CMIR_EINVAL or CMIR_ENOMEM (feat is then left unchanged). */
CMIR_API int cmir_audio_extractor_feature(cmir_audio_extractor *ex, const float *x, int64_t n,
                                          float feat[CMIR_AUDIO_FEATURE_DIM]);

/* CMIR_AUDIO_FEATURE_SPHINX: the vocabulary as resolved (one label a line,
 * in feature order; "label<TAB>PHONES" where the pronunciation came from
 * extra_dict or the vocabulary), owned by ex; NULL for other kinds. A model
 * records it so that queries decode with exactly the training grammar. */
CMIR_API const char *cmir_audio_extractor_vocabulary(const cmir_audio_extractor *ex);

/* CMIR_AUDIO_FEATURE_SPHINX: the labels named in x (a phrase such as
 * "trees and water"), 0-based vocabulary indices in the order spoken,
 * without repeats, into labels[0..max); *n_heard of them (0: no speech).
 * Returns 0, CMIR_EINVAL (not a sphinx extractor, bad input) or CMIR_ENOMEM. */
CMIR_API int cmir_audio_extractor_heard(cmir_audio_extractor *ex, const float *x, int64_t n,
                                        int *labels, int max, int *n_heard);

/* The identity of an acoustic model and dictionary (NULL: the defaults):
 * 16 hex digits of a 64-bit FNV-1a hash over its mdef, means, variances,
 * transition_matrices and the dictionary file, into sum[17]. 0 or CMIR_EIO. */
CMIR_API int cmir_audio_sphinx_identity(const char *hmm, const char *dict, char sum[17]);

/* One-shot forms that build and free a temporary extractor. */
CMIR_API int cmir_audio_logmel(const float *x, int64_t n, cmir_audio_params p, float **mel,
                               int64_t *n_frames);
CMIR_API int cmir_audio_features(const float *x, int64_t n, cmir_audio_params p,
                                 float feat[CMIR_AUDIO_FEATURE_DIM]);

/* cmir_audio_load followed by cmir_audio_features: the clip feature of a
 * file. Returns as those two. */
CMIR_API int cmir_audio_clip_feature(const char *path, cmir_audio_params p,
                                     float feat[CMIR_AUDIO_FEATURE_DIM]);

/* ---- Spoken-label corpora ----------------------------------------------
 * A corpus is a manifest CSV with the header line "file,label,voice,
 * held_out" and one clip per line: the audio file (relative to the
 * manifest's folder, or absolute), its spoken label (a class name such as
 * "bare soil"), the speaker/voice name and 0 or 1 (1: a voice held out of
 * training, used only to test). python-free-scripts/make-speech-corpus.sh
 * writes one. Fields are trimmed; blank lines are skipped; anything else
 * malformed is refused with "manifest:line: problem".
 *
 * cmir_audio_corpus_load reads the manifest and computes the clip feature
 * (cmir_audio_clip_feature with p) of every file; the first clip that
 * cannot be read or is refused fails the whole load, with the message
 * naming that file. progress (may be NULL) gets the fraction of clips
 * done; non-zero from it cancels (CMIR_ECANCEL). NULL on failure. The
 * corpus owns everything its accessors return; free it with
 * cmir_audio_corpus_free (NULL is a no-op). */
typedef struct cmir_audio_corpus cmir_audio_corpus;

CMIR_API cmir_audio_corpus *cmir_audio_corpus_load(const char *manifest, cmir_audio_params p,
                                                   cmir_progress_fn progress, void *user);
CMIR_API void cmir_audio_corpus_free(cmir_audio_corpus *c);
/* CMIR_AUDIO_FEATURE_SPHINX: the resolved vocabulary the features were
 * made with (cmir_audio_extractor_vocabulary): p.vocabulary when given,
 * else the manifest's distinct labels in order of first appearance. NULL
 * for other kinds. cmir_audio_corpus_silent: how many clips got the all-zero
 * feature because nothing was heard in them (0 for other kinds). */
CMIR_API const char *cmir_audio_corpus_vocabulary(const cmir_audio_corpus *c);
CMIR_API int64_t cmir_audio_corpus_silent(const cmir_audio_corpus *c);
/* 1 when clip i's feature names its own label (sphinx: its label is on
 * the best path; always 1 for other kinds), else 0. cmir_train trains
 * the speech branch only on such clips: a clip the recogniser mishears
 * would teach the branch that one label's code means another. */
CMIR_API int cmir_audio_corpus_heard_own(const cmir_audio_corpus *c, int64_t i);
/* Number of clips (0 for NULL). */
CMIR_API int64_t cmir_audio_corpus_count(const cmir_audio_corpus *c);
/* The features, row-major count x CMIR_AUDIO_FEATURE_DIM. */
CMIR_API const float *cmir_audio_corpus_features(const cmir_audio_corpus *c);
/* Clip i's resolved file path, label, voice (NULL when i is out of range)
 * and held-out flag (0 or 1). */
CMIR_API const char *cmir_audio_corpus_file(const cmir_audio_corpus *c, int64_t i);
CMIR_API const char *cmir_audio_corpus_label(const cmir_audio_corpus *c, int64_t i);
CMIR_API const char *cmir_audio_corpus_voice(const cmir_audio_corpus *c, int64_t i);
CMIR_API int cmir_audio_corpus_held_out(const cmir_audio_corpus *c, int64_t i);
/* 1 when two label names are the same ignoring case, with '_' taken as a
 * space ("bare_soil" matches "Bare soil"), else 0. */
CMIR_API int cmir_audio_label_match(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif
