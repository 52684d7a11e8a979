/*
 * A small WDK-style driver for tests/test_wdk_native.py: DriverEntry + DxgkInitialize,
 * devices and allocations kept in tagged pool under a spin lock, PAGED_CODE, NT_ASSERT
 * and DbgPrintEx. It answers the adapter queries and the allocation lifecycle for the
 * reference user-mode format; Render copies the command buffer inside __try and does
 * nothing else (it is not a conforming driver: it exists to exercise the runtime).
 *
 * Each WDK_BUG_* macro builds a broken variant the runtime must catch.
 */
#include <ntddk.h>
#include <dispmprt.h>
#include <string.h>

#define TAG_ADAPTER 'adkW' /* "Wkda" */
#define TAG_DEVICE 'vdkW'
#define TAG_ALLOCATION 'lakW'
#define ALLOCATION_MAGIC 0x434C4152u /* 'RALC' */

typedef struct _ADAPTER {
    KSPIN_LOCK Lock;
    ULONG Allocations;
    SIZE_T MemorySegmentSize;
} ADAPTER;

typedef struct _DEVICE {
    ADAPTER *Adapter;
} DEVICE;

typedef struct _ALLOCATION {
    SIZE_T Size;
} ALLOCATION;

WDDM_WDK_DRIVER_INFO("wdk-pool test driver", NULL, NULL)

/* The kernel's DxgkCbGetHandleData (the same for every adapter of the process). */
static PDXGKCB_GETHANDLEDATA GetHandleData;

static NTSTATUS AddDevice(const PDEVICE_OBJECT PhysicalDeviceObject, PVOID *MiniportDeviceContext) {
    PAGED_CODE();
    UNREFERENCED_PARAMETER(PhysicalDeviceObject);
    ADAPTER *adapter = ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(ADAPTER), TAG_ADAPTER);
    if (adapter == NULL)
        return STATUS_NO_MEMORY;
    KeInitializeSpinLock(&adapter->Lock);
    *MiniportDeviceContext = adapter;
    return STATUS_SUCCESS;
}

static NTSTATUS RemoveDevice(const PVOID MiniportDeviceContext) {
#ifndef WDK_BUG_LEAK_ADAPTER
    ExFreePoolWithTag(MiniportDeviceContext, TAG_ADAPTER);
#else
    UNREFERENCED_PARAMETER(MiniportDeviceContext);
#endif
    return STATUS_SUCCESS;
}

static NTSTATUS StartDevice(const PVOID MiniportDeviceContext, PDXGK_START_INFO DxgkStartInfo,
                            PDXGKRNL_INTERFACE DxgkInterface, PULONG NumberOfVideoPresentSources,
                            PULONG NumberOfChildren) {
    ADAPTER *adapter = MiniportDeviceContext;
    NT_ASSERT(DxgkInterface->Size == sizeof(DXGKRNL_INTERFACE));
    GetHandleData = DxgkInterface->DxgkCbGetHandleData;
    adapter->MemorySegmentSize = DxgkStartInfo->MemorySegmentSize;
    *NumberOfVideoPresentSources = 0;
    *NumberOfChildren = 0;
    DbgPrintEx(DPFLTR_IHVVIDEO_ID, DPFLTR_INFO_LEVEL, "wdk_pool: started with %zu bytes of video memory\n",
               (size_t)adapter->MemorySegmentSize);
    return STATUS_SUCCESS;
}

