/* The C reference whose DxgkDdiRender calls abort(), as a failed assert() does: SIGABRT. */
#include <stdlib.h>

#define DxgkDdiRender ReferenceDdiRender
#include "refminiport.c"
#undef DxgkDdiRender

NTSTATUS DxgkDdiRender(HANDLE hContext, DXGKARG_RENDER *pRender)
{
    abort();
    return ReferenceDdiRender(hContext, pRender);
}
