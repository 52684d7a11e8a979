/*
 * dispmprt.h -- wddm-conformance WDK compatibility set: display miniport registration
 * (DriverEntry -> DxgkInitialize) and the kernel's interface.
 *
 * Written from Microsoft's public documentation, not the WDK's header; the
 * Windows 7 interface (DXGKDDI_INTERFACE_VERSION_WIN7). The harness loads the
 * library, calls DriverEntry, and takes the DDIs from the DRIVER_INITIALIZATION_DATA
 * the driver passes to DxgkInitialize (implemented by the harness's runtime,
 * wdk_runtime.c, which `wddm-conformance native build --wdk` links in).
 */
#ifndef WDDM_WDK_DISPMPRT_H
#define WDDM_WDK_DISPMPRT_H

#include "ntddk.h"
#include "d3dkmddi.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ------------------------------------------------------------ the kernel's interface */
/* A kernel callback the harness does not model: the member is there (the layout is the
 * WDK's) but calling it does not compile, naming the member. The handle callbacks
 * (DxgkCbGetHandleData, DxgkCbGetHandleParent, DxgkCbEnumHandleChildren, d3dkmddi.h)
 * are modelled. */
typedef struct _WDDM_WDK_UNMODELLED_CALLBACK *WDDM_WDK_UNMODELLED_CALLBACK;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_EVAL_ACPI_METHOD;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_GET_DEVICE_INFORMATION;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_INDICATE_CHILD_STATUS;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_MAP_MEMORY;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_QUEUE_DPC;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_QUERY_SERVICES;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_READ_DEVICE_SPACE;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_SYNCHRONIZE_EXECUTION;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_UNMAP_MEMORY;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_WRITE_DEVICE_SPACE;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_IS_DEVICE_PRESENT;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_NOTIFY_INTERRUPT;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_NOTIFY_DPC;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_QUERYVIDPNINTERFACE;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_QUERYMONITORINTERFACE;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_GETCAPTUREADDRESS;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_LOG_ETW_EVENT;
typedef WDDM_WDK_UNMODELLED_CALLBACK DXGKCB_EXCLUDE_ADAPTER_ACCESS;

/* Given to DxgkDdiStartDevice; valid until DxgkDdiRemoveDevice. */
typedef struct _DXGKRNL_INTERFACE {
    ULONG Size;
    ULONG Version;
    HANDLE DeviceHandle;
    DXGKCB_EVAL_ACPI_METHOD DxgkCbEvalAcpiMethod;
    DXGKCB_GET_DEVICE_INFORMATION DxgkCbGetDeviceInformation;
    DXGKCB_INDICATE_CHILD_STATUS DxgkCbIndicateChildStatus;
    DXGKCB_MAP_MEMORY DxgkCbMapMemory;
    DXGKCB_QUEUE_DPC DxgkCbQueueDpc;
    DXGKCB_QUERY_SERVICES DxgkCbQueryServices;
    DXGKCB_READ_DEVICE_SPACE DxgkCbReadDeviceSpace;
    DXGKCB_SYNCHRONIZE_EXECUTION DxgkCbSynchronizeExecution;
    DXGKCB_UNMAP_MEMORY DxgkCbUnmapMemory;
    DXGKCB_WRITE_DEVICE_SPACE DxgkCbWriteDeviceSpace;
    DXGKCB_IS_DEVICE_PRESENT DxgkCbIsDevicePresent;
    PDXGKCB_GETHANDLEDATA DxgkCbGetHandleData;
    PDXGKCB_GETHANDLEPARENT DxgkCbGetHandleParent;
    PDXGKCB_ENUMHANDLECHILDREN DxgkCbEnumHandleChildren;
    DXGKCB_NOTIFY_INTERRUPT DxgkCbNotifyInterrupt;
    DXGKCB_NOTIFY_DPC DxgkCbNotifyDpc;
    DXGKCB_QUERYVIDPNINTERFACE DxgkCbQueryVidPnInterface;
    DXGKCB_QUERYMONITORINTERFACE DxgkCbQueryMonitorInterface;
    DXGKCB_GETCAPTUREADDRESS DxgkCbGetCaptureAddress;
    DXGKCB_LOG_ETW_EVENT DxgkCbLogEtwEvent;
    DXGKCB_EXCLUDE_ADAPTER_ACCESS DxgkCbExcludeAdapterAccess;
} DXGKRNL_INTERFACE, *PDXGKRNL_INTERFACE;

