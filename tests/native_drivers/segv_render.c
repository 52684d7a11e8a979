/* The C reference whose DxgkDdiRender dereferences NULL: SIGSEGV, 0x1E (ACCESS_VIOLATION). */
#define DxgkDdiRender ReferenceDdiRender
#include "refminiport.c"
#undef DxgkDdiRender

NTSTATUS DxgkDdiRender(HANDLE hContext, DXGKARG_RENDER *pRender)
{
    volatile int *volatile nowhere = 0;
    *nowhere = 1;
    return ReferenceDdiRender(hContext, pRender);
}
