/* tools: building an untrained model for a tile archive, the one place
 * where the archive's sizes and names become a model spec (the model
 * module knows no archive). */
#ifndef CMIR_TOOLS_ARCHIVE_MODEL_H
#define CMIR_TOOLS_ARCHIVE_MODEL_H

#include "cmir/archive.h"
#include "../model/model_internal.h"

/* cmir__model_new for the archive's tile sizes, band and class names
 * (modality 1 is the audio clip feature with CMIR_SCENARIO_IMAGE_SPEECH).
 * NULL with the error set. */
cmir_model *cmir__model_for_archive(const cmir_archive *a, cmir_cnn_params base,
                                    cmir_unified_params up, uint64_t seed, cmir_scenario scenario);

#endif