/* What DxgkDdiStartDevice learns about the adapter. */
typedef struct _DXGK_START_INFO {
    ULONG RequiredDmaQueueEntry;
    GUID AdapterGuid;
    LUID AdapterLuid;
    /* harness: the sizes of the emulated adapter's memory and aperture segments, which a
     * real driver reads from its hardware (its BARs, DxgkCbGetDeviceInformation). */
    SIZE_T MemorySegmentSize;
    SIZE_T ApertureSegmentSize;
} DXGK_START_INFO, *PDXGK_START_INFO;

/* ------------------------------------------------------------ adapter DDIs */
typedef NTSTATUS DXGKDDI_ADD_DEVICE(_In_ const PDEVICE_OBJECT PhysicalDeviceObject,
                                    _Outptr_ PVOID *MiniportDeviceContext);
typedef NTSTATUS DXGKDDI_START_DEVICE(_In_ const PVOID MiniportDeviceContext,
                                      _In_ PDXGK_START_INFO DxgkStartInfo,
                                      _In_ PDXGKRNL_INTERFACE DxgkInterface,
                                      _Out_ PULONG NumberOfVideoPresentSources,
                                      _Out_ PULONG NumberOfChildren);
typedef NTSTATUS DXGKDDI_STOP_DEVICE(_In_ const PVOID MiniportDeviceContext);
typedef NTSTATUS DXGKDDI_REMOVE_DEVICE(_In_ const PVOID MiniportDeviceContext);
typedef void DXGKDDI_UNLOAD(void);
typedef DXGKDDI_ADD_DEVICE *PDXGKDDI_ADD_DEVICE;
typedef DXGKDDI_START_DEVICE *PDXGKDDI_START_DEVICE;
typedef DXGKDDI_STOP_DEVICE *PDXGKDDI_STOP_DEVICE;
typedef DXGKDDI_REMOVE_DEVICE *PDXGKDDI_REMOVE_DEVICE;
typedef DXGKDDI_UNLOAD *PDXGKDDI_UNLOAD;

/* ------------------------------------------------------------ registration */
/* The DDIs the harness calls have their function types; the others are PVOID (the
 * harness never calls them). Version must be DXGKDDI_INTERFACE_VERSION. */
