/* wdk_seh.c -- wdk_seh.h's SEH checks compiled as C (tests/test_wdk_cxx.py). */
#include "wdk_seh.h"
