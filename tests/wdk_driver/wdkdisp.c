/*
 * wdkdisp.c -- a display miniport in the WDK idiom for the reference GPU (docs/isa.md)
 * and the reference user-mode format, written for issue 15 from the WDK documentation,
 * docs/isa.md and docs/INTERPRETING.md.
 *
 * It registers from DriverEntry through DxgkInitialize, keeps its objects in tagged
 * pool, guards each adapter's allocation list with a spin lock, reads the command
 * buffer inside __try with RtlCopyMemory (each user byte once, into pool), asserts its
 * invariants with NT_ASSERT and logs with DbgPrintEx. Contexts are not supported (the
 * device handle stands in), nor alternate VAs or the busy answer.
 *
 * Build: wddm-conformance native build --wdk tests/wdk_driver/wdkdisp.c --name wdkdisp
 * Each WDKDISP_BUG_* macro builds a broken variant (tests/mutants.py). WDKDISP_DIRECT_COPY
 * builds a conforming variant that copies the command buffer with the C library's memcpy
 * inside __try (a direct read the runtime traces) instead of RtlCopyMemory.
 */
#include <ntddk.h>
#include <dispmprt.h>
#include <string.h>

/* ------------------------------------------------------------------ hardware (docs/isa.md) */
#define MEMORY_SEGMENT_ID 1
#define APERTURE_SEGMENT_ID 2
#define MEMORY_SEGMENT_BASE 0x100000000ULL
#define APERTURE_SEGMENT_BASE 0x200000000ULL

#define GPU_COPY 0x01
#define GPU_FILL 0x02
#define GPU_WRITE 0x03
#define GPU_READ 0x04
#define GPU_XOR 0x05
#define GPU_BIND 0x06
#define GPU_FENCE 0x07
#define GPU_SWZCOPY 0x08
#define GPU_UNSWZCOPY 0x09
#define GPU_PTE 0x80
#define PTE_VALID 0x1u
#define PTE_CACHE_COHERENT 0x2u

#define COPY_SIZE 24
#define FILL_SIZE 20
#define WRITE_SIZE 20
#define READ_SIZE 12
#define BIND_SIZE 16
#define FENCE_SIZE 12
#define PTE_SIZE 20

/* ------------------------------------------------------------------ user-mode format */
#define CMD_NOP 0x00
#define CMD_COPY 0x01
#define CMD_FILL 0x02
#define CMD_WRITE 0x03
#define CMD_XOR 0x05
#define CMD_BIND 0x06
#define CMD_SETREG 0x40
#define CMD_SETPTE 0x41
#define CMD_VERSION 0x7F
#define CMD_HEADER 4
#define FORMAT_VERSION 1

#define ALLOCATION_DATA_SIZE 24
#define ALLOCATION_MAGIC 0x434C4152u /* 'RALC' */
#define DATA_CPU_VISIBLE 0x01u
#define DATA_SWIZZLED 0x02u
#define DATA_APERTURE 0x04u
#define DATA_APERTURE_ONLY 0x08u
#define DATA_HISTORY_BUFFER 0x10u
#define DATA_ALTERNATE_VA 0x20u
#define DATA_GDI 0x40u
#define DATA_KNOWN 0x7Fu
#define GDI_PITCH_ALIGNMENT 256

#define DMA_PRIVATE_MAGIC 0x414D4452u /* 'RDMA' */
#define DMA_PRIVATE_SIZE 8
#define PAGING_CHUNK (1u << 20)
#define STAGE_SIZE 4096

/* ------------------------------------------------------------------ driver objects */
#define TAG_ADAPTER 'AsdW'
#define TAG_DEVICE 'DsdW'
#define TAG_ALLOCATION 'LsdW'
#define TAG_RESOURCE 'RsdW'
#define TAG_STAGE 'SsdW'
#define DEVICE_MAGIC 0x56454457u
#define LOG(level, ...) DbgPrintEx(DPFLTR_IHVVIDEO_ID, (level), "wdkdisp: " __VA_ARGS__)

typedef struct _WDKD_RESOURCE {
    LIST_ENTRY Link;
} WDKD_RESOURCE;

typedef struct _WDKD_ALLOCATION {
    LIST_ENTRY Link;
    ULONGLONG Size; /* what DXGK_ALLOCATIONINFO.Size reported */
    WDKD_RESOURCE *Resource;
} WDKD_ALLOCATION;

typedef struct _WDKD_ADAPTER {
    KSPIN_LOCK Lock; /* guards Allocations and Resources */
    LIST_ENTRY Allocations;
    LIST_ENTRY Resources;
    SIZE_T MemorySegmentSize;
    SIZE_T ApertureSegmentSize;
    DXGKRNL_INTERFACE Dxgk; /* the kernel's callbacks, from StartDevice */
#ifdef WDKDISP_BUG_LEAK_OPEN
    LIST_ENTRY Opens; /* a record per OpenAllocation, freed only by RemoveDevice */
#endif
} WDKD_ADAPTER;

typedef struct _WDKD_DEVICE {
    LIST_ENTRY Link;
    ULONG Magic;
    WDKD_ADAPTER *Adapter;
} WDKD_DEVICE;

/* Devices of every adapter: a DDI that gets only hDevice finds its adapter here. */
static KSPIN_LOCK DevicesLock;
static LIST_ENTRY Devices;

WDDM_WDK_DRIVER_INFO("wdkdisp (WDK-style sample)", NULL, NULL)

static void InsertTail(LIST_ENTRY *Head, LIST_ENTRY *Entry) {
    Entry->Flink = Head;
    Entry->Blink = Head->Blink;
    Head->Blink->Flink = Entry;
    Head->Blink = Entry;
}

static void Unlink(LIST_ENTRY *Entry) {
    Entry->Blink->Flink = Entry->Flink;
    Entry->Flink->Blink = Entry->Blink;
    Entry->Flink = Entry->Blink = Entry;
}

static ULONG ReadU32(const UCHAR *p) {
    ULONG v;
    RtlCopyMemory(&v, p, sizeof v);
    return v;
}

static USHORT ReadU16(const UCHAR *p) {
    USHORT v;
    RtlCopyMemory(&v, p, sizeof v);
    return v;
}

static void Put32(UCHAR *p, ULONG v) { RtlCopyMemory(p, &v, sizeof v); }
static void Put64(UCHAR *p, ULONGLONG v) { RtlCopyMemory(p, &v, sizeof v); }

static void Header(UCHAR *p, UCHAR Opcode) {
    p[0] = Opcode;
    p[1] = p[2] = p[3] = 0;
}

/* ------------------------------------------------------------------ lookups */

