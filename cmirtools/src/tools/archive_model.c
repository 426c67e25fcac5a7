/* cmir__model_for_archive(): the model spec (tile sizes, band and class
 * names) read from a tile archive, so that the trainer can build a model
 * without the model module knowing archives. */
#include "archive_model.h"

cmir_model *cmir__model_for_archive(const cmir_archive *a, cmir_cnn_params base,
                                    cmir_unified_params up, uint64_t seed, cmir_scenario scenario)
{
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    size_t n = (size_t)ai->n_classes + (size_t)ai->pan_bands + (size_t)ai->ms_bands;
    const char **names = cmir__malloc(sizeof(char *) * (n ? n : 1));
    if (!names)
        return NULL;
    const char **cls = names, **pan = names + ai->n_classes, **ms = pan + ai->pan_bands;
    for (int c = 0; c < ai->n_classes; c++)
        cls[c] = cmir_archive_class_name(a, c + 1);
    for (int b = 0; b < ai->pan_bands; b++)
        pan[b] = cmir_archive_band_name(a, CMIR_PAN, b);
    for (int b = 0; b < ai->ms_bands; b++)
        ms[b] = cmir_archive_band_name(a, CMIR_MS, b);
    cmir__model_spec s = {
        .pan_h = ai->pan_h, .pan_w = ai->pan_w, .pan_bands = ai->pan_bands,
        .ms_h = ai->ms_h, .ms_w = ai->ms_w, .ms_bands = ai->ms_bands,
        .n_classes = ai->n_classes, .class_names = cls, .pan_band_names = pan,
        .ms_band_names = ms, .scenario = scenario,
    };
    cmir_model *m = cmir__model_new(&s, base, up, seed);
    cmir__free(names);
    return m;
}