static NTSTATUS QueryAdapterInfo(const HANDLE hAdapter, const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo) {
    ADAPTER *adapter = hAdapter;
    if (pQueryAdapterInfo->Type == DXGKQAITYPE_QUERYSEGMENT) {
        DXGK_QUERYSEGMENTOUT *out = pQueryAdapterInfo->pOutputData;
        if (out->pSegmentDescriptor != NULL && out->NbSegment >= 1) {
            DXGK_SEGMENTDESCRIPTOR *segment = &out->pSegmentDescriptor[0];
            RtlZeroMemory(segment, sizeof *segment);
            segment->BaseAddress.QuadPart = 0x100000000LL;
            segment->Size = adapter->MemorySegmentSize;
            segment->CommitLimit = adapter->MemorySegmentSize;
            segment->Flags.CpuVisible = 1;
        }
        out->NbSegment = 1;
        out->PagingBufferSegmentId = 0;
        out->PagingBufferSize = 0x10000;
        return STATUS_SUCCESS;
    }
    if (pQueryAdapterInfo->Type == DXGKQAITYPE_DRIVERCAPS) {
        DXGK_DRIVERCAPS *caps = pQueryAdapterInfo->pOutputData;
        caps->DmaBufferPrivateDataSize = 0;
        caps->HarnessCaps = 0;
        return STATUS_SUCCESS;
    }
    return STATUS_NOT_SUPPORTED;
}

static NTSTATUS CreateDevice(const HANDLE hAdapter, DXGKARG_CREATEDEVICE *pCreateDevice) {
    PAGED_CODE();
    DEVICE *device = ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof(DEVICE), TAG_DEVICE);
    if (device == NULL)
        return STATUS_NO_MEMORY;
    device->Adapter = hAdapter;
    pCreateDevice->hDevice = device;
    return STATUS_SUCCESS;
}

static NTSTATUS DestroyDevice(const HANDLE hDevice) {
    PAGED_CODE();
#ifndef WDK_BUG_LEAK_DEVICE
    ExFreePoolWithTag(hDevice, TAG_DEVICE);
#else
    UNREFERENCED_PARAMETER(hDevice);
#endif
    return STATUS_SUCCESS;
}

static NTSTATUS CreateAllocation(const HANDLE hAdapter, DXGKARG_CREATEALLOCATION *pCreateAllocation) {
    ADAPTER *adapter = hAdapter;
    KIRQL irql;
    UINT made = 0;
    PAGED_CODE();
    for (UINT i = 0; i < pCreateAllocation->NumAllocations; i++) {
        DXGK_ALLOCATIONINFO *info = &pCreateAllocation->pAllocationInfo[i];
        const UCHAR *data = info->pPrivateDriverData;
        ULONG magic;
        ULONGLONG size;
        if (data == NULL || info->PrivateDriverDataSize != 24)
            goto fail;
        RtlCopyMemory(&magic, data, sizeof magic);
        RtlCopyMemory(&size, data + 8, sizeof size);
#ifdef WDK_BUG_ASSERT_ON_VALID
        NT_ASSERT(size > (1u << 30)); /* wrong: every valid size fails it */
#endif
        if (magic != ALLOCATION_MAGIC || size == 0 || size > adapter->MemorySegmentSize)
            goto fail;
        ALLOCATION *allocation = ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(ALLOCATION), TAG_ALLOCATION);
        if (allocation == NULL)
            goto fail;
        allocation->Size = ROUND_TO_PAGES(size);
        info->Size = allocation->Size;
        info->Alignment = PAGE_SIZE;
        info->SupportedReadSegmentSet = 1u << 1;
        info->SupportedWriteSegmentSet = 1u << 1;
        info->PreferredSegment.SegmentId0 = 1;
        info->hAllocation = allocation;
        made++;
    }
    KeAcquireSpinLock(&adapter->Lock, &irql);
    adapter->Allocations += made;
#ifndef WDK_BUG_LOCK_HELD
    KeReleaseSpinLock(&adapter->Lock, irql);
#endif
    DbgPrintEx(DPFLTR_IHVVIDEO_ID, DPFLTR_TRACE_LEVEL, "wdk_pool: created %u allocation(s)\n", made);
    return STATUS_SUCCESS;
fail:
#ifndef WDK_BUG_LEAK_ON_FAILED_BATCH
    for (UINT i = 0; i < made; i++) {
        ExFreePoolWithTag(pCreateAllocation->pAllocationInfo[i].hAllocation, TAG_ALLOCATION);
        pCreateAllocation->pAllocationInfo[i].hAllocation = NULL;
    }
#endif
    DbgPrintEx(DPFLTR_IHVVIDEO_ID, DPFLTR_ERROR_LEVEL, "wdk_pool: rejected allocation %u\n", made);
    return STATUS_INVALID_PARAMETER;
}

