/* A driver that identifies itself but implements only some entry points. */
#include "wddm_native.h"

WDDM_NATIVE_DRIVER_INFO_DEFINE("partial", NULL, NULL);

NTSTATUS DxgkDdiAddDevice(PVOID PhysicalDeviceObject, PVOID *MiniportDeviceContext)
{
    (void)PhysicalDeviceObject;
    *MiniportDeviceContext = NULL;
    return STATUS_SUCCESS;
}

NTSTATUS DxgkDdiRemoveDevice(PVOID MiniportDeviceContext)
{
    (void)MiniportDeviceContext;
    return STATUS_SUCCESS;
}

NTSTATUS DxgkDdiRender(HANDLE hContext, DXGKARG_RENDER *pRender)
{
    (void)hContext;
    (void)pRender;
    return STATUS_NOT_SUPPORTED;
}