static WDKD_DEVICE *FindDevice(HANDLE hDevice) {
    WDKD_DEVICE *found = NULL;
    KIRQL irql;
    KeAcquireSpinLock(&DevicesLock, &irql);
    for (LIST_ENTRY *e = Devices.Flink; e != &Devices; e = e->Flink)
        if ((HANDLE)e == hDevice) {
            found = CONTAINING_RECORD(e, WDKD_DEVICE, Link);
            break;
        }
    KeReleaseSpinLock(&DevicesLock, irql);
    NT_ASSERT(found == NULL || found->Magic == DEVICE_MAGIC);
    return found;
}

/* The allocation behind a handle of this adapter, or NULL. Call with Adapter->Lock held. */
static WDKD_ALLOCATION *FindAllocationLocked(WDKD_ADAPTER *Adapter, HANDLE hAllocation) {
    for (LIST_ENTRY *e = Adapter->Allocations.Flink; e != &Adapter->Allocations; e = e->Flink)
        if ((HANDLE)e == hAllocation)
            return CONTAINING_RECORD(e, WDKD_ALLOCATION, Link);
    return NULL;
}

static ULONGLONG AllocationSize(WDKD_ADAPTER *Adapter, HANDLE hAllocation, BOOLEAN *Found) {
    KIRQL irql;
    ULONGLONG size = 0;
    KeAcquireSpinLock(&Adapter->Lock, &irql);
    WDKD_ALLOCATION *allocation = hAllocation ? FindAllocationLocked(Adapter, hAllocation) : NULL;
    *Found = allocation != NULL;
    if (allocation != NULL)
        size = allocation->Size;
    KeReleaseSpinLock(&Adapter->Lock, irql);
    return size;
}

/* ------------------------------------------------------------------ adapter */

static NTSTATUS APIENTRY AddDevice(const PDEVICE_OBJECT PhysicalDeviceObject, PVOID *MiniportDeviceContext) {
    PAGED_CODE();
    UNREFERENCED_PARAMETER(PhysicalDeviceObject);
    WDKD_ADAPTER *adapter = ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof *adapter, TAG_ADAPTER);
    if (adapter == NULL)
        return STATUS_NO_MEMORY;
    KeInitializeSpinLock(&adapter->Lock);
    adapter->Allocations.Flink = adapter->Allocations.Blink = &adapter->Allocations;
    adapter->Resources.Flink = adapter->Resources.Blink = &adapter->Resources;
#ifdef WDKDISP_BUG_LEAK_OPEN
    adapter->Opens.Flink = adapter->Opens.Blink = &adapter->Opens;