static NTSTATUS DestroyAllocation(const HANDLE hAdapter, const DXGKARG_DESTROYALLOCATION *pDestroyAllocation) {
    ADAPTER *adapter = hAdapter;
    KIRQL irql;
    PAGED_CODE();
    for (UINT i = 0; i < pDestroyAllocation->NumAllocations; i++) {
#ifdef WDK_BUG_LEAK_ALLOCATION
        if (i == 0)
            continue; /* forgets the first allocation's object */
#endif
        ExFreePoolWithTag(pDestroyAllocation->pAllocationList[i], TAG_ALLOCATION);
#ifdef WDK_BUG_DOUBLE_FREE
        ExFreePoolWithTag(pDestroyAllocation->pAllocationList[i], TAG_ALLOCATION);
#endif
    }
#ifdef WDK_BUG_FOREIGN_FREE
    ExFreePool((PVOID)pDestroyAllocation);
#endif
    KeAcquireSpinLock(&adapter->Lock, &irql);
#ifdef WDK_BUG_PAGED_UNDER_LOCK
    PAGED_CODE();
#endif
    adapter->Allocations -= pDestroyAllocation->NumAllocations;
    KeReleaseSpinLock(&adapter->Lock, irql);
    return STATUS_SUCCESS;
}

static NTSTATUS OpenAllocation(const HANDLE hDevice, const DXGKARG_OPENALLOCATION *pOpenAllocation) {
    UNREFERENCED_PARAMETER(hDevice);
    for (UINT i = 0; i < pOpenAllocation->NumAllocations; i++) {
        DXGK_OPENALLOCATIONINFO *open = &pOpenAllocation->pOpenAllocation[i];
        DXGKARGCB_GETHANDLEDATA get = {.hObject = open->hAllocation, .Type = DXGK_HANDLE_ALLOCATION};
        open->hDeviceSpecificAllocation = GetHandleData(&get);
        if (open->hDeviceSpecificAllocation == NULL)
            return STATUS_INVALID_HANDLE;
    }
    return STATUS_SUCCESS;
}

static NTSTATUS CloseAllocation(const HANDLE hDevice, const DXGKARG_CLOSEALLOCATION *pCloseAllocation) {
    UNREFERENCED_PARAMETER(hDevice);
    UNREFERENCED_PARAMETER(pCloseAllocation);
    return STATUS_SUCCESS;
}

#ifdef WDK_DIRECT_READS
/* Reads pCommand directly in the way DmaSize names (the test's selector, not a size). */
static NTSTATUS DirectReads(const DXGKARG_RENDER *pRender) {
    const UCHAR *p = pRender->pCommand;
    const UINT n = pRender->CommandLength;
    volatile ULONG sum = 0;
    UCHAR *copy = ExAllocatePool2(POOL_FLAG_PAGED, n + 1, 'rdkW');
    if (copy == NULL)
        return STATUS_NO_MEMORY;
    __try {
        switch (pRender->DmaSize) {
        case 0: /* one copy with the C library's memcpy */
            memcpy(copy, p, n);
            break;
        case 1: /* the same copy twice */
            memcpy(copy, p, n);
            memcpy(copy, p, n);
            break;
        case 2: /* plain loads: +0, +4, and +0 again */
            sum += *(volatile const ULONG *)p;
            sum += *(volatile const ULONG *)(p + 4);
            sum += *(volatile const ULONG *)p;
            break;
        case 3: /* a byte loop, once */
            for (UINT i = 0; i < n; i++)
                sum += ((volatile const UCHAR *)p)[i];
            break;
        case 4: /* an 8-byte load across the first page boundary of the buffer */
            sum += (ULONG) * (volatile const ULONGLONG *)(p + 4092);
            break;
        case 5: /* a write to user memory (not a read) */
            *(volatile UCHAR *)p = 0x5A;
            break;
        case 6: /* a copy, then a load of +40: the copy is whole, the load sees a race */
            memcpy(copy, p, n);
            sum += *(volatile const ULONG *)(p + 40);
            if (copy[40] | copy[41] | copy[42] | copy[43])
                sum += 1; /* the copy was torn */
            break;
        case 8: { /* a load holding a spin lock (DISPATCH_LEVEL): user memory is pageable */
            KIRQL irql;
            KSPIN_LOCK lock;
            KeInitializeSpinLock(&lock);
            KeAcquireSpinLock(&lock, &irql);
            sum += *(volatile const ULONG *)p;
            KeReleaseSpinLock(&lock, irql);
            break;
        }
        case 7: /* as 6, copying with a byte loop */
            for (UINT i = 0; i < n; i++)
                copy[i] = ((volatile const UCHAR *)p)[i];
            sum += *(volatile const ULONG *)(p + 40);
            if (copy[40] | copy[41] | copy[42] | copy[43])
                sum += 1;
            break;
        }
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        ExFreePoolWithTag(copy, 'rdkW');
        return STATUS_INVALID_PARAMETER;
    }
    ExFreePoolWithTag(copy, 'rdkW');
    return sum == 0xFFFFFFFF ? STATUS_SUCCESS : STATUS_NOT_SUPPORTED;
}
#endif

