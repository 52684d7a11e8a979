/* The C reference whose DxgkDdiRender never returns: the watchdog must report a TDR. */
#define DxgkDdiRender ReferenceDdiRender
#include "refminiport.c"
#undef DxgkDdiRender

NTSTATUS DxgkDdiRender(HANDLE hContext, DXGKARG_RENDER *pRender)
{
    volatile int spin = 1;
    while (spin) {
    }
    return ReferenceDdiRender(hContext, pRender);
}
