/* The C reference whose DxgkDdiRender dereferences NULL: SIGSEGV, 0x1E (ACCESS_VIOLATION).
   It says so on stderr first: the report shows a dead check's last output. */
#include <stdio.h>

#define DxgkDdiRender ReferenceDdiRender
#include "refminiport.c"
#undef DxgkDdiRender

NTSTATUS DxgkDdiRender(HANDLE hContext, DXGKARG_RENDER *pRender)
{
    volatile int *volatile nowhere = 0;
    fprintf(stderr, "hostile driver's last words: writing through NULL\n");
    *nowhere = 1;
    return ReferenceDdiRender(hContext, pRender);
}