static NTSTATUS Render(const HANDLE hContext, DXGKARG_RENDER *pRender) {
    UCHAR first[16];
#ifdef WDK_DIRECT_READS
    UNREFERENCED_PARAMETER(first);
    UNREFERENCED_PARAMETER(hContext);
    return DirectReads(pRender);
#endif
    UNREFERENCED_PARAMETER(hContext);
    SIZE_T n = pRender->CommandLength < sizeof first ? pRender->CommandLength : sizeof first;
#ifdef WDK_BUG_NULL_READ
    if (pRender->CommandLength == 7) /* a bug of the driver's own, not on user memory */
        return *(volatile NTSTATUS *)pRender->pDmaBuffer;
#endif
#ifdef WDK_BUG_NO_TRY
    memcpy(first, pRender->pCommand, n); /* wrong: a fault here is not caught */
    return n && first[n - 1] == 0xFF ? STATUS_INVALID_PARAMETER : STATUS_NOT_SUPPORTED;
#endif
    __try {
#ifdef WDK_DIRECT_COPY
        memcpy(first, pRender->pCommand, n); /* a plain read: the fault is a real one */
#else
        ProbeForRead(pRender->pCommand, n, 1);
        RtlCopyMemory(first, pRender->pCommand, n);
#endif
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        DbgPrintEx(DPFLTR_IHVVIDEO_ID, DPFLTR_ERROR_LEVEL, "wdk_pool: pCommand faulted (0x%08X)\n",
                   (unsigned)GetExceptionCode());
        return STATUS_INVALID_PARAMETER;
    }
    return STATUS_NOT_SUPPORTED;
}

#ifdef WDK_SEH_RENDER
/* tests/native_drivers/wdk_seh.c (or .cpp), linked in: its Render reads pCommand under
 * nested __try/__finally and __try/__except and logs what GetExceptionInformation says. */
NTSTATUS WdkSehRender(const HANDLE hContext, DXGKARG_RENDER *pRender);
#endif

static NTSTATUS Patch(const HANDLE hAdapter, const DXGKARG_PATCH *pPatch) {
    UNREFERENCED_PARAMETER(hAdapter);
    UNREFERENCED_PARAMETER(pPatch);
    return STATUS_SUCCESS;
}

static NTSTATUS SubmitCommand(const HANDLE hAdapter, const DXGKARG_SUBMITCOMMAND *pSubmitCommand) {
    UNREFERENCED_PARAMETER(hAdapter);
    UNREFERENCED_PARAMETER(pSubmitCommand);
    return STATUS_SUCCESS;
}

static NTSTATUS BuildPagingBuffer(const HANDLE hAdapter, DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer) {
    UNREFERENCED_PARAMETER(hAdapter);
    UNREFERENCED_PARAMETER(pBuildPagingBuffer);
    return STATUS_SUCCESS;
}

static NTSTATUS CreateContext(const HANDLE hDevice, DXGKARG_CREATECONTEXT *pCreateContext) {
    pCreateContext->hContext = hDevice;
    return STATUS_SUCCESS;
}