#endif
    *MiniportDeviceContext = adapter;
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY RemoveDevice(const PVOID MiniportDeviceContext) {
    WDKD_ADAPTER *adapter = MiniportDeviceContext;
    PAGED_CODE();
    while (adapter->Allocations.Flink != &adapter->Allocations) {
        LIST_ENTRY *e = adapter->Allocations.Flink;
        Unlink(e);
        ExFreePoolWithTag(CONTAINING_RECORD(e, WDKD_ALLOCATION, Link), TAG_ALLOCATION);
    }
    while (adapter->Resources.Flink != &adapter->Resources) {
        LIST_ENTRY *e = adapter->Resources.Flink;
        Unlink(e);
        ExFreePoolWithTag(CONTAINING_RECORD(e, WDKD_RESOURCE, Link), TAG_RESOURCE);
    }
#ifdef WDKDISP_BUG_LEAK_OPEN
    while (adapter->Opens.Flink != &adapter->Opens) {
        LIST_ENTRY *e = adapter->Opens.Flink;
        Unlink(e);
        ExFreePoolWithTag(e, 'OsdW');
    }
#endif
    ExFreePoolWithTag(adapter, TAG_ADAPTER);
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY StartDevice(const PVOID MiniportDeviceContext, PDXGK_START_INFO DxgkStartInfo,
                                     PDXGKRNL_INTERFACE DxgkInterface, PULONG NumberOfVideoPresentSources,
                                     PULONG NumberOfChildren) {
    WDKD_ADAPTER *adapter = MiniportDeviceContext;
    PAGED_CODE();
    NT_ASSERT(DxgkInterface != NULL && DxgkInterface->Size >= sizeof(DXGKRNL_INTERFACE));
    adapter->MemorySegmentSize = DxgkStartInfo->MemorySegmentSize;
    adapter->ApertureSegmentSize = DxgkStartInfo->ApertureSegmentSize;
    adapter->Dxgk = *DxgkInterface;
    *NumberOfVideoPresentSources = 0;
    *NumberOfChildren = 0;
    LOG(DPFLTR_INFO_LEVEL, "started: %zu bytes of video memory, %zu of aperture\n",
        (size_t)adapter->MemorySegmentSize, (size_t)adapter->ApertureSegmentSize);
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY QueryAdapterInfo(const HANDLE hAdapter, const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo) {
    WDKD_ADAPTER *adapter = hAdapter;
    PAGED_CODE();
    switch (pQueryAdapterInfo->Type) {
    case DXGKQAITYPE_QUERYSEGMENT: {
        DXGK_QUERYSEGMENTOUT *out = pQueryAdapterInfo->pOutputData;
        if (pQueryAdapterInfo->OutputDataSize < sizeof *out)
            return STATUS_INVALID_PARAMETER;
        if (out->pSegmentDescriptor != NULL) {
            if (out->NbSegment < 2)
                return STATUS_INVALID_PARAMETER;
            DXGK_SEGMENTDESCRIPTOR *memory = &out->pSegmentDescriptor[0];
            DXGK_SEGMENTDESCRIPTOR *aperture = &out->pSegmentDescriptor[1];
            RtlZeroMemory(memory, 2 * sizeof *memory);
            memory->BaseAddress.QuadPart = (LONGLONG)MEMORY_SEGMENT_BASE;
            memory->Size = adapter->MemorySegmentSize;
            memory->CommitLimit = adapter->MemorySegmentSize;
            memory->Flags.CpuVisible = 1;
            aperture->BaseAddress.QuadPart = (LONGLONG)APERTURE_SEGMENT_BASE;
            aperture->Size = adapter->ApertureSegmentSize;
            aperture->CommitLimit = adapter->ApertureSegmentSize;
            aperture->Flags.Aperture = 1;
            aperture->Flags.CacheCoherent = 1;
        }
        out->NbSegment = 2;
        out->PagingBufferSegmentId = 0;
        out->PagingBufferSize = 64 * 1024;
        out->PagingBufferPrivateDataSize = 0;
        return STATUS_SUCCESS;
    }
    case DXGKQAITYPE_DRIVERCAPS: {
        DXGK_DRIVERCAPS *caps = pQueryAdapterInfo->pOutputData;
        if (pQueryAdapterInfo->OutputDataSize < sizeof *caps)
            return STATUS_INVALID_PARAMETER;
        caps->DmaBufferPrivateDataSize = DMA_PRIVATE_SIZE;
        caps->HarnessCaps = 0; /* no contexts, no alternate VA, never busy, no contract */
        return STATUS_SUCCESS;
    }
    default:
        return STATUS_NOT_SUPPORTED;
    }
}

/* ------------------------------------------------------------------ devices */

static NTSTATUS APIENTRY CreateDevice(const HANDLE hAdapter, DXGKARG_CREATEDEVICE *pCreateDevice) {
    KIRQL irql;
    PAGED_CODE();
    WDKD_DEVICE *device = ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof *device, TAG_DEVICE);
    if (device == NULL)
        return STATUS_NO_MEMORY;
    device->Magic = DEVICE_MAGIC;
    device->Adapter = hAdapter;
    KeAcquireSpinLock(&DevicesLock, &irql);
    InsertTail(&Devices, &device->Link);
    KeReleaseSpinLock(&DevicesLock, irql);
    pCreateDevice->hDevice = &device->Link;
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY DestroyDevice(const HANDLE hDevice) {
    KIRQL irql;
    PAGED_CODE();
    WDKD_DEVICE *device = FindDevice(hDevice);
    if (device == NULL)
        return STATUS_INVALID_HANDLE;
    KeAcquireSpinLock(&DevicesLock, &irql);
    Unlink(&device->Link);
    KeReleaseSpinLock(&DevicesLock, irql);
    device->Magic = 0;
    ExFreePoolWithTag(device, TAG_DEVICE);
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY CreateContext(const HANDLE hDevice, DXGKARG_CREATECONTEXT *pCreateContext) {
    UNREFERENCED_PARAMETER(hDevice);
    UNREFERENCED_PARAMETER(pCreateContext);
    return STATUS_NOT_SUPPORTED; /* HarnessCaps has no SUPPORTSCONTEXTS: never called */
}

static NTSTATUS APIENTRY DestroyContext(const HANDLE hContext) {
    UNREFERENCED_PARAMETER(hContext);
    return STATUS_NOT_SUPPORTED;
}

/* ------------------------------------------------------------------ allocations */

/* Validates one allocation's private data and fills its DXGK_ALLOCATIONINFO. */
static NTSTATUS DescribeAllocation(WDKD_ADAPTER *Adapter, DXGK_ALLOCATIONINFO *Info, ULONGLONG *Size) {
    UCHAR data[ALLOCATION_DATA_SIZE];
    ULONGLONG size, limit, pitched = 0;
    if (Info->pPrivateDriverData == NULL || Info->PrivateDriverDataSize != ALLOCATION_DATA_SIZE)
        return STATUS_INVALID_PARAMETER;
    RtlCopyMemory(data, Info->pPrivateDriverData, sizeof data);
    ULONG magic = ReadU32(data);
    USHORT version = ReadU16(data + 4), flags = ReadU16(data + 6);
    RtlCopyMemory(&size, data + 8, sizeof size);
    ULONG rows = ReadU32(data + 16), reserved = ReadU32(data + 20);
    if (magic != ALLOCATION_MAGIC)
        return STATUS_INVALID_PARAMETER;
    if (version != FORMAT_VERSION)
        return STATUS_GRAPHICS_DRIVER_MISMATCH;
    BOOLEAN gdi = (flags & DATA_GDI) != 0;
    if ((flags & ~DATA_KNOWN) || reserved || size == 0 || gdi != (rows != 0))
        return STATUS_INVALID_PARAMETER;
    if ((flags & DATA_SWIZZLED) && (flags & DATA_APERTURE_ONLY))
        return STATUS_INVALID_PARAMETER; /* swizzled surfaces live in video memory only */
    BOOLEAN apertureToo = (flags & DATA_APERTURE) && !(flags & DATA_SWIZZLED);
    if (flags & DATA_APERTURE_ONLY)
        limit = Adapter->ApertureSegmentSize;
    else if (apertureToo)
        limit = Adapter->MemorySegmentSize > Adapter->ApertureSegmentSize ? Adapter->MemorySegmentSize
                                                                          : Adapter->ApertureSegmentSize;
    else
        limit = Adapter->MemorySegmentSize;
    if (gdi) { /* Size is one row; the pitch of a CPU-visible surface is aligned */
        ULONGLONG pitch = (flags & DATA_CPU_VISIBLE) ? ALIGN_UP_BY(size, GDI_PITCH_ALIGNMENT) : size;
        if (pitch < size || pitch > limit / rows)
            return STATUS_INVALID_PARAMETER;
        size = pitch * rows;
        pitched = (flags & DATA_CPU_VISIBLE) ? size : 0;
    }
    if (size > limit)
        return STATUS_INVALID_PARAMETER;
    ULONGLONG rounded = ALIGN_UP_BY(size, PAGE_SIZE);
    ULONG segments;
#ifdef WDKDISP_BUG_ASSERT_VALID
    NT_ASSERT(rounded == size); /* wrong: a size that is not a page multiple is valid */
#endif
    RtlZeroMemory(&Info->PreferredSegment, sizeof Info->PreferredSegment);
    if (flags & DATA_APERTURE_ONLY) {
        segments = 1u << APERTURE_SEGMENT_ID;
        Info->PreferredSegment.SegmentId0 = APERTURE_SEGMENT_ID;
    } else if (apertureToo) {
        segments = (1u << MEMORY_SEGMENT_ID) | (1u << APERTURE_SEGMENT_ID);
        Info->PreferredSegment.SegmentId0 = MEMORY_SEGMENT_ID;
        Info->PreferredSegment.SegmentId1 = APERTURE_SEGMENT_ID;
    } else {
        segments = 1u << MEMORY_SEGMENT_ID;
        Info->PreferredSegment.SegmentId0 = MEMORY_SEGMENT_ID;
    }
    Info->Size = rounded;
    Info->PitchAlignedSize = (flags & DATA_CPU_VISIBLE) ? (pitched ? pitched : rounded) : 0;
    Info->Alignment = PAGE_SIZE;
    Info->SupportedReadSegmentSet = segments;
    Info->SupportedWriteSegmentSet = segments;
    Info->EvictionSegmentSet = 0;
    Info->Flags.Value = 0;
    Info->Flags.CpuVisible = (flags & DATA_CPU_VISIBLE) != 0;
    Info->Flags.Swizzled = (flags & DATA_SWIZZLED) != 0;
    Info->Flags.HistoryBuffer = (flags & DATA_HISTORY_BUFFER) != 0;
    Info->Flags.UseAlternateVA = (flags & DATA_ALTERNATE_VA) != 0;
    *Size = rounded;
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY CreateAllocation(const HANDLE hAdapter, DXGKARG_CREATEALLOCATION *pCreateAllocation) {
    WDKD_ADAPTER *adapter = hAdapter;
    WDKD_RESOURCE *resource = NULL, *newResource = NULL;
    NTSTATUS status = STATUS_SUCCESS;
    UINT made = 0, count = pCreateAllocation->NumAllocations;
    KIRQL irql;
    PAGED_CODE();
    if (count == 0 || pCreateAllocation->pAllocationInfo == NULL)
        return STATUS_INVALID_PARAMETER;
    if (pCreateAllocation->Flags.Resource) {
        KeAcquireSpinLock(&adapter->Lock, &irql);
        for (LIST_ENTRY *e = adapter->Resources.Flink; e != &adapter->Resources; e = e->Flink)
            if ((HANDLE)e == pCreateAllocation->hResource)
                resource = CONTAINING_RECORD(e, WDKD_RESOURCE, Link);
        KeReleaseSpinLock(&adapter->Lock, irql);
        if (resource == NULL) {
            newResource = resource = ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof *resource, TAG_RESOURCE);
            if (resource == NULL)
                return STATUS_NO_MEMORY;
        }
    }
    for (; made < count; made++) {
        DXGK_ALLOCATIONINFO *info = &pCreateAllocation->pAllocationInfo[made];
        ULONGLONG size;
        status = DescribeAllocation(adapter, info, &size);
        if (status != STATUS_SUCCESS)
            break;
        WDKD_ALLOCATION *allocation = ExAllocatePoolWithTag(NonPagedPoolNx, sizeof *allocation, TAG_ALLOCATION);
        if (allocation == NULL) {
            status = STATUS_NO_MEMORY;
            break;
        }
        allocation->Size = size;
        allocation->Resource = resource;
        allocation->Link.Flink = allocation->Link.Blink = &allocation->Link;
        info->hAllocation = &allocation->Link;
    }
    if (status != STATUS_SUCCESS) { /* ALC-ATOMIC: nothing of the batch survives */
#ifndef WDKDISP_BUG_LEAK_FAILED_BATCH
        for (UINT i = 0; i < made; i++)
            ExFreePoolWithTag(CONTAINING_RECORD(pCreateAllocation->pAllocationInfo[i].hAllocation,
                                                WDKD_ALLOCATION, Link),
                              TAG_ALLOCATION);
        if (newResource != NULL)
            ExFreePoolWithTag(newResource, TAG_RESOURCE);
#endif
        for (UINT i = 0; i < count; i++)
            pCreateAllocation->pAllocationInfo[i].hAllocation = NULL;
        LOG(DPFLTR_TRACE_LEVEL, "allocation %u of %u refused (0x%08X)\n", made, count, (unsigned)status);
        return status;
    }
    KeAcquireSpinLock(&adapter->Lock, &irql);
    for (UINT i = 0; i < count; i++)
        InsertTail(&adapter->Allocations, pCreateAllocation->pAllocationInfo[i].hAllocation);
    if (newResource != NULL)
        InsertTail(&adapter->Resources, &newResource->Link);
#ifndef WDKDISP_BUG_LOCK_HELD
    KeReleaseSpinLock(&adapter->Lock, irql);
#endif
    if (resource != NULL)
        pCreateAllocation->hResource = &resource->Link;
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY DestroyAllocation(const HANDLE hAdapter, const DXGKARG_DESTROYALLOCATION *pDestroyAllocation) {
    WDKD_ADAPTER *adapter = hAdapter;
    KIRQL irql;
    PAGED_CODE();
    for (UINT i = 0; i < pDestroyAllocation->NumAllocations; i++) {
        KeAcquireSpinLock(&adapter->Lock, &irql);
        WDKD_ALLOCATION *allocation = FindAllocationLocked(adapter, pDestroyAllocation->pAllocationList[i]);
        if (allocation != NULL)
            Unlink(&allocation->Link);
        KeReleaseSpinLock(&adapter->Lock, irql);
        if (allocation != NULL) {
            ExFreePoolWithTag(allocation, TAG_ALLOCATION);
#ifdef WDKDISP_BUG_DOUBLE_FREE
            ExFreePoolWithTag(allocation, TAG_ALLOCATION); /* wrong: freed twice */
#endif
        }
    }
    if (pDestroyAllocation->Flags.DestroyResource && pDestroyAllocation->hResource != NULL) {
        WDKD_RESOURCE *resource = NULL;
        KeAcquireSpinLock(&adapter->Lock, &irql);
        for (LIST_ENTRY *e = adapter->Resources.Flink; e != &adapter->Resources; e = e->Flink)
            if ((HANDLE)e == pDestroyAllocation->hResource) {
                resource = CONTAINING_RECORD(e, WDKD_RESOURCE, Link);
                Unlink(e);
                break;
            }
        KeReleaseSpinLock(&adapter->Lock, irql);
        if (resource != NULL)
            ExFreePoolWithTag(resource, TAG_RESOURCE);
    }
    return STATUS_SUCCESS;
}

/* The allocation a kernel handle names (DxgkCbGetHandleData gives back the hAllocation
 * CreateAllocation returned); for one of a resource, checks that the kernel's resource
 * (DxgkCbGetHandleParent) is the one the allocation was made for and lists it among its
 * children (DxgkCbEnumHandleChildren). NULL for a handle the kernel cannot resolve. */
static WDKD_ALLOCATION *AllocationOfHandle(WDKD_ADAPTER *Adapter, D3DKMT_HANDLE hAllocation) {
    DXGKARGCB_GETHANDLEDATA get = {.hObject = hAllocation, .Type = DXGK_HANDLE_ALLOCATION};
    WDKD_ALLOCATION *allocation = Adapter->Dxgk.DxgkCbGetHandleData(&get);
    BOOLEAN found;
    if (allocation == NULL)
        return NULL;
    (void)AllocationSize(Adapter, allocation, &found);
    NT_ASSERT(found); /* the kernel only resolves live allocations */
    D3DKMT_HANDLE parent = Adapter->Dxgk.DxgkCbGetHandleParent(hAllocation);
    if (allocation->Resource == NULL) {
        NT_ASSERT(parent == 0);
        return allocation;
    }
    get = (DXGKARGCB_GETHANDLEDATA){.hObject = parent, .Type = DXGK_HANDLE_RESOURCE};
    NT_ASSERT(Adapter->Dxgk.DxgkCbGetHandleData(&get) == allocation->Resource);
    DXGKARGCB_ENUMHANDLECHILDREN child = {.hObject = parent, .Index = 0};
    D3DKMT_HANDLE h;
    while ((h = Adapter->Dxgk.DxgkCbEnumHandleChildren(&child)) != 0 && h != hAllocation)
        child.Index++;
    NT_ASSERT(h == hAllocation);
    return allocation;
}

static NTSTATUS APIENTRY OpenAllocation(const HANDLE hDevice, const DXGKARG_OPENALLOCATION *pOpenAllocation) {
    WDKD_DEVICE *device = FindDevice(hDevice);
    PAGED_CODE();
    if (device == NULL)
        return STATUS_INVALID_HANDLE;
    for (UINT i = 0; i < pOpenAllocation->NumAllocations; i++) {
        DXGK_OPENALLOCATIONINFO *open = &pOpenAllocation->pOpenAllocation[i];
        WDKD_ALLOCATION *allocation = AllocationOfHandle(device->Adapter, open->hAllocation);
        if (allocation == NULL)
            return STATUS_INVALID_HANDLE; /* as DxgkCbGetHandleData's documentation asks */
        open->hDeviceSpecificAllocation = allocation;
#ifdef WDKDISP_BUG_LEAK_OPEN
        LIST_ENTRY *record = ExAllocatePool2(POOL_FLAG_NON_PAGED, sizeof *record, 'OsdW');
        if (record != NULL) {
            KIRQL irql;
            KeAcquireSpinLock(&device->Adapter->Lock, &irql);
            InsertTail(&device->Adapter->Opens, record); /* never removed by CloseAllocation */
            KeReleaseSpinLock(&device->Adapter->Lock, irql);
        }
#endif
    }
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY CloseAllocation(const HANDLE hDevice, const DXGKARG_CLOSEALLOCATION *pCloseAllocation) {
    UNREFERENCED_PARAMETER(pCloseAllocation);
    return FindDevice(hDevice) != NULL ? STATUS_SUCCESS : STATUS_INVALID_HANDLE;
}

/* ------------------------------------------------------------------ render */

typedef struct _TRANSLATION {
    WDKD_ADAPTER *Adapter;
    DXGKARG_RENDER *Render;
    UCHAR Code[COPY_SIZE]; /* one GPU instruction */
    UINT CodeSize;
    UINT PatchCount;
    UINT PatchIndex[2];
    UINT PatchAt[2]; /* offset of the address inside Code */
    ULONG PatchOffset[2];
} TRANSLATION;

/* Validates a reference to [Offset, Offset + Length) of list entry Index and returns the
 * address to pre-patch (0 while the allocation is paged out); a status on failure. */
static NTSTATUS Reference(TRANSLATION *T, ULONG Index, ULONG Offset, ULONGLONG Length, BOOLEAN Write,
                          UINT At, ULONGLONG *Address) {
    DXGKARG_RENDER *render = T->Render;
    BOOLEAN found;
    if (Index >= render->AllocationListSize)
        return STATUS_INVALID_HANDLE;
    const DXGK_ALLOCATIONLIST *entry = &render->pAllocationList[Index];
    ULONGLONG size = AllocationSize(T->Adapter, entry->hDeviceSpecificAllocation, &found);
    if (!found)
        return STATUS_INVALID_HANDLE;
    if ((ULONGLONG)Offset + Length > size)
        return STATUS_INVALID_PARAMETER;
    if (Write && !entry->WriteOperation)
        return STATUS_INVALID_PARAMETER;
    *Address = entry->SegmentId != 0 ? (ULONGLONG)entry->PhysicalAddress.QuadPart + Offset : 0;
    T->PatchIndex[T->PatchCount] = Index;
    T->PatchAt[T->PatchCount] = At;
    T->PatchOffset[T->PatchCount] = Offset;
    T->PatchCount++;
    return STATUS_SUCCESS;
}

/* The GPU instruction for one user command (already length-checked). */
static NTSTATUS Translate(TRANSLATION *T, const UCHAR *Command) {
    ULONGLONG dst, src;
    NTSTATUS status;
    T->CodeSize = 0;
    T->PatchCount = 0;
    switch (Command[0]) {
    case CMD_NOP:
        return STATUS_SUCCESS;
    case CMD_VERSION:
        return ReadU32(Command + 4) == FORMAT_VERSION ? STATUS_SUCCESS : STATUS_GRAPHICS_DRIVER_MISMATCH;
    case CMD_COPY:
    case CMD_XOR: {
        ULONG size = ReadU32(Command + 20);
        status = Reference(T, ReadU32(Command + 4), ReadU32(Command + 8), size, TRUE, 4, &dst);
        if (status == STATUS_SUCCESS)
            status = Reference(T, ReadU32(Command + 12), ReadU32(Command + 16), size, FALSE, 12, &src);
        if (status != STATUS_SUCCESS)
            return status;
        Header(T->Code, Command[0] == CMD_COPY ? GPU_COPY : GPU_XOR);
        Put64(T->Code + 4, dst);
        Put64(T->Code + 12, src);
        Put32(T->Code + 20, size);
        T->CodeSize = COPY_SIZE;
        return STATUS_SUCCESS;
    }
    case CMD_FILL: {
        ULONG size = ReadU32(Command + 12);
        status = Reference(T, ReadU32(Command + 4), ReadU32(Command + 8), size, TRUE, 4, &dst);
        if (status != STATUS_SUCCESS)
            return status;
        Header(T->Code, GPU_FILL);
        Put64(T->Code + 4, dst);
        Put32(T->Code + 12, size);
        Put32(T->Code + 16, ReadU32(Command + 16));
        T->CodeSize = FILL_SIZE;
        return STATUS_SUCCESS;
    }
    case CMD_WRITE: {
        status = Reference(T, ReadU32(Command + 4), ReadU32(Command + 8), 4, TRUE, 4, &dst);
        if (status != STATUS_SUCCESS)
            return status;
        Header(T->Code, GPU_WRITE);
        T->Code[1] = 4; /* width */
        Put64(T->Code + 4, dst);
        Put64(T->Code + 12, ReadU32(Command + 12));
        T->CodeSize = WRITE_SIZE;
        return STATUS_SUCCESS;
    }
    case CMD_BIND: {
        ULONG slot = ReadU32(Command + 4), index = ReadU32(Command + 8);
        dst = 0;
        if (index >= T->Render->AllocationListSize)
            return STATUS_INVALID_HANDLE;
        if (T->Render->pAllocationList[index].hDeviceSpecificAllocation != NULL) {
            status = Reference(T, index, ReadU32(Command + 12), 0, FALSE, 8, &dst);
            if (status != STATUS_SUCCESS)
                return status;
        } /* the NULL element unbinds: address 0, nothing to patch (REN-NULLALLOC) */
        Header(T->Code, GPU_BIND);
        Put32(T->Code + 4, slot);
        Put64(T->Code + 8, dst);
        T->CodeSize = BIND_SIZE;
        return STATUS_SUCCESS;
    }
    default:
        return STATUS_ILLEGAL_INSTRUCTION;
    }
}

static UINT CommandSize(UCHAR Opcode) {
    switch (Opcode) {
    case CMD_NOP: return 4;
    case CMD_COPY: return 24;
    case CMD_FILL: return 20;
    case CMD_WRITE: return 16;
    case CMD_XOR: return 24;
    case CMD_BIND: return 16;
    case CMD_SETREG: return 12;
    case CMD_SETPTE: return 20;
    case CMD_VERSION: return 8;
    default: return 0;
    }
}

/* Copies the next user bytes after the Have staged ones into Stage (each user byte is
 * read once: REN-COPYFIRST); FALSE if the user memory faulted. */
static BOOLEAN Stage(WDKD_ADAPTER *Adapter, const UCHAR *User, UCHAR *Stage, UINT Have, UINT Want) {
#ifdef WDKDISP_BUG_COPY_UNDER_LOCK
    KIRQL irql;
    KeAcquireSpinLock(&Adapter->Lock, &irql); /* wrong: user memory is pageable */
#else
    UNREFERENCED_PARAMETER(Adapter);
#endif
#ifdef WDKDISP_BUG_NO_TRY
    memcpy(Stage + Have, User, Want); /* wrong: a fault on user memory is not caught */
    UNREFERENCED_PARAMETER(Adapter);
    return TRUE;
#endif
    __try {
        ProbeForRead(User, Want, 1);
#ifdef WDKDISP_DIRECT_COPY
        memcpy(Stage + Have, User, Want);
#else
        RtlCopyMemory(Stage + Have, User, Want);
#endif
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        LOG(DPFLTR_WARNING_LEVEL, "command buffer faulted (0x%08X)\n", (unsigned)GetExceptionCode());
        return FALSE;
    }
#ifdef WDKDISP_BUG_COPY_UNDER_LOCK
    KeReleaseSpinLock(&Adapter->Lock, irql);
#endif
    return TRUE;
}

#ifdef WDKDISP_BUG_REREAD_PATCH_LIST
/* Wrong: checks the first Count entries of pPatchLocationListIn against the Count it made
 * and, when they agree, reads the list again and trusts that second read (a double fetch). */
static void TrustPatchListIn(const DXGKARG_RENDER *Render, UCHAR *Dma, D3DDDI_PATCHLOCATIONLIST *Made, UINT Count) {
    const D3DDDI_PATCHLOCATIONLIST *in = Render->pPatchLocationListIn;
    if (in == NULL || Count == 0 || Render->PatchLocationListInSize < Count)
        return;
    __try {
        for (UINT i = 0; i < Count; i++)
            if (in[i].AllocationIndex != Made[i].AllocationIndex || in[i].AllocationOffset != Made[i].AllocationOffset)
                return;
        for (UINT i = 0; i < Count; i++) {
            UINT index = in[i].AllocationIndex;
            if (index >= Render->AllocationListSize)
                continue;
            const DXGK_ALLOCATIONLIST *entry = &Render->pAllocationList[index];
            Made[i].AllocationIndex = index;
            Made[i].AllocationOffset = in[i].AllocationOffset;
            Put64(Dma + Made[i].PatchOffset, entry->SegmentId != 0 && entry->hDeviceSpecificAllocation != NULL
                                                 ? (ULONGLONG)entry->PhysicalAddress.QuadPart + Made[i].AllocationOffset
                                                 : 0);
        }
    } __except (EXCEPTION_EXECUTE_HANDLER) {
    }
}
#endif

static NTSTATUS APIENTRY Render(const HANDLE hContext, DXGKARG_RENDER *pRender) {
    WDKD_DEVICE *device = FindDevice(hContext);
    TRANSLATION t;
    NTSTATUS status = STATUS_SUCCESS;
    UINT consumed = 0, staged = 0, at = 0, used = 0, patches = 0;
    const UINT total = pRender->CommandLength;
    const UCHAR *user = pRender->pCommand;
    UCHAR *dma = pRender->pDmaBuffer;
    PAGED_CODE();
    if (device == NULL)
        return STATUS_INVALID_HANDLE;
    if (pRender->DmaSize < FENCE_SIZE)
        return STATUS_INVALID_PARAMETER;
    const UINT room = pRender->DmaSize - FENCE_SIZE;
    UCHAR *stage = ExAllocatePool2(POOL_FLAG_PAGED, STAGE_SIZE, TAG_STAGE);
    if (stage == NULL)
        return STATUS_NO_MEMORY;
    t.Adapter = device->Adapter;
    t.Render = pRender;
    while (consumed < total) {
        if (staged - at < CMD_HEADER || staged - at < CommandSize(stage[at])) {
            UINT keep = staged - at, want = total - consumed - keep;
            RtlMoveMemory(stage, stage + at, keep);
            if (want > STAGE_SIZE - keep)
                want = STAGE_SIZE - keep;
#ifdef WDKDISP_BUG_DOUBLE_FETCH
            /* Wrong: rejects a privileged command by its header in user memory, then copies
             * the header again with the rest (those bytes are read twice). */
            if (want >= CMD_HEADER) {
                __try {
                    UCHAR opcode = *(volatile const UCHAR *)(user + consumed + keep); /* the first fetch */
                    if (opcode == CMD_SETREG || opcode == CMD_SETPTE) {
                        status = STATUS_PRIVILEGED_INSTRUCTION;
                        goto done;
                    }
                } __except (EXCEPTION_EXECUTE_HANDLER) {
                    status = STATUS_INVALID_PARAMETER;
                    goto done;
                }
            }
#endif
            if (want > 0 && !Stage(t.Adapter, user + consumed + keep, stage, keep, want)) {
                status = STATUS_INVALID_PARAMETER; /* the WDK sample's __except */
                goto done;
            }
            staged = keep + want;
            at = 0;
            if (staged < CMD_HEADER) {
                status = STATUS_INVALID_USER_BUFFER;
                goto done;
            }
        }
        UCHAR opcode = stage[at];
        UINT size = CommandSize(opcode);
        if (size == 0) {
            status = STATUS_ILLEGAL_INSTRUCTION;
            goto done;
        }
        if (opcode == CMD_SETREG || opcode == CMD_SETPTE) {
            status = STATUS_PRIVILEGED_INSTRUCTION;
            goto done;
        }
        if (ReadU16(stage + at + 2) != size || staged - at < size) {
            status = STATUS_INVALID_USER_BUFFER;
            goto done;
        }
        status = Translate(&t, stage + at);
        if (status != STATUS_SUCCESS)
            goto done;
        if (used + t.CodeSize > room || patches + t.PatchCount > pRender->PatchLocationListOutSize) {
            if (used == 0 && patches == 0) {
                status = STATUS_INVALID_PARAMETER; /* larger than an empty DMA buffer */
                goto done;
            }
            status = STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER;
            break;
        }
        for (UINT i = 0; i < t.PatchCount; i++) {
            D3DDDI_PATCHLOCATIONLIST *out = &pRender->pPatchLocationListOut[patches++];
            RtlZeroMemory(out, sizeof *out);
            out->AllocationIndex = t.PatchIndex[i];
            out->AllocationOffset = t.PatchOffset[i];
            out->PatchOffset = used + t.PatchAt[i];
            out->SplitOffset = out->PatchOffset;
        }
        RtlCopyMemory(dma + used, t.Code, t.CodeSize);
        used += t.CodeSize;
        at += size;
        consumed += size;
    }
    /* Every DMA buffer ends with FENCE 0; Patch writes the submission's fence ID there. */
    Header(dma + used, GPU_FENCE);
    Put64(dma + used + 4, 0);
    if (pRender->pDmaBufferPrivateData != NULL && pRender->DmaBufferPrivateDataSize >= DMA_PRIVATE_SIZE) {
        Put32(pRender->pDmaBufferPrivateData, DMA_PRIVATE_MAGIC);
        Put32((UCHAR *)pRender->pDmaBufferPrivateData + 4, used);
    }
    used += FENCE_SIZE;
    NT_ASSERT(used <= pRender->DmaSize);
#ifdef WDKDISP_BUG_REREAD_PATCH_LIST
    TrustPatchListIn(pRender, dma, pRender->pPatchLocationListOut, patches);
#endif
    pRender->pDmaBuffer = dma + used;
    pRender->pPatchLocationListOut += patches;
    if (status == STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER)
        pRender->pCommand = user + consumed;
done:
    ExFreePoolWithTag(stage, TAG_STAGE);
    return status;
}

/* ------------------------------------------------------------------ patch, submit */

static NTSTATUS APIENTRY Patch(const HANDLE hAdapter, const DXGKARG_PATCH *pPatch) {
    UCHAR *dma = pPatch->pDmaBuffer;
    const UINT start = pPatch->DmaBufferSubmissionStartOffset, end = pPatch->DmaBufferSubmissionEndOffset;
    UNREFERENCED_PARAMETER(hAdapter);
    if (!pPatch->Flags.Paging && pPatch->pPatchLocationList != NULL && pPatch->pAllocationList != NULL) {
        for (UINT i = 0; i < pPatch->PatchLocationListSubmissionLength; i++) {
            const D3DDDI_PATCHLOCATIONLIST *location =
                &pPatch->pPatchLocationList[pPatch->PatchLocationListSubmissionStart + i];
            if (location->AllocationIndex >= pPatch->AllocationListSize || location->PatchOffset < start ||
                (ULONGLONG)location->PatchOffset + 8 > end)
                continue;
            const DXGK_ALLOCATIONLIST *entry = &pPatch->pAllocationList[location->AllocationIndex];
            ULONGLONG address = entry->hDeviceSpecificAllocation != NULL
                                    ? (ULONGLONG)entry->PhysicalAddress.QuadPart + location->AllocationOffset
                                    : 0;
            Put64(dma + location->PatchOffset, address);
        }
    }
    if (pPatch->pDmaBufferPrivateData != NULL && pPatch->DmaBufferPrivateDataSize >= DMA_PRIVATE_SIZE) {
        const UCHAR *data = pPatch->pDmaBufferPrivateData;
        ULONG fence = ReadU32(data + 4);
        if (ReadU32(data) == DMA_PRIVATE_MAGIC && fence >= start && (ULONGLONG)fence + FENCE_SIZE <= end)
            Put64(dma + fence + 4, pPatch->SubmissionFenceId);
    }
    return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY SubmitCommand(const HANDLE hAdapter, const DXGKARG_SUBMITCOMMAND *pSubmitCommand) {
    UNREFERENCED_PARAMETER(hAdapter);
    UNREFERENCED_PARAMETER(pSubmitCommand);
    return STATUS_SUCCESS; /* the emulated GPU runs what the scheduler submits */
}

/* ------------------------------------------------------------------ paging */

typedef struct _PAGING {
    DXGKARG_BUILDPAGINGBUFFER *Args;
    UCHAR *Next;
    UINT Room;
} PAGING;

static BOOLEAN Fits(PAGING *P, UINT Size) { return P->Room >= Size; }

static UCHAR *Emit(PAGING *P, UINT Size) {
    UCHAR *at = P->Next;
    NT_ASSERT(P->Room >= Size);
    P->Next += Size;
    P->Room -= Size;
    return at;
}

static NTSTATUS Finish(PAGING *P, ULONGLONG Done, ULONGLONG Total) {
    P->Args->pDmaBuffer = P->Next;
    P->Args->MultipassOffset = (UINT)Done;
    return Done >= Total ? STATUS_SUCCESS : STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER;
}

static ULONGLONG Location(UINT SegmentId, LARGE_INTEGER SegmentAddress, const MDL *Mdl, ULONGLONG Offset) {
    if (SegmentId != 0)
        return (ULONGLONG)SegmentAddress.QuadPart + Offset;
    if (Mdl == NULL)
        return 0;
    return (ULONGLONG)MmGetMdlPfnArray(Mdl)[Offset / PAGE_SIZE] * PAGE_SIZE + Offset % PAGE_SIZE;
}

static NTSTATUS Transfer(PAGING *P) {
    DXGKARG_BUILDPAGINGBUFFER *args = P->Args;
    UCHAR opcode = GPU_COPY;
    if (args->Transfer.hAllocation != NULL && args->Transfer.Flags.Swizzle)
        opcode = GPU_SWZCOPY;
    else if (args->Transfer.hAllocation != NULL && args->Transfer.Flags.Unswizzle)
        opcode = GPU_UNSWZCOPY;
    const BOOLEAN byPage = args->Transfer.Source.SegmentId == 0 || args->Transfer.Destination.SegmentId == 0;
    ULONGLONG done = args->MultipassOffset;
    const ULONGLONG total = args->Transfer.TransferSize;
    while (done < total && Fits(P, COPY_SIZE)) {
        ULONGLONG at = args->Transfer.TransferOffset + done;
        ULONGLONG n = total - done < PAGING_CHUNK ? total - done : PAGING_CHUNK;
        if (byPage && n > PAGE_SIZE - at % PAGE_SIZE)
            n = PAGE_SIZE - at % PAGE_SIZE;
        UCHAR *code = Emit(P, COPY_SIZE);
        Header(code, opcode);
        Put64(code + 4, Location(args->Transfer.Destination.SegmentId, args->Transfer.Destination.SegmentAddress,
                                 args->Transfer.Destination.pMdl, at));
        Put64(code + 12, Location(args->Transfer.Source.SegmentId, args->Transfer.Source.SegmentAddress,
                                  args->Transfer.Source.pMdl, at));
        Put32(code + 20, (ULONG)n);
        done += n;
    }
    return Finish(P, done, total);
}

static NTSTATUS APIENTRY BuildPagingBuffer(const HANDLE hAdapter, DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer) {
    PAGING p = {pBuildPagingBuffer, pBuildPagingBuffer->pDmaBuffer, pBuildPagingBuffer->DmaSize};
    ULONGLONG done = pBuildPagingBuffer->MultipassOffset;
    UNREFERENCED_PARAMETER(hAdapter);
    switch (pBuildPagingBuffer->Operation) {
    case DXGK_OPERATION_TRANSFER:
        return Transfer(&p);
    case DXGK_OPERATION_FILL: {
        const ULONGLONG total = pBuildPagingBuffer->Fill.FillSize;
        while (done < total && Fits(&p, FILL_SIZE)) {
            ULONGLONG n = total - done < PAGING_CHUNK ? total - done : PAGING_CHUNK;
            UCHAR *code = Emit(&p, FILL_SIZE);
            Header(code, GPU_FILL);
            Put64(code + 4, (ULONGLONG)pBuildPagingBuffer->Fill.Destination.SegmentAddress.QuadPart + done);
            Put32(code + 12, (ULONG)n);
            Put32(code + 16, pBuildPagingBuffer->Fill.FillPattern);
            done += n;
        }
        return Finish(&p, done, total);
    }
    case DXGK_OPERATION_DISCARD_CONTENT:
        return STATUS_SUCCESS; /* nothing to do: the content is not needed */
    case DXGK_OPERATION_READ_PHYSICAL:
    case DXGK_OPERATION_WRITE_PHYSICAL: {
        BOOLEAN read = pBuildPagingBuffer->Operation == DXGK_OPERATION_READ_PHYSICAL;
        UINT width = read ? pBuildPagingBuffer->ReadPhysical.Size : pBuildPagingBuffer->WritePhysical.Size;
        ULONGLONG address = (ULONGLONG)(read ? pBuildPagingBuffer->ReadPhysical.PhysicalAddress.QuadPart
                                             : pBuildPagingBuffer->WritePhysical.PhysicalAddress.QuadPart);
        width = width < 1 ? 1 : width > 8 ? 8 : width;
        if (done < 1 && Fits(&p, read ? READ_SIZE : WRITE_SIZE)) {
            UCHAR *code = Emit(&p, read ? READ_SIZE : WRITE_SIZE);
            Header(code, read ? GPU_READ : GPU_WRITE);
            code[1] = (UCHAR)width;
            Put64(code + 4, address);
            if (!read)
                Put64(code + 12, 0);
            done = 1;
        }
        return Finish(&p, done, 1);
    }
    case DXGK_OPERATION_MAP_APERTURE_SEGMENT: {
        const MDL *mdl = pBuildPagingBuffer->MapApertureSegment.pMdl;
        const ULONGLONG total = pBuildPagingBuffer->MapApertureSegment.NumberOfPages;
        ULONG flags = PTE_VALID | (pBuildPagingBuffer->MapApertureSegment.Flags.CacheCoherent ? PTE_CACHE_COHERENT : 0);
        if (mdl == NULL)
            return STATUS_SUCCESS;
        while (done < total && Fits(&p, PTE_SIZE)) {
            UCHAR *code = Emit(&p, PTE_SIZE);
            Header(code, GPU_PTE);
            Put32(code + 4, (ULONG)(pBuildPagingBuffer->MapApertureSegment.OffsetInPages + done));
            Put32(code + 8, flags);
            Put64(code + 12, MmGetMdlPfnArray(mdl)[pBuildPagingBuffer->MapApertureSegment.MdlOffset + done]);
            done++;
        }
        return Finish(&p, done, total);
    }
    case DXGK_OPERATION_UNMAP_APERTURE_SEGMENT: {
        const ULONGLONG total = pBuildPagingBuffer->UnmapApertureSegment.NumberOfPages;
        const ULONGLONG dummy = (ULONGLONG)pBuildPagingBuffer->UnmapApertureSegment.DummyPage.QuadPart / PAGE_SIZE;
        while (done < total && Fits(&p, PTE_SIZE)) {
            UCHAR *code = Emit(&p, PTE_SIZE);
            Header(code, GPU_PTE);
            Put32(code + 4, (ULONG)(pBuildPagingBuffer->UnmapApertureSegment.OffsetInPages + done));
            Put32(code + 8, PTE_VALID);
            Put64(code + 12, dummy);
            done++;
        }
        return Finish(&p, done, total);
    }
    default:
        return STATUS_SUCCESS; /* special-lock transfers are never asked (no alternate VA) */
    }
}

/* ------------------------------------------------------------------ registration */

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath) {
    DRIVER_INITIALIZATION_DATA init;
    PAGED_CODE();
    if (!ARGUMENT_PRESENT(DriverObject) || !ARGUMENT_PRESENT(RegistryPath))
        return STATUS_INVALID_PARAMETER;
    KeInitializeSpinLock(&DevicesLock);
    Devices.Flink = Devices.Blink = &Devices;
    RtlZeroMemory(&init, sizeof init);
    init.Version = DXGKDDI_INTERFACE_VERSION;
    init.DxgkDdiAddDevice = AddDevice;
    init.DxgkDdiStartDevice = StartDevice;
    init.DxgkDdiRemoveDevice = RemoveDevice;
    init.DxgkDdiQueryAdapterInfo = QueryAdapterInfo;
    init.DxgkDdiCreateDevice = CreateDevice;
    init.DxgkDdiDestroyDevice = DestroyDevice;
    init.DxgkDdiCreateContext = CreateContext;
    init.DxgkDdiDestroyContext = DestroyContext;
    init.DxgkDdiCreateAllocation = CreateAllocation;
    init.DxgkDdiDestroyAllocation = DestroyAllocation;
    init.DxgkDdiOpenAllocation = OpenAllocation;
    init.DxgkDdiCloseAllocation = CloseAllocation;
    init.DxgkDdiRender = Render;
    init.DxgkDdiPatch = Patch;
    init.DxgkDdiSubmitCommand = SubmitCommand;
    init.DxgkDdiBuildPagingBuffer = BuildPagingBuffer;
    LOG(DPFLTR_INFO_LEVEL, "DriverEntry: registering with DxgkInitialize\n");
    return DxgkInitialize(DriverObject, RegistryPath, &init);
}
