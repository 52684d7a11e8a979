/*
 * ntddk.h -- wddm-conformance WDK compatibility set: everything a display miniport
 * takes from ntddk.h is in wdm.h here (see docs/native.md for the list).
 */
#ifndef WDDM_WDK_NTDDK_H
#define WDDM_WDK_NTDDK_H

#include "wdm.h"

#endif /* WDDM_WDK_NTDDK_H */
