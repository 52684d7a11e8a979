/* A library built against a future ABI major: the harness must refuse it in one line. */
#include "wddm_native.h"

static const WDDM_NATIVE_DRIVER_INFO Info = {
    0x00030000u, (UINT)sizeof(WDDM_NATIVE_DRIVER_INFO), "from the future", NULL, NULL};

const WDDM_NATIVE_DRIVER_INFO *WddmNativeQueryDriverInfo(void) { return &Info; }
