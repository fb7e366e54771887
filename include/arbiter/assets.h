/* Files compiled into the binary (see deploy/local/embed_blob.sh). */
#ifndef ARBITER_ASSETS_H
#define ARBITER_ASSETS_H
#include <stddef.h>

extern const char ar_ui_index[];      /* src/ui/index.html */
extern const size_t ar_ui_index_len;
extern const char ar_openapi_json[];  /* openapi/arbiter.yaml as JSON */
extern const size_t ar_openapi_json_len;
extern const char ar_i18n_en[];       /* i18n/en.json */
extern const char ar_i18n_zh_cn[];    /* i18n/zh-CN.json */
#endif