static NTSTATUS DestroyContext(const HANDLE hContext) {
    UNREFERENCED_PARAMETER(hContext);
    return STATUS_SUCCESS;
}

/* Exported for the exception tests: each runs through WddmWdkInvoke like a DDI. */
NTSTATUS WdkTestNested(PVOID Unused) {
    volatile NTSTATUS inner = 0, outer = 0;
    UNREFERENCED_PARAMETER(Unused);
    __try {
        __try {
            ExRaiseStatus(STATUS_INTEGER_OVERFLOW);
        } __except (GetExceptionCode() == STATUS_ACCESS_VIOLATION ? EXCEPTION_EXECUTE_HANDLER
                                                                  : EXCEPTION_CONTINUE_SEARCH) {
            inner = GetExceptionCode(); /* not reached: the filter passes it on */
        }
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        outer = GetExceptionCode();
    }
    __try {
        ExRaiseStatus(STATUS_ACCESS_VIOLATION);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        inner = GetExceptionCode();
    }
    /* 0 when both landed where they should */
    return (outer == STATUS_INTEGER_OVERFLOW && inner == STATUS_ACCESS_VIOLATION) ? STATUS_SUCCESS
                                                                                    : STATUS_UNSUCCESSFUL;
}

static NTSTATUS LeaveEarly(void) {
    __try {
        return STATUS_PENDING; /* leaves the __try by return: its frame must be unlinked */
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return STATUS_UNSUCCESSFUL;
    }
}

NTSTATUS WdkTestReturnFromTry(PVOID Unused) {
    UNREFERENCED_PARAMETER(Unused);
    if (LeaveEarly() != STATUS_PENDING)
        return STATUS_UNSUCCESSFUL;
    ExRaiseStatus(STATUS_INVALID_PARAMETER); /* no __try left: unhandled, bug check 0x1E */
}

NTSTATUS WdkTestRaiseIrql(PVOID Unused) {
    KIRQL old;
    UNREFERENCED_PARAMETER(Unused);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    NT_ASSERT(KeGetCurrentIrql() == DISPATCH_LEVEL);
    return STATUS_SUCCESS; /* returns at DISPATCH_LEVEL */
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath) {
    DRIVER_INITIALIZATION_DATA init = {0};
    PAGED_CODE();
    if (!ARGUMENT_PRESENT(DriverObject) || !ARGUMENT_PRESENT(RegistryPath))
        return STATUS_INVALID_PARAMETER;
    init.Version = DXGKDDI_INTERFACE_VERSION;
    init.DxgkDdiAddDevice = AddDevice;
    init.DxgkDdiStartDevice = StartDevice;
    init.DxgkDdiRemoveDevice = RemoveDevice;
    init.DxgkDdiQueryAdapterInfo = QueryAdapterInfo;
    init.DxgkDdiCreateDevice = CreateDevice;
    init.DxgkDdiDestroyDevice = DestroyDevice;
    init.DxgkDdiCreateAllocation = CreateAllocation;
    init.DxgkDdiDestroyAllocation = DestroyAllocation;
    init.DxgkDdiOpenAllocation = OpenAllocation;
    init.DxgkDdiCloseAllocation = CloseAllocation;
    init.DxgkDdiRender = Render;
    init.DxgkDdiPatch = Patch;
    init.DxgkDdiSubmitCommand = SubmitCommand;
    init.DxgkDdiBuildPagingBuffer = BuildPagingBuffer;
    init.DxgkDdiCreateContext = CreateContext;
    init.DxgkDdiDestroyContext = DestroyContext;
#ifdef WDK_SEH_RENDER
    init.DxgkDdiRender = WdkSehRender;
#endif
#ifdef WDK_BUG_NO_PATCH
    init.DxgkDdiPatch = NULL;
#endif
    DbgPrintEx(DPFLTR_IHVVIDEO_ID, DPFLTR_INFO_LEVEL, "wdk_pool: DriverEntry\n");
    return DxgkInitialize(DriverObject, RegistryPath, &init);
}