typedef struct _DRIVER_INITIALIZATION_DATA {
    ULONG Version;
    PDXGKDDI_ADD_DEVICE DxgkDdiAddDevice;
    PDXGKDDI_START_DEVICE DxgkDdiStartDevice;
    PDXGKDDI_STOP_DEVICE DxgkDdiStopDevice;
    PDXGKDDI_REMOVE_DEVICE DxgkDdiRemoveDevice;
    PVOID DxgkDdiDispatchIoRequest;
    PVOID DxgkDdiInterruptRoutine;
    PVOID DxgkDdiDpcRoutine;
    PVOID DxgkDdiQueryChildRelations;
    PVOID DxgkDdiQueryChildStatus;
    PVOID DxgkDdiQueryDeviceDescriptor;
    PVOID DxgkDdiSetPowerState;
    PVOID DxgkDdiNotifyAcpiEvent;
    PVOID DxgkDdiResetDevice;
    PDXGKDDI_UNLOAD DxgkDdiUnload;
    PVOID DxgkDdiQueryInterface;
    PVOID DxgkDdiControlEtwLogging;
    PDXGKDDI_QUERYADAPTERINFO DxgkDdiQueryAdapterInfo;
    PDXGKDDI_CREATEDEVICE DxgkDdiCreateDevice;
    PDXGKDDI_CREATEALLOCATION DxgkDdiCreateAllocation;
    PDXGKDDI_DESTROYALLOCATION DxgkDdiDestroyAllocation;
    PVOID DxgkDdiDescribeAllocation;
    PVOID DxgkDdiGetStandardAllocationDriverData;
    PVOID DxgkDdiAcquireSwizzlingRange;
    PVOID DxgkDdiReleaseSwizzlingRange;
    PDXGKDDI_PATCH DxgkDdiPatch;
    PDXGKDDI_SUBMITCOMMAND DxgkDdiSubmitCommand;
    PVOID DxgkDdiPreemptCommand;
    PDXGKDDI_BUILDPAGINGBUFFER DxgkDdiBuildPagingBuffer;
    PVOID DxgkDdiSetPalette;
    PVOID DxgkDdiSetPointerPosition;
    PVOID DxgkDdiSetPointerShape;
    PVOID DxgkDdiResetFromTimeout;
    PVOID DxgkDdiRestartFromTimeout;
    PVOID DxgkDdiEscape;
    PVOID DxgkDdiCollectDbgInfo;
    PVOID DxgkDdiQueryCurrentFence;
    PVOID DxgkDdiIsSupportedVidPn;
    PVOID DxgkDdiRecommendFunctionalVidPn;
    PVOID DxgkDdiEnumVidPnCofuncModality;
    PVOID DxgkDdiSetVidPnSourceAddress;
    PVOID DxgkDdiSetVidPnSourceVisibility;
    PVOID DxgkDdiCommitVidPn;
    PVOID DxgkDdiUpdateActiveVidPnPresentPath;
    PVOID DxgkDdiRecommendMonitorModes;
    PVOID DxgkDdiRecommendVidPnTopology;
    PVOID DxgkDdiGetScanLine;
    PVOID DxgkDdiStopCapture;
    PVOID DxgkDdiControlInterrupt;
    PVOID DxgkDdiCreateOverlay;
    PDXGKDDI_DESTROYDEVICE DxgkDdiDestroyDevice;
    PDXGKDDI_OPENALLOCATIONINFO DxgkDdiOpenAllocation;
    PDXGKDDI_CLOSEALLOCATION DxgkDdiCloseAllocation;
    PDXGKDDI_RENDER DxgkDdiRender;
    PVOID DxgkDdiPresent;
    PVOID DxgkDdiUpdateOverlay;
    PVOID DxgkDdiFlipOverlay;
    PVOID DxgkDdiDestroyOverlay;
    PDXGKDDI_CREATECONTEXT DxgkDdiCreateContext;
    PDXGKDDI_DESTROYCONTEXT DxgkDdiDestroyContext;
    PVOID DxgkDdiLinkDevice;
    PVOID DxgkDdiSetDisplayPrivateDriverFormat;
    PVOID DxgkDdiDescribePageTable;
    PVOID DxgkDdiUpdatePageTable;
    PVOID DxgkDdiUpdatePageDirectory;
    PVOID DxgkDdiMovePageDirectory;
    PVOID DxgkDdiSubmitRender;
    PVOID DxgkDdiCreateAllocation2;
    PVOID DxgkDdiRenderKm;
    PVOID Reserved;
    PVOID DxgkDdiQueryVidPnHWCapability;
} DRIVER_INITIALIZATION_DATA, *PDRIVER_INITIALIZATION_DATA;

/* Registers the driver's DDIs with the (simulated) DirectX graphics kernel. */
NTSTATUS DxgkInitialize(_In_ PDRIVER_OBJECT DriverObject, _In_ PUNICODE_STRING RegistryPath,
                        _In_ PDRIVER_INITIALIZATION_DATA DriverInitializationData);

/* ------------------------------------------------------------ identity (harness) */
/* Optional: the name in the report header and the companions the driver targets,
 * "module:Class" or NULL for the reference's (docs/INTERPRETING.md). Without it the
 * report names the library file and the reference companions are used. */
typedef struct _WDDM_NATIVE_DRIVER_INFO {
    UINT AbiVersion;
    UINT Size;
    const char *Name;
    const char *CommandEncoder;
    const char *GpuModel;
} WDDM_NATIVE_DRIVER_INFO;
#define WDDM_NATIVE_ABI_VERSION 0x00020000u
const WDDM_NATIVE_DRIVER_INFO *WddmNativeQueryDriverInfo(void);
#define WDDM_WDK_DRIVER_INFO(name, encoder, gpu)                                                 \
    static const WDDM_NATIVE_DRIVER_INFO WddmNativeDriverInfo = {                               \
        WDDM_NATIVE_ABI_VERSION, (UINT)sizeof(WDDM_NATIVE_DRIVER_INFO), (name), (encoder), (gpu)}; \
    const WDDM_NATIVE_DRIVER_INFO *WddmNativeQueryDriverInfo(void) { return &WddmNativeDriverInfo; }

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* WDDM_WDK_DISPMPRT_H */
