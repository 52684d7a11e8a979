/*
 * refminiport.c -- the reference display miniport, in C.
 *
 * This is a port of wddm_conformance/reference/miniport.py (class ReferenceMiniport) to the
 * native driver ABI of wddm_conformance/native/wddm_native.h. It drives the same
 * emulated GPU (wddm_conformance/reference/gpu.py), reads the same user-mode formats
 * (wddm_conformance/reference/formats.py) and emits the same instructions
 * (wddm_conformance/reference/isa.py), so for every DDI call it returns the same status and
 * writes the same bytes as the Python driver: DMA and paging buffers, output patch
 * lists, DMA private data, CreateAllocation outputs and handle values.
 *
 * The file follows miniport.py function by function and in the same order, so the
 * two read side by side: a Python method foo_bar is the DDI DxgkDdiFooBar, a
 * private helper _foo_bar is RefFooBar. The requirement IDs in the comments
 * (REN-COPYFIRST, REN-PREPATCH, ALC-ATOMIC, ...) are the ones miniport.py cites;
 * see wddm_conformance/requirements.md.
 *
 * Build:
 *   gcc -std=c11 -O2 -fPIC -shared -Wall -Wextra -Werror \
 *       -I wddm_conformance/native -o libref.so wddm_conformance/reference/native/refminiport.c
 *
 * Compile-time switches (none is set in the default build):
 *   WDDM_REFERENCE_BUSY          BusyReferenceMiniport: REPORT_BUSY = True.
 *   WDDM_MUTANT_OVERFLOW_DMA     tests/mutants.py OverflowsDmaBuffer.
 *   WDDM_MUTANT_NO_PREPATCH      tests/mutants.py NoPrePatch.
 *   WDDM_MUTANT_UNMAP_OLD_PAGE   tests/mutants.py UnmapLeavesOldPage.
 * Each mutant breaks exactly one rule, as its Python twin does.
 */

#include "wddm_native.h"

#include <stdlib.h>
#include <string.h>

typedef uint8_t UCHAR;
typedef uint16_t USHORT;

#define UNREFERENCED_PARAMETER(P) ((void)(P))

/* ------------------------------------------------------------------ variants */

#if defined(WDDM_REFERENCE_BUSY)
#define REF_REPORT_BUSY TRUE /* miniport.py BusyReferenceMiniport.REPORT_BUSY */
#define REF_VARIANT_NAME ", BusyReferenceMiniport"
#else
#define REF_REPORT_BUSY FALSE /* miniport.py ReferenceMiniport.REPORT_BUSY */
#define REF_VARIANT_NAME ""
#endif

#if defined(WDDM_MUTANT_OVERFLOW_DMA)
#define REF_MUTANT_NAME ", mutant OverflowsDmaBuffer"
#elif defined(WDDM_MUTANT_NO_PREPATCH)
#define REF_MUTANT_NAME ", mutant NoPrePatch"
#elif defined(WDDM_MUTANT_UNMAP_OLD_PAGE)
#define REF_MUTANT_NAME ", mutant UnmapLeavesOldPage"
#else
#define REF_MUTANT_NAME ""
#endif

#if defined(__SANITIZE_ADDRESS__)
#define REF_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REF_ADDRESS_SANITIZER 1
#endif
#endif

/* NULL, NULL: the reference's command encoder and GPU model, as the Python reference's. */
WDDM_NATIVE_DRIVER_INFO_DEFINE("reference miniport (C" REF_VARIANT_NAME REF_MUTANT_NAME ")", NULL,
                               NULL);

/* ------------------------------------------------------------------ constants */

/* wddm_conformance/reference/gpu.py */
#define MEMORY_SEGMENT_BASE   0x100000000ull /* MEMORY_SEGMENT_BASE */
#define APERTURE_SEGMENT_BASE 0x200000000ull /* APERTURE_SEGMENT_BASE */

/* wddm_conformance/reference/miniport.py */
#define MEMORY_SEGMENT_ID        1u         /* MEMORY_SEGMENT_ID */
#define APERTURE_SEGMENT_ID      2u         /* APERTURE_SEGMENT_ID */
#define PAGING_CHUNK             (1u << 20) /* PAGING_CHUNK */
#define REG_TRANSFER_IN_PROGRESS 1u         /* REG_TRANSFER_IN_PROGRESS */
#define STAGING_CHUNK            4096u      /* STAGING_CHUNK */
#define REF_FIRST_HANDLE         0x1000u    /* ReferenceMiniport.__init__: count(0x1000, 0x10) */
#define REF_HANDLE_STEP          0x10u

/* wddm_conformance/reference/formats.py: the command buffer. Every command starts with
 * HEADER "<BBH": u8 opcode, u8 reserved, u16 length of the whole command. */
#define USER_HEADER_SIZE  4u /* HEADER.size */
#define INTERFACE_VERSION 1u /* INTERFACE_VERSION */
#define U_NOP     0x00u      /* "<BBH"       4 bytes */
#define U_COPY    0x01u      /* "<BBHIIIII" 24 bytes: dst_index dst_offset src_index src_offset size */
#define U_FILL    0x02u      /* "<BBHIIII"  20 bytes: dst_index dst_offset size pattern */
#define U_WRITE   0x03u      /* "<BBHIII"   16 bytes: dst_index dst_offset value */
#define U_XOR     0x05u      /* "<BBHIIIII" 24 bytes: as U_COPY */
#define U_BIND    0x06u      /* "<BBHIII"   16 bytes: slot index offset */
#define U_SETREG  0x40u      /* "<BBHII"    12 bytes, privileged */
#define U_SETPTE  0x41u      /* "<BBHIIQ"   20 bytes, privileged */
#define U_VERSION 0x7Fu      /* "<BBHI"      8 bytes: version */
#define USER_COMMAND_MAX_SIZE 24u /* the largest command above */

/* wddm_conformance/reference/formats.py: allocation private data, ALLOCATION_DATA "<IHHQII":
 * u32 Magic, u16 Version, u16 Flags, u64 Size, u32 Reserved0 (GDI rows), u32 Reserved1. */
#define ALLOCATION_DATA_SIZE 24u          /* ALLOCATION_DATA.size */
#define ALLOCATION_MAGIC     0x434C4152u  /* ALLOCATION_MAGIC 'RALC' */
#define ALLOCATION_VERSION   1u           /* ALLOCATION_VERSION */
#define GDI_PITCH_ALIGNMENT  256u         /* GDI_PITCH_ALIGNMENT */
/* AllocationDataFlags */
#define ALLOCATION_DATA_CPUVISIBLE    0x01u
#define ALLOCATION_DATA_SWIZZLED      0x02u
#define ALLOCATION_DATA_APERTURE      0x04u
#define ALLOCATION_DATA_APERTUREONLY  0x08u
#define ALLOCATION_DATA_HISTORYBUFFER 0x10u
#define ALLOCATION_DATA_ALTERNATEVA   0x20u
#define ALLOCATION_DATA_GDI           0x40u
#define ALLOCATION_DATA_ALL           0x7Fu /* int(sum(AllocationDataFlags)) */

/* wddm_conformance/reference/formats.py: DMA_PRIVATE_DATA "<II": u32 magic, u32 fence offset. */
#define DMA_PRIVATE_DATA_SIZE 8u          /* DMA_PRIVATE_DATA.size */
#define DMA_PRIVATE_MAGIC     0x414D4452u /* DMA_PRIVATE_MAGIC 'RDMA' */

/* wddm_conformance/reference/isa.py TABLE: opcode, then the packed little-endian layout. */
#define GPU_COPY      0x01u /* "<B3xQQI" 24: dst@4 src@12 size@20 */
#define GPU_FILL      0x02u /* "<B3xQII" 20: dst@4 size@12 pattern@16 */
#define GPU_WRITE     0x03u /* "<BB2xQQ" 20: width@1 dst@4 value@12 */
#define GPU_READ      0x04u /* "<BB2xQ"  12: width@1 src@4 */
#define GPU_XOR       0x05u /* "<B3xQQI" 24: as COPY */
#define GPU_BIND      0x06u /* "<B3xIQ"  16: slot@4 addr@8 */
#define GPU_FENCE     0x07u /* "<B3xQ"   12: fence@4 */
#define GPU_SWZCOPY   0x08u /* "<B3xQQI" 24: as COPY */
#define GPU_UNSWZCOPY 0x09u /* "<B3xQQI" 24: as COPY */
#define GPU_PTE       0x80u /* "<B3xIIQ" 20: page@4 flags@8 pfn@12 */
#define GPU_REG       0x81u /* "<B3xII"  12: reg@4 value@8 */
#define GPU_COPY_SIZE  24u
#define GPU_FILL_SIZE  20u
#define GPU_WRITE_SIZE 20u
#define GPU_READ_SIZE  12u
#define GPU_BIND_SIZE  16u
#define GPU_FENCE_SIZE 12u
#define GPU_PTE_SIZE   20u
#define GPU_REG_SIZE   12u
#define GPU_MAX_INSTRUCTION_SIZE 24u /* the largest of the sizes above */
#define PTE_VALID          0x1u /* PTE_VALID */
#define PTE_CACHE_COHERENT 0x2u /* PTE_CACHE_COHERENT */

/* DXGK_ALLOCATIONLIST.Value (wddm_native.h): WriteOperation bit 0, SegmentId bits 1-5. */
#define DXGK_ALLOCATIONLIST_WRITEOPERATION 0x1u
#define DXGK_ALLOCATIONLIST_SEGMENTID_MASK 0x3Eu

/* The kernel-copy of user command bytes: one STAGING_CHUNK plus the unparsed tail
 * of the previous chunk, which is shorter than one command. */
#define REF_STAGING_CAPACITY (STAGING_CHUNK + USER_COMMAND_MAX_SIZE)

#if defined(WDDM_MUTANT_OVERFLOW_DMA)
/* OverflowsDmaBuffer writes its fence past DmaSize. Under AddressSanitizer the
 * scratch buffer is exactly DmaSize bytes so that write is reported as a
 * heap-buffer-overflow; otherwise the scratch has slack for the fence so the heap
 * survives, and the overflow reaches pDmaBuffer (the harness's guard zone). */
#if defined(REF_ADDRESS_SANITIZER)
#define REF_DMA_SCRATCH_SLACK 0u
#else
#define REF_DMA_SCRATCH_SLACK 64u
#endif
#else
#define REF_DMA_SCRATCH_SLACK 0u
#endif

/* ------------------------------------------------------------------ handle tables */

/* One driver object. miniport.py keeps a dict per kind of object, keyed by handle;
 * each dict is a REF_TABLE here and uses only the fields its comment names. */
typedef struct _REF_OBJECT {
    ULONG_PTR Handle;     /* the key */
    ULONG_PTR Device;     /* contexts, opened: the device the object belongs to */
    ULONG_PTR Allocation; /* opened: the adapter-wide allocation handle */
    ULONGLONG Size;       /* allocations: _Allocation.size, page-rounded */
} REF_OBJECT;

typedef struct _REF_TABLE {
    REF_OBJECT *Objects;
    SIZE_T Count;
    SIZE_T Capacity;
} REF_TABLE;

/* The per-adapter context: ReferenceMiniport's attributes.
 *
 * miniport.py's _Allocation.flags and .resource and the member sets of
 * self.resources are written but never read back by the driver; only which
 * resource handles exist is (CreateAllocation's "hResource in self.resources"),
 * so that is all the C keeps. Likewise _Device.contexts and _Device.opened are
 * the Device field of the Contexts and Opened tables. */
typedef struct _REF_ADAPTER {
    struct _REF_ADAPTER *Next; /* RefAdapterList */
    SIZE_T MemorySegmentSize;
    SIZE_T ApertureSegmentSize;
    DXGKRNL_INTERFACE Interface; /* from DxgkDdiStartDevice */
    REF_TABLE Allocations;       /* self.allocations: handle -> Size */
    REF_TABLE Resources;         /* self.resources: handle */
    REF_TABLE Opened;            /* self.opened: handle -> Allocation (and Device) */
    REF_TABLE Devices;           /* self.devices: handle */
    REF_TABLE Contexts;          /* self.contexts: handle -> Device */
    UINT LastSubmittedFenceId;   /* self.last_submitted_fence */
    SIZE_T SubmittedFenceCount;  /* self.submitted_fence_count */
} REF_ADAPTER;

/* The live adapters, most recently added first. DDIs that receive only a device or
 * context handle find their adapter here. Handle values come from one counter for
 * the whole process (RefHandleCounter, from 0x1000 in steps of 0x10, as miniport.py
 * counts per adapter), so a handle names exactly one adapter, even with several
 * adapters alive: a handle of another or a removed adapter is never found on the
 * wrong one. These two are the driver's only globals; the harness makes one DDI
 * call at a time. */
static REF_ADAPTER *RefAdapterList;
static ULONG_PTR RefHandleCounter = REF_FIRST_HANDLE;

static REF_OBJECT *RefTableFind(const REF_TABLE *Table, ULONG_PTR Handle)
{
    for (SIZE_T i = 0; i < Table->Count; i++) {
        if (Table->Objects[i].Handle == Handle) {
            return &Table->Objects[i];
        }
    }
    return NULL;
}

/* Make room for Extra more objects, so that the inserts that follow cannot fail. */
static BOOLEAN RefTableReserve(REF_TABLE *Table, SIZE_T Extra)
{
    const SIZE_T MaxObjects = (SIZE_T)-1 / sizeof(REF_OBJECT);
    if (Extra <= Table->Capacity - Table->Count) {
        return TRUE;
    }
    if (Extra > MaxObjects - Table->Count) {
        return FALSE;
    }
    SIZE_T Needed = Table->Count + Extra;
    SIZE_T Capacity = Table->Capacity <= MaxObjects / 2 ? Table->Capacity * 2 : MaxObjects;
    if (Capacity < Needed) {
        Capacity = Needed < 16 ? 16 : Needed;
    }
    REF_OBJECT *Objects = realloc(Table->Objects, Capacity * sizeof(REF_OBJECT));
    if (Objects == NULL) {
        return FALSE;
    }
    Table->Objects = Objects;
    Table->Capacity = Capacity;
    return TRUE;
}

/* Insert into a table that has room (RefTableReserve). */
static REF_OBJECT *RefTableAppend(REF_TABLE *Table, ULONG_PTR Handle)
{
    REF_OBJECT *Object = &Table->Objects[Table->Count++];
    memset(Object, 0, sizeof(*Object));
    Object->Handle = Handle;
    return Object;
}

/* dict.pop(handle, None): TRUE when the handle was there. */
static BOOLEAN RefTableRemove(REF_TABLE *Table, ULONG_PTR Handle)
{
    REF_OBJECT *Object = RefTableFind(Table, Handle);
    if (Object == NULL) {
        return FALSE;
    }
    *Object = Table->Objects[--Table->Count];
    return TRUE;
}

/* Remove every object that belongs to Device. */
static void RefTableRemoveDevice(REF_TABLE *Table, ULONG_PTR Device)
{
    SIZE_T i = 0;
    while (i < Table->Count) {
        if (Table->Objects[i].Device == Device) {
            Table->Objects[i] = Table->Objects[--Table->Count];
        } else {
            i++;
        }
    }
}

static void RefTableFree(REF_TABLE *Table)
{
    free(Table->Objects);
    memset(Table, 0, sizeof(*Table));
}

/* next(self._handles), from the process-wide counter (see RefAdapterList). */
static ULONG_PTR RefNextHandle(REF_ADAPTER *Adapter)
{
    UNREFERENCED_PARAMETER(Adapter);
    ULONG_PTR Handle = RefHandleCounter;
    RefHandleCounter += REF_HANDLE_STEP;
    return Handle;
}

static ULONG_PTR RefHandleValue(HANDLE Handle) { return (ULONG_PTR)(uintptr_t)Handle; }

static HANDLE RefHandle(ULONG_PTR Value) { return (HANDLE)(uintptr_t)Value; }

static REF_ADAPTER *RefAdapterOfDevice(HANDLE hDevice)
{
    for (REF_ADAPTER *Adapter = RefAdapterList; Adapter != NULL; Adapter = Adapter->Next) {
        if (RefTableFind(&Adapter->Devices, RefHandleValue(hDevice)) != NULL) {
            return Adapter;
        }
    }
    return NULL;
}

static REF_ADAPTER *RefAdapterOfContext(HANDLE hContext)
{
    for (REF_ADAPTER *Adapter = RefAdapterList; Adapter != NULL; Adapter = Adapter->Next) {
        if (RefTableFind(&Adapter->Contexts, RefHandleValue(hContext)) != NULL) {
            return Adapter;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ little-endian bytes */

static void RefPutU32(UCHAR *p, UINT v)
{
    p[0] = (UCHAR)v;
    p[1] = (UCHAR)(v >> 8);
    p[2] = (UCHAR)(v >> 16);
    p[3] = (UCHAR)(v >> 24);
}

static void RefPutU64(UCHAR *p, ULONGLONG v)
{
    RefPutU32(p, (UINT)v);
    RefPutU32(p + 4, (UINT)(v >> 32));
}

static USHORT RefGetU16(const UCHAR *p) { return (USHORT)(p[0] | (p[1] << 8)); }

static UINT RefGetU32(const UCHAR *p)
{
    return (UINT)p[0] | ((UINT)p[1] << 8) | ((UINT)p[2] << 16) | ((UINT)p[3] << 24);
}

static ULONGLONG RefGetU64(const UCHAR *p)
{
    return (ULONGLONG)RefGetU32(p) | ((ULONGLONG)RefGetU32(p + 4) << 32);
}

/* ------------------------------------------------------------------ instruction encoders (isa.py) */

/* COPY, XOR, SWZCOPY, UNSWZCOPY: "<B3xQQI" */
static UINT RefEncodeCopy(UCHAR *Out, UCHAR Opcode, ULONGLONG Dst, ULONGLONG Src, UINT Size)
{
    memset(Out, 0, GPU_COPY_SIZE);
    Out[0] = Opcode;
    RefPutU64(Out + 4, Dst);
    RefPutU64(Out + 12, Src);
    RefPutU32(Out + 20, Size);
    return GPU_COPY_SIZE;
}

/* FILL: "<B3xQII" */
static UINT RefEncodeFill(UCHAR *Out, ULONGLONG Dst, UINT Size, UINT Pattern)
{
    memset(Out, 0, GPU_FILL_SIZE);
    Out[0] = GPU_FILL;
    RefPutU64(Out + 4, Dst);
    RefPutU32(Out + 12, Size);
    RefPutU32(Out + 16, Pattern);
    return GPU_FILL_SIZE;
}

/* WRITE: "<BB2xQQ" */
static UINT RefEncodeWrite(UCHAR *Out, UCHAR Width, ULONGLONG Dst, ULONGLONG Value)
{
    memset(Out, 0, GPU_WRITE_SIZE);
    Out[0] = GPU_WRITE;
    Out[1] = Width;
    RefPutU64(Out + 4, Dst);
    RefPutU64(Out + 12, Value);
    return GPU_WRITE_SIZE;
}

/* READ: "<BB2xQ" */
static UINT RefEncodeRead(UCHAR *Out, UCHAR Width, ULONGLONG Src)
{
    memset(Out, 0, GPU_READ_SIZE);
    Out[0] = GPU_READ;
    Out[1] = Width;
    RefPutU64(Out + 4, Src);
    return GPU_READ_SIZE;
}

/* BIND: "<B3xIQ" */
static UINT RefEncodeBind(UCHAR *Out, UINT Slot, ULONGLONG Addr)
{
    memset(Out, 0, GPU_BIND_SIZE);
    Out[0] = GPU_BIND;
    RefPutU32(Out + 4, Slot);
    RefPutU64(Out + 8, Addr);
    return GPU_BIND_SIZE;
}

/* FENCE: "<B3xQ" */
static UINT RefEncodeFence(UCHAR *Out, ULONGLONG Fence)
{
    memset(Out, 0, GPU_FENCE_SIZE);
    Out[0] = GPU_FENCE;
    RefPutU64(Out + 4, Fence);
    return GPU_FENCE_SIZE;
}

/* PTE: "<B3xIIQ" */
static UINT RefEncodePte(UCHAR *Out, UINT Page, UINT Flags, ULONGLONG Pfn)
{
    memset(Out, 0, GPU_PTE_SIZE);
    Out[0] = GPU_PTE;
    RefPutU32(Out + 4, Page);
    RefPutU32(Out + 8, Flags);
    RefPutU64(Out + 12, Pfn);
    return GPU_PTE_SIZE;
}

/* REG: "<B3xII" */
static UINT RefEncodeReg(UCHAR *Out, UINT Reg, UINT Value)
{
    memset(Out, 0, GPU_REG_SIZE);
    Out[0] = GPU_REG;
    RefPutU32(Out + 4, Reg);
    RefPutU32(Out + 8, Value);
    return GPU_REG_SIZE;
}

/* ------------------------------------------------------------------ user command table (formats.py) */

/* One row of formats.COMMANDS. */
typedef struct _REF_USER_COMMAND {
    UCHAR Opcode;
    UCHAR Size;
    BOOLEAN Privileged;
} REF_USER_COMMAND;

static const REF_USER_COMMAND RefUserCommands[] = {
    {U_NOP, 4, FALSE},     {U_COPY, 24, FALSE},   {U_FILL, 20, FALSE},
    {U_WRITE, 16, FALSE},  {U_XOR, 24, FALSE},    {U_BIND, 16, FALSE},
    {U_SETREG, 12, TRUE},  {U_SETPTE, 20, TRUE},  {U_VERSION, 8, FALSE},
};

/* formats.BY_OPCODE.get(opcode) */
static const REF_USER_COMMAND *RefUserCommandOf(UCHAR Opcode)
{
    for (SIZE_T i = 0; i < sizeof(RefUserCommands) / sizeof(RefUserCommands[0]); i++) {
        if (RefUserCommands[i].Opcode == Opcode) {
            return &RefUserCommands[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ private helpers, declared */

/* A reference a translated command makes: _translate's (index, offset, byte in the bytes). */
typedef struct _REF_REFERENCE {
    UINT Index;
    UINT AllocationOffset;
    UINT Offset;
} REF_REFERENCE;

static NTSTATUS RefParseAllocationData(const REF_ADAPTER *Adapter, const DXGK_ALLOCATIONINFO *Info,
                                       ULONGLONG *Size, ULONGLONG *Pitched, UINT *Flags);
static BOOLEAN RefStage(const REF_ADAPTER *Adapter, const DXGKARG_RENDER *pRender, UINT Consumed,
                        UCHAR *Staged, UINT *StagedLength, UINT *At, UINT Remaining, UINT Need);
static NTSTATUS RefCheckCommand(const REF_USER_COMMAND *Command);
static BOOLEAN RefMayWrite(const DXGK_ALLOCATIONLIST *Entry);
static ULONGLONG RefPrepatch(const DXGK_ALLOCATIONLIST *Entry, UINT Offset);
static const REF_OBJECT *RefAllocationOf(const REF_ADAPTER *Adapter, HANDLE DeviceHandle);
static NTSTATUS RefReference(const REF_ADAPTER *Adapter, const DXGKARG_RENDER *pRender, UINT Index,
                             UINT Offset, UINT Size, BOOLEAN Write, ULONGLONG *Address);
static NTSTATUS RefTranslate(const REF_ADAPTER *Adapter, const DXGKARG_RENDER *pRender,
                             const UCHAR *Command, UINT Length, UCHAR *Emitted,
                             UINT *EmittedLength, REF_REFERENCE *Refs, UINT *RefCount);
static BOOLEAN RefBusy(const DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer, HANDLE hAllocation,
                       BOOLEAN Idle);
typedef UINT (*REF_CHUNK_FN)(const void *Context, ULONGLONG Done, ULONGLONG Count, UCHAR *Out);
static NTSTATUS RefEmitChunks(DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer, ULONGLONG Total,
                              ULONGLONG Chunk, UINT InstructionSize, REF_CHUNK_FN Make,
                              const void *Context);
static NTSTATUS RefBuildTransfer(DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer,
                                 const DXGK_BUILDPAGINGBUFFER_TRANSFER *Transfer);
static ULONGLONG RefLocation(const DXGK_TRANSFER_LOCATION *Location, ULONGLONG AllocationOffset);

/* ------------------------------------------------------------------ adapter */

/* ReferenceMiniport.__init__: one adapter. */
NTSTATUS DxgkDdiAddDevice(PVOID PhysicalDeviceObject, PVOID *MiniportDeviceContext)
{
    UNREFERENCED_PARAMETER(PhysicalDeviceObject);
    if (MiniportDeviceContext == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    REF_ADAPTER *Adapter = calloc(1, sizeof(*Adapter));
    if (Adapter == NULL) {
        return STATUS_NO_MEMORY;
    }
    Adapter->Next = RefAdapterList;
    RefAdapterList = Adapter;
    *MiniportDeviceContext = Adapter;
    return STATUS_SUCCESS;
}

NTSTATUS DxgkDdiRemoveDevice(PVOID MiniportDeviceContext)
{
    REF_ADAPTER *Adapter = MiniportDeviceContext;
    for (REF_ADAPTER **Link = &RefAdapterList; *Link != NULL; Link = &(*Link)->Next) {
        if (*Link == Adapter) {
            *Link = Adapter->Next;
            break;
        }
    }
    RefTableFree(&Adapter->Allocations);
    RefTableFree(&Adapter->Resources);
    RefTableFree(&Adapter->Opened);
    RefTableFree(&Adapter->Devices);
    RefTableFree(&Adapter->Contexts);
    free(Adapter);
    return STATUS_SUCCESS;
}

/* start_device */
NTSTATUS DxgkDdiStartDevice(PVOID MiniportDeviceContext, DXGK_START_INFO *DxgkStartInfo,
                            DXGKRNL_INTERFACE *DxgkInterface, ULONG *NumberOfVideoPresentSources,
                            ULONG *NumberOfChildren)
{
    REF_ADAPTER *Adapter = MiniportDeviceContext;
    if (DxgkStartInfo == NULL || DxgkInterface == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    Adapter->MemorySegmentSize = DxgkStartInfo->MemorySegmentSize;
    Adapter->ApertureSegmentSize = DxgkStartInfo->ApertureSegmentSize;
    Adapter->Interface = *DxgkInterface;
    if (NumberOfVideoPresentSources != NULL) {
        *NumberOfVideoPresentSources = 0;
    }
    if (NumberOfChildren != NULL) {
        *NumberOfChildren = 0;
    }
    return STATUS_SUCCESS;
}

/* query_segments */
static NTSTATUS RefQuerySegments(const REF_ADAPTER *Adapter, DXGK_QUERYSEGMENTOUT *Out)
{
    if (Out->pSegmentDescriptor == NULL) {
        Out->NbSegment = 2;
        return STATUS_SUCCESS;
    }
    const DXGK_SEGMENTDESCRIPTOR Segments[2] = {
        {.BaseAddress.QuadPart = (LONGLONG)MEMORY_SEGMENT_BASE,
         .Size = Adapter->MemorySegmentSize,
         .CommitLimit = Adapter->MemorySegmentSize,
         .Flags.Value = DXGK_SEGMENTFLAGS_CPUVISIBLE},
        {.BaseAddress.QuadPart = (LONGLONG)APERTURE_SEGMENT_BASE,
         .Size = Adapter->ApertureSegmentSize,
         .CommitLimit = Adapter->ApertureSegmentSize,
         .Flags.Value = DXGK_SEGMENTFLAGS_APERTURE | DXGK_SEGMENTFLAGS_CACHECOHERENT},
    };
    UINT Count = Out->NbSegment < 2 ? Out->NbSegment : 2;
    memcpy(Out->pSegmentDescriptor, Segments, Count * sizeof(Segments[0]));
    Out->NbSegment = Count;
    return STATUS_SUCCESS;
}

/* query_driver_caps */
static NTSTATUS RefQueryDriverCaps(DXGK_DRIVERCAPS *Caps)
{
    Caps->DmaBufferPrivateDataSize = DMA_PRIVATE_DATA_SIZE;
    Caps->HarnessCaps = WDDM_HARNESSCAPS_SUPPORTSCONTEXTS | WDDM_HARNESSCAPS_SUPPORTSALTERNATEVA |
                        (REF_REPORT_BUSY ? WDDM_HARNESSCAPS_MAYREPORTALLOCATIONBUSY : 0);
    return STATUS_SUCCESS;
}

NTSTATUS DxgkDdiQueryAdapterInfo(HANDLE hAdapter, const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo)
{
    const REF_ADAPTER *Adapter = hAdapter;
    if (pQueryAdapterInfo == NULL || pQueryAdapterInfo->pOutputData == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    switch (pQueryAdapterInfo->Type) {
    case DXGKQAITYPE_QUERYSEGMENT:
        if (pQueryAdapterInfo->OutputDataSize < sizeof(DXGK_QUERYSEGMENTOUT)) {
            return STATUS_INVALID_PARAMETER;
        }
        return RefQuerySegments(Adapter, pQueryAdapterInfo->pOutputData);
    case DXGKQAITYPE_DRIVERCAPS:
        if (pQueryAdapterInfo->OutputDataSize < sizeof(DXGK_DRIVERCAPS)) {
            return STATUS_INVALID_PARAMETER;
        }
        return RefQueryDriverCaps(pQueryAdapterInfo->pOutputData);
    default:
        return STATUS_NOT_SUPPORTED;
    }
}

/* ------------------------------------------------------------------ devices, contexts */

/* create_device */
NTSTATUS DxgkDdiCreateDevice(HANDLE hAdapter, DXGKARG_CREATEDEVICE *pCreateDevice)
{
    REF_ADAPTER *Adapter = hAdapter;
    if (!RefTableReserve(&Adapter->Devices, 1)) {
        return STATUS_NO_MEMORY;
    }
    ULONG_PTR Handle = RefNextHandle(Adapter);
    RefTableAppend(&Adapter->Devices, Handle);
    pCreateDevice->hDevice = RefHandle(Handle);
    return STATUS_SUCCESS;
}

/* destroy_device */
NTSTATUS DxgkDdiDestroyDevice(HANDLE hDevice)
{
    REF_ADAPTER *Adapter = RefAdapterOfDevice(hDevice);
    if (Adapter == NULL) {
        return STATUS_INVALID_HANDLE;
    }
    ULONG_PTR Device = RefHandleValue(hDevice);
    RefTableRemove(&Adapter->Devices, Device);
    RefTableRemoveDevice(&Adapter->Contexts, Device);
    RefTableRemoveDevice(&Adapter->Opened, Device);
    return STATUS_SUCCESS;
}

/* create_context */
NTSTATUS DxgkDdiCreateContext(HANDLE hDevice, DXGKARG_CREATECONTEXT *pCreateContext)
{
    REF_ADAPTER *Adapter = RefAdapterOfDevice(hDevice);
    if (Adapter == NULL) {
        return STATUS_INVALID_HANDLE;
    }
    if (!RefTableReserve(&Adapter->Contexts, 1)) {
        return STATUS_NO_MEMORY;
    }
    ULONG_PTR Handle = RefNextHandle(Adapter);
    RefTableAppend(&Adapter->Contexts, Handle)->Device = RefHandleValue(hDevice);
    pCreateContext->hContext = RefHandle(Handle);
    return STATUS_SUCCESS;
}

/* destroy_context */
NTSTATUS DxgkDdiDestroyContext(HANDLE hContext)
{
    REF_ADAPTER *Adapter = RefAdapterOfContext(hContext);
    if (Adapter == NULL) {
        return STATUS_INVALID_HANDLE;
    }
    RefTableRemove(&Adapter->Contexts, RefHandleValue(hContext));
    return STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ allocations */

/* Round Value up to a multiple of Align (a power of two); FALSE when that does not
 * fit in 64 bits. */
static BOOLEAN RefRoundUp(ULONGLONG Value, ULONGLONG Align, ULONGLONG *Rounded)
{
    if (Value > ~0ull - (Align - 1)) {
        return FALSE;
    }
    *Rounded = (Value + Align - 1) & ~(Align - 1);
    return TRUE;
}

/* _parse_allocation_data: (Size, PitchAlignedSize or 0, flags) of valid private data. */
static NTSTATUS RefParseAllocationData(const REF_ADAPTER *Adapter, const DXGK_ALLOCATIONINFO *Info,
                                       ULONGLONG *Size, ULONGLONG *Pitched, UINT *Flags)
{
    if (Info->PrivateDriverDataSize != ALLOCATION_DATA_SIZE) {
        return STATUS_INVALID_PARAMETER;
    }
    const UCHAR *Raw = Info->pPrivateDriverData;
    UINT Magic = RefGetU32(Raw);
    USHORT Version = RefGetU16(Raw + 4);
    USHORT DataFlags = RefGetU16(Raw + 6);
    ULONGLONG DataSize = RefGetU64(Raw + 8);
    UINT Rows = RefGetU32(Raw + 16);
    UINT Reserved1 = RefGetU32(Raw + 20);
    if (Magic != ALLOCATION_MAGIC) {
        return STATUS_INVALID_PARAMETER;
    }
    if (Version != ALLOCATION_VERSION) {
        return STATUS_GRAPHICS_DRIVER_MISMATCH;
    }
    BOOLEAN Gdi = (DataFlags & ALLOCATION_DATA_GDI) != 0;
    if ((DataFlags & ~ALLOCATION_DATA_ALL) != 0 || Reserved1 != 0 || DataSize == 0 ||
        Gdi != (Rows != 0)) {
        return STATUS_INVALID_PARAMETER;
    }
    if ((DataFlags & ALLOCATION_DATA_SWIZZLED) && (DataFlags & ALLOCATION_DATA_APERTUREONLY)) {
        return STATUS_INVALID_PARAMETER; /* swizzled surfaces live in video memory only */
    }
    ULONGLONG Limit;
    if (DataFlags & ALLOCATION_DATA_APERTUREONLY) {
        Limit = Adapter->ApertureSegmentSize;
    } else if ((DataFlags & ALLOCATION_DATA_APERTURE) && !(DataFlags & ALLOCATION_DATA_SWIZZLED)) {
        Limit = Adapter->MemorySegmentSize > Adapter->ApertureSegmentSize
                    ? Adapter->MemorySegmentSize
                    : Adapter->ApertureSegmentSize;
    } else { /* memory-only: must fit the memory segment */
        Limit = Adapter->MemorySegmentSize;
    }
    /* Every size below that does not fit in 64 bits is larger than any segment, so
     * it is rejected as too large, as miniport.py's unbounded integers are. */
    ULONGLONG PitchedSize = 0;
    if (Gdi) { /* ALC-GDISIZE: the driver sets Size, including the pitch for CPU-visible surfaces */
        ULONGLONG Pitch = DataSize;
        if ((DataFlags & ALLOCATION_DATA_CPUVISIBLE) &&
            !RefRoundUp(DataSize, GDI_PITCH_ALIGNMENT, &Pitch)) {
            return STATUS_INVALID_PARAMETER;
        }
        if (Pitch > ~0ull / Rows) {
            return STATUS_INVALID_PARAMETER;
        }
        DataSize = Pitch * Rows;
        PitchedSize = (DataFlags & ALLOCATION_DATA_CPUVISIBLE) ? DataSize : 0;
    }
    ULONGLONG Rounded;
    if (!RefRoundUp(DataSize, PAGE_SIZE, &Rounded) || Rounded > Limit) {
        return STATUS_INVALID_PARAMETER;
    }
    *Size = DataSize;
    *Pitched = PitchedSize;
    *Flags = DataFlags;
    return STATUS_SUCCESS;
}

/* create_allocation */
NTSTATUS DxgkDdiCreateAllocation(HANDLE hAdapter, DXGKARG_CREATEALLOCATION *pCreateAllocation)
{
    REF_ADAPTER *Adapter = hAdapter;
    UINT NumAllocations = pCreateAllocation->NumAllocations;
    if (NumAllocations == 0 || pCreateAllocation->pAllocationInfo == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    /* Room for every allocation and the resource first, so nothing below can fail
     * half-way for want of memory. */
    if (!RefTableReserve(&Adapter->Allocations, NumAllocations) ||
        !RefTableReserve(&Adapter->Resources, 1)) {
        return STATUS_NO_MEMORY;
    }
    SIZE_T FirstCreated = Adapter->Allocations.Count; /* created: the objects appended from here */
    NTSTATUS Status = STATUS_SUCCESS;
    for (UINT i = 0; i < NumAllocations; i++) {
        DXGK_ALLOCATIONINFO *Info = &pCreateAllocation->pAllocationInfo[i];
        if (Info->pPrivateDriverData == NULL) {
            Status = STATUS_INVALID_PARAMETER;
            break;
        }
        ULONGLONG Size, Pitched;
        UINT Flags;
        Status = RefParseAllocationData(Adapter, Info, &Size, &Pitched, &Flags);
        if (Status != STATUS_SUCCESS) {
            break;
        }
        UINT Segments;
        Info->PreferredSegment.Value = 0;
        if (Flags & ALLOCATION_DATA_APERTUREONLY) {
            Segments = 1u << APERTURE_SEGMENT_ID;
            Info->PreferredSegment.SegmentId0 = APERTURE_SEGMENT_ID;
        } else if ((Flags & ALLOCATION_DATA_APERTURE) && !(Flags & ALLOCATION_DATA_SWIZZLED)) {
            Segments = (1u << MEMORY_SEGMENT_ID) | (1u << APERTURE_SEGMENT_ID);
            Info->PreferredSegment.SegmentId0 = MEMORY_SEGMENT_ID;
            Info->PreferredSegment.SegmentId1 = APERTURE_SEGMENT_ID;
        } else {
            Segments = 1u << MEMORY_SEGMENT_ID;
            Info->PreferredSegment.SegmentId0 = MEMORY_SEGMENT_ID;
        }
        UINT OutFlags = 0;
        if (Flags & ALLOCATION_DATA_CPUVISIBLE) {
            OutFlags |= DXGK_ALLOCATIONINFOFLAGS_CPUVISIBLE;
        }
        if (Flags & ALLOCATION_DATA_SWIZZLED) {
            OutFlags |= DXGK_ALLOCATIONINFOFLAGS_SWIZZLED;
        }
        if (Flags & ALLOCATION_DATA_HISTORYBUFFER) {
            OutFlags |= DXGK_ALLOCATIONINFOFLAGS_HISTORYBUFFER;
        }
        if (Flags & ALLOCATION_DATA_ALTERNATEVA) {
            OutFlags |= DXGK_ALLOCATIONINFOFLAGS_USEALTERNATEVA;
        }
        ULONGLONG Rounded = (Size + PAGE_SIZE - 1) & ~(ULONGLONG)(PAGE_SIZE - 1); /* checked above */
        Info->Size = Rounded;
        if (Flags & ALLOCATION_DATA_CPUVISIBLE) {
            Info->PitchAlignedSize = Pitched ? Pitched : Rounded;
        } else {
            Info->PitchAlignedSize = 0;
        }
        Info->Alignment = PAGE_SIZE;
        Info->SupportedReadSegmentSet = Segments;
        Info->SupportedWriteSegmentSet = Segments;
        Info->EvictionSegmentSet = 0;
        Info->Flags.Value = OutFlags;
        ULONG_PTR Handle = RefNextHandle(Adapter);
        RefTableAppend(&Adapter->Allocations, Handle)->Size = Rounded;
        Info->hAllocation = RefHandle(Handle);
    }
    if (Status != STATUS_SUCCESS) {
        /* ALC-ATOMIC: leave nothing half-made behind */
        Adapter->Allocations.Count = FirstCreated;
        for (UINT i = 0; i < NumAllocations; i++) {
            pCreateAllocation->pAllocationInfo[i].hAllocation = NULL;
        }
        return Status;
    }
    if (pCreateAllocation->Flags & DXGK_CREATEALLOCATIONFLAGS_RESOURCE) {
        ULONG_PTR Resource = RefHandleValue(pCreateAllocation->hResource);
        if (RefTableFind(&Adapter->Resources, Resource) == NULL) {
            Resource = RefNextHandle(Adapter);
            RefTableAppend(&Adapter->Resources, Resource);
        }
        pCreateAllocation->hResource = RefHandle(Resource);
    }
    return STATUS_SUCCESS;
}

/* destroy_allocation */
NTSTATUS DxgkDdiDestroyAllocation(HANDLE hAdapter, const DXGKARG_DESTROYALLOCATION *pDestroyAllocation)
{
    REF_ADAPTER *Adapter = hAdapter;
    for (UINT i = 0; i < pDestroyAllocation->NumAllocations; i++) {
        RefTableRemove(&Adapter->Allocations, RefHandleValue(pDestroyAllocation->pAllocationList[i]));
    }
    if ((pDestroyAllocation->Flags & DXGK_DESTROYALLOCATIONFLAGS_DESTROYRESOURCE) &&
        pDestroyAllocation->hResource != NULL) {
        RefTableRemove(&Adapter->Resources, RefHandleValue(pDestroyAllocation->hResource));
    }
    return STATUS_SUCCESS;
}

/* open_allocation */
NTSTATUS DxgkDdiOpenAllocation(HANDLE hDevice, const DXGKARG_OPENALLOCATION *pOpenAllocation)
{
    REF_ADAPTER *Adapter = RefAdapterOfDevice(hDevice);
    if (Adapter == NULL) {
        return STATUS_INVALID_HANDLE;
    }
    UINT NumAllocations = pOpenAllocation->NumAllocations;
    for (UINT i = 0; i < NumAllocations; i++) {
        HANDLE hAllocation = pOpenAllocation->pOpenAllocation[i].hAllocation;
        if (RefTableFind(&Adapter->Allocations, RefHandleValue(hAllocation)) == NULL) {
            return STATUS_INVALID_HANDLE;
        }
    }
    if (!RefTableReserve(&Adapter->Opened, NumAllocations)) {
        return STATUS_NO_MEMORY;
    }
    for (UINT i = 0; i < NumAllocations; i++) {
        DXGK_OPENALLOCATIONINFO *Info = &pOpenAllocation->pOpenAllocation[i];
        ULONG_PTR Handle = RefNextHandle(Adapter);
        REF_OBJECT *Opened = RefTableAppend(&Adapter->Opened, Handle);
        Opened->Allocation = RefHandleValue(Info->hAllocation);
        Opened->Device = RefHandleValue(hDevice);
        Info->hDeviceSpecificAllocation = RefHandle(Handle);
    }
    return STATUS_SUCCESS;
}

/* close_allocation */
NTSTATUS DxgkDdiCloseAllocation(HANDLE hDevice, const DXGKARG_CLOSEALLOCATION *pCloseAllocation)
{
    REF_ADAPTER *Adapter = RefAdapterOfDevice(hDevice);
    if (Adapter == NULL) {
        return STATUS_INVALID_HANDLE;
    }
    for (UINT i = 0; i < pCloseAllocation->NumAllocations; i++) {
        RefTableRemove(&Adapter->Opened, RefHandleValue(pCloseAllocation->pOpenHandleList[i]));
    }
    return STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ render */

/* render */
NTSTATUS DxgkDdiRender(HANDLE hContext, DXGKARG_RENDER *pRender)
{
    const REF_ADAPTER *Adapter = RefAdapterOfContext(hContext);
    if (Adapter == NULL) {
        return STATUS_INVALID_HANDLE;
    }
#if defined(WDDM_MUTANT_OVERFLOW_DMA)
    LONGLONG Room = (LONGLONG)pRender->DmaSize; /* forgets the fence */
#else
    /* every DMA buffer ends with the fence Patch fills in */
    LONGLONG Room = (LONGLONG)pRender->DmaSize - GPU_FENCE_SIZE;
#endif
    if (Room < 0) {
        return STATUS_INVALID_PARAMETER;
    }
    UINT PatchRoom = pRender->PatchLocationListOutSize;

    /* The DMA bytes and patch entries are built in kernel scratch memory and copied
     * out at the end, so a rejected buffer leaves the output untouched. */
    UCHAR *Dma = malloc((SIZE_T)pRender->DmaSize + REF_DMA_SCRATCH_SLACK);
    D3DDDI_PATCHLOCATIONLIST *Patches =
        PatchRoom ? malloc((SIZE_T)PatchRoom * sizeof(D3DDDI_PATCHLOCATIONLIST)) : NULL;
    UCHAR *Staged = malloc(REF_STAGING_CAPACITY); /* kernel copy of user bytes [Consumed - At, ...) */
    NTSTATUS Status = STATUS_SUCCESS;
    if (Dma == NULL || (PatchRoom != 0 && Patches == NULL) || Staged == NULL) {
        Status = STATUS_NO_MEMORY;
        goto Cleanup;
    }
    UINT DmaLength = 0;
    UINT PatchCount = 0;
    UINT StagedLength = 0;
    UINT At = 0; /* parse position in Staged */
    UINT Consumed = 0;
    UINT Remaining = pRender->CommandLength;

    while (Consumed < Remaining) {
        if (StagedLength - At < USER_HEADER_SIZE) {
            if (!RefStage(Adapter, pRender, Consumed, Staged, &StagedLength, &At, Remaining, 0)) {
                Status = STATUS_INVALID_PARAMETER; /* the __except of the WDK sample */
                goto Cleanup;
            }
            if (StagedLength < USER_HEADER_SIZE) {
                Status = STATUS_INVALID_USER_BUFFER;
                goto Cleanup;
            }
        }
        UCHAR Opcode = Staged[At];
        USHORT Length = RefGetU16(Staged + At + 2);
        const REF_USER_COMMAND *Command = RefUserCommandOf(Opcode);
        if (Command == NULL) {
            Status = STATUS_ILLEGAL_INSTRUCTION;
            goto Cleanup;
        }
        Status = RefCheckCommand(Command);
        if (Status != STATUS_SUCCESS) {
            goto Cleanup;
        }
        if (Length != Command->Size) {
            Status = STATUS_INVALID_USER_BUFFER;
            goto Cleanup;
        }
        if (StagedLength - At < Length) {
            if (!RefStage(Adapter, pRender, Consumed, Staged, &StagedLength, &At, Remaining,
                          Length)) {
                Status = STATUS_INVALID_PARAMETER; /* the __except of the WDK sample */
                goto Cleanup;
            }
            if (StagedLength < Length) {
                Status = STATUS_INVALID_USER_BUFFER;
                goto Cleanup;
            }
        }
        UCHAR Emitted[GPU_MAX_INSTRUCTION_SIZE];
        UINT EmittedLength;
        REF_REFERENCE Refs[2];
        UINT RefCount;
        Status = RefTranslate(Adapter, pRender, Staged + At, Length, Emitted, &EmittedLength,
                              Refs, &RefCount);
        if (Status != STATUS_SUCCESS) {
            goto Cleanup;
        }
        if (EmittedLength > Room || RefCount > PatchRoom) {
            if (DmaLength == 0 && PatchCount == 0) {
                Status = STATUS_INVALID_PARAMETER; /* larger than an empty DMA buffer */
                goto Cleanup;
            }
            Status = STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER;
            break;
        }
        for (UINT i = 0; i < RefCount; i++) {
            D3DDDI_PATCHLOCATIONLIST *Patch = &Patches[PatchCount++];
            UINT Position = DmaLength + Refs[i].Offset;
            memset(Patch, 0, sizeof(*Patch));
            Patch->AllocationIndex = Refs[i].Index;
            Patch->AllocationOffset = Refs[i].AllocationOffset;
            Patch->PatchOffset = Position;
            Patch->SplitOffset = Position;
        }
        memcpy(Dma + DmaLength, Emitted, EmittedLength);
        DmaLength += EmittedLength;
        Room -= EmittedLength;
        PatchRoom -= RefCount;
        At += Length;
        Consumed += Length;
    }

    UINT FenceOffset = DmaLength;
    DmaLength += RefEncodeFence(Dma + DmaLength, 0);
    memcpy(pRender->pDmaBuffer, Dma, DmaLength);
    pRender->pDmaBuffer = (UCHAR *)pRender->pDmaBuffer + DmaLength;
    if (PatchCount != 0) {
        memcpy(pRender->pPatchLocationListOut, Patches, PatchCount * sizeof(Patches[0]));
        pRender->pPatchLocationListOut += PatchCount;
    }
    if (pRender->pDmaBufferPrivateData != NULL &&
        pRender->DmaBufferPrivateDataSize >= DMA_PRIVATE_DATA_SIZE) {
        RefPutU32(pRender->pDmaBufferPrivateData, DMA_PRIVATE_MAGIC);
        RefPutU32((UCHAR *)pRender->pDmaBufferPrivateData + 4, FenceOffset);
    }
    if (Status != STATUS_SUCCESS) {
        pRender->pCommand = (const UCHAR *)pRender->pCommand + Consumed;
    }

Cleanup:
    free(Staged);
    free(Patches);
    free(Dma);
    return Status;
}

/* _stage: copy the next user bytes into kernel memory, each byte once (REN-COPYFIRST).
 * Keeps the unparsed tail Staged[At, StagedLength) and appends up to
 * max(STAGING_CHUNK, Need - tail) more bytes; FALSE when the user read faults. */
static BOOLEAN RefStage(const REF_ADAPTER *Adapter, const DXGKARG_RENDER *pRender, UINT Consumed,
                        UCHAR *Staged, UINT *StagedLength, UINT *At, UINT Remaining, UINT Need)
{
    UINT Tail = *StagedLength - *At;
    memmove(Staged, Staged + *At, Tail);
    *StagedLength = Tail;
    *At = 0;
    UINT Start = Consumed + Tail;
    LONGLONG Want = (LONGLONG)Need - Tail;
    LONGLONG Take = (LONGLONG)Remaining - Start;
    if (Want < STAGING_CHUNK) {
        Want = STAGING_CHUNK;
    }
    if (Take > Want) {
        Take = Want;
    }
    if (Take <= 0) {
        return TRUE;
    }
    if (!Adapter->Interface.WddmCbCopyFromUser(Adapter->Interface.DeviceHandle, Staged + Tail,
                                               (const UCHAR *)pRender->pCommand + Start,
                                               (SIZE_T)Take)) {
        return FALSE;
    }
    *StagedLength = Tail + (UINT)Take;
    return TRUE;
}

/* _check_command: REN-VALIDATE: privileged user commands never reach the GPU. */
static NTSTATUS RefCheckCommand(const REF_USER_COMMAND *Command)
{
    return Command->Privileged ? STATUS_PRIVILEGED_INSTRUCTION : STATUS_SUCCESS;
}

/* _may_write: REN-ALLOCINDEX: only allocations marked WriteOperation may be written. */
static BOOLEAN RefMayWrite(const DXGK_ALLOCATIONLIST *Entry)
{
    return (Entry->Value & DXGK_ALLOCATIONLIST_WRITEOPERATION) != 0;
}

/* _prepatch: REN-PREPATCH: the segment address when SegmentId != 0; 0 (never
 * trusted) when paged out. */
static ULONGLONG RefPrepatch(const DXGK_ALLOCATIONLIST *Entry, UINT Offset)
{
#if defined(WDDM_MUTANT_NO_PREPATCH)
    UNREFERENCED_PARAMETER(Entry);
    UNREFERENCED_PARAMETER(Offset);
    return 0; /* ignores SegmentId: never pre-patches */
#else
    if ((Entry->Value & DXGK_ALLOCATIONLIST_SEGMENTID_MASK) == 0) {
        return 0;
    }
    return (ULONGLONG)Entry->PhysicalAddress.QuadPart + Offset;
#endif
}

/* _allocation_of: the allocation behind a device-specific handle, or NULL. */
static const REF_OBJECT *RefAllocationOf(const REF_ADAPTER *Adapter, HANDLE DeviceHandle)
{
    const REF_OBJECT *Opened = RefTableFind(&Adapter->Opened, RefHandleValue(DeviceHandle));
    return Opened == NULL ? NULL : RefTableFind(&Adapter->Allocations, Opened->Allocation);
}

/* render's reference(): validate an allocation reference; its pre-patch address
 * (0 when paged out) in *Address. */
static NTSTATUS RefReference(const REF_ADAPTER *Adapter, const DXGKARG_RENDER *pRender, UINT Index,
                             UINT Offset, UINT Size, BOOLEAN Write, ULONGLONG *Address)
{
    if (Index >= pRender->AllocationListSize) {
        return STATUS_INVALID_HANDLE;
    }
    const DXGK_ALLOCATIONLIST *Entry = &pRender->pAllocationList[Index];
    const REF_OBJECT *Allocation = RefAllocationOf(Adapter, Entry->hDeviceSpecificAllocation);
    if (Allocation == NULL) {
        return STATUS_INVALID_HANDLE;
    }
    if ((ULONGLONG)Offset + Size > Allocation->Size) {
        return STATUS_INVALID_PARAMETER;
    }
    if (Write && !RefMayWrite(Entry)) {
        return STATUS_INVALID_PARAMETER;
    }
    *Address = RefPrepatch(Entry, Offset);
    return STATUS_SUCCESS;
}

/* _translate: GPU bytes for one validated user command, and its references
 * (index, offset, byte in the bytes). Command is the whole command (Length bytes,
 * header first); its fields are the u32s after the header. */
static NTSTATUS RefTranslate(const REF_ADAPTER *Adapter, const DXGKARG_RENDER *pRender,
                             const UCHAR *Command, UINT Length, UCHAR *Emitted,
                             UINT *EmittedLength, REF_REFERENCE *Refs, UINT *RefCount)
{
    UINT Field[5] = {0};
    for (UINT i = 0; i < (Length - USER_HEADER_SIZE) / 4 && i < 5; i++) {
        Field[i] = RefGetU32(Command + USER_HEADER_SIZE + 4 * i);
    }
    ULONGLONG Dst, Src, Addr;
    NTSTATUS Status;
    *EmittedLength = 0;
    *RefCount = 0;
    switch (Command[0]) {
    case U_COPY:
    case U_XOR: { /* dst_index, dst_offset, src_index, src_offset, size */
        Status = RefReference(Adapter, pRender, Field[0], Field[1], Field[4], TRUE, &Dst);
        if (Status != STATUS_SUCCESS) {
            return Status;
        }
        Status = RefReference(Adapter, pRender, Field[2], Field[3], Field[4], FALSE, &Src);
        if (Status != STATUS_SUCCESS) {
            return Status;
        }
        *EmittedLength = RefEncodeCopy(Emitted, Command[0] == U_COPY ? GPU_COPY : GPU_XOR, Dst, Src,
                                       Field[4]);
        Refs[0] = (REF_REFERENCE){Field[0], Field[1], 4};
        Refs[1] = (REF_REFERENCE){Field[2], Field[3], 12};
        *RefCount = 2;
        return STATUS_SUCCESS;
    }
    case U_FILL: /* dst_index, dst_offset, size, pattern */
        Status = RefReference(Adapter, pRender, Field[0], Field[1], Field[2], TRUE, &Dst);
        if (Status != STATUS_SUCCESS) {
            return Status;
        }
        *EmittedLength = RefEncodeFill(Emitted, Dst, Field[2], Field[3]);
        Refs[0] = (REF_REFERENCE){Field[0], Field[1], 4};
        *RefCount = 1;
        return STATUS_SUCCESS;
    case U_WRITE: /* dst_index, dst_offset, value */
        Status = RefReference(Adapter, pRender, Field[0], Field[1], 4, TRUE, &Dst);
        if (Status != STATUS_SUCCESS) {
            return Status;
        }
        *EmittedLength = RefEncodeWrite(Emitted, 4, Dst, Field[2]);
        Refs[0] = (REF_REFERENCE){Field[0], Field[1], 4};
        *RefCount = 1;
        return STATUS_SUCCESS;
    case U_BIND: /* slot, index, offset */
        if (Field[1] < pRender->AllocationListSize &&
            pRender->pAllocationList[Field[1]].hDeviceSpecificAllocation == NULL) {
            *EmittedLength = RefEncodeBind(Emitted, Field[0], 0); /* the NULL element unbinds */
            Refs[0] = (REF_REFERENCE){Field[1], 0, 8};
            *RefCount = 1;
            return STATUS_SUCCESS;
        }
        Status = RefReference(Adapter, pRender, Field[1], Field[2], 0, FALSE, &Addr);
        if (Status != STATUS_SUCCESS) {
            return Status;
        }
        *EmittedLength = RefEncodeBind(Emitted, Field[0], Addr);
        Refs[0] = (REF_REFERENCE){Field[1], Field[2], 8};
        *RefCount = 1;
        return STATUS_SUCCESS;
    case U_VERSION: /* version */
        return Field[0] != INTERFACE_VERSION ? STATUS_GRAPHICS_DRIVER_MISMATCH : STATUS_SUCCESS;
    default: /* U_NOP */
        return STATUS_SUCCESS;
    }
}

/* ------------------------------------------------------------------ patch and submit */

/* patch */
NTSTATUS DxgkDdiPatch(HANDLE hAdapter, const DXGKARG_PATCH *pPatch)
{
    UNREFERENCED_PARAMETER(hAdapter);
    LONGLONG Start = pPatch->DmaBufferSubmissionStartOffset;
    LONGLONG End = pPatch->DmaBufferSubmissionEndOffset;
    UCHAR *Dma = pPatch->pDmaBuffer;
    if (!(pPatch->Flags.Value & DXGK_PATCHFLAGS_PAGING) && pPatch->pPatchLocationList != NULL) {
        /* miniport.py patches a copy of the submission range and writes it back in one
         * piece; writing each address in place leaves the same bytes. */
        const D3DDDI_PATCHLOCATIONLIST *List =
            pPatch->pPatchLocationList + pPatch->PatchLocationListSubmissionStart;
        for (UINT i = 0; i < pPatch->PatchLocationListSubmissionLength; i++) {
            UINT Index = List[i].AllocationIndex;
            LONGLONG PatchOffset = List[i].PatchOffset;
            if (Index >= pPatch->AllocationListSize || PatchOffset < Start ||
                PatchOffset > End - 8) {
                continue;
            }
            ULONGLONG Address = 0;
            if (pPatch->pAllocationList != NULL) {
                const DXGK_ALLOCATIONLIST *Entry = &pPatch->pAllocationList[Index];
                if (Entry->hDeviceSpecificAllocation != NULL) {
                    Address = (ULONGLONG)Entry->PhysicalAddress.QuadPart + List[i].AllocationOffset;
                }
            }
            RefPutU64(Dma + PatchOffset, Address);
        }
    }
    if (pPatch->pDmaBufferPrivateData != NULL &&
        pPatch->DmaBufferPrivateDataSize >= DMA_PRIVATE_DATA_SIZE) {
        const UCHAR *Private = pPatch->pDmaBufferPrivateData;
        UINT Magic = RefGetU32(Private);
        LONGLONG FenceOffset = RefGetU32(Private + 4);
        if (Magic == DMA_PRIVATE_MAGIC && Start <= FenceOffset &&
            FenceOffset + GPU_FENCE_SIZE <= End) {
            RefPutU64(Dma + FenceOffset + 4, pPatch->SubmissionFenceId);
        }
    }
    return STATUS_SUCCESS;
}

/* submit_command */
NTSTATUS DxgkDdiSubmitCommand(HANDLE hAdapter, const DXGKARG_SUBMITCOMMAND *pSubmitCommand)
{
    REF_ADAPTER *Adapter = hAdapter;
    Adapter->LastSubmittedFenceId = pSubmitCommand->SubmissionFenceId;
    Adapter->SubmittedFenceCount++;
    return STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ paging */

/* The make(done, n) of each _emit_chunks caller, with what its lambda captures. */
typedef struct _REF_FILL_CHUNKS {
    ULONGLONG Base;
    UINT Pattern;
} REF_FILL_CHUNKS;

typedef struct _REF_PHYSICAL_CHUNKS {
    UCHAR Instruction[GPU_MAX_INSTRUCTION_SIZE];
    UINT Size;
} REF_PHYSICAL_CHUNKS;

typedef struct _REF_PTE_CHUNKS {
    SIZE_T OffsetInPages;
    UINT Flags;
    const PFN_NUMBER *Pfns; /* MAP: the MDL's page frames from MdlOffset; UNMAP: NULL */
    ULONGLONG DummyPfn;     /* UNMAP: DummyPage // PAGE_SIZE */
} REF_PTE_CHUNKS;

static UINT RefMakeFillChunk(const void *Context, ULONGLONG Done, ULONGLONG Count, UCHAR *Out)
{
    const REF_FILL_CHUNKS *Fill = Context;
    return RefEncodeFill(Out, Fill->Base + Done, (UINT)Count, Fill->Pattern);
}

static UINT RefMakePhysicalChunk(const void *Context, ULONGLONG Done, ULONGLONG Count, UCHAR *Out)
{
    const REF_PHYSICAL_CHUNKS *Physical = Context;
    UNREFERENCED_PARAMETER(Done);
    UNREFERENCED_PARAMETER(Count);
    memcpy(Out, Physical->Instruction, Physical->Size);
    return Physical->Size;
}

static UINT RefMakePteChunk(const void *Context, ULONGLONG Done, ULONGLONG Count, UCHAR *Out)
{
    const REF_PTE_CHUNKS *Pte = Context;
    UNREFERENCED_PARAMETER(Count);
    ULONGLONG Pfn = Pte->Pfns != NULL ? Pte->Pfns[Done] : Pte->DummyPfn;
    return RefEncodePte(Out, (UINT)(Pte->OffsetInPages + Done), Pte->Flags, Pfn);
}

/* build_paging_buffer */
NTSTATUS DxgkDdiBuildPagingBuffer(HANDLE hAdapter, DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer)
{
    UNREFERENCED_PARAMETER(hAdapter);
    DXGKARG_BUILDPAGINGBUFFER *Args = pBuildPagingBuffer;
    switch (Args->Operation) {
    case DXGK_OPERATION_TRANSFER:
    case DXGK_OPERATION_SPECIAL_LOCK_TRANSFER: {
        DXGK_BUILDPAGINGBUFFER_TRANSFER Transfer;
        if (Args->Operation == DXGK_OPERATION_TRANSFER) {
            Transfer = Args->Transfer;
        } else {
            const DXGK_BUILDPAGINGBUFFER_SPECIALLOCKTRANSFER *Lock = &Args->SpecialLockTransfer;
            Transfer = (DXGK_BUILDPAGINGBUFFER_TRANSFER){
                .hAllocation = Lock->hAllocation,
                .TransferOffset = Lock->TransferOffset,
                .TransferSize = Lock->TransferSize,
                .Source = Lock->Source,
                .Destination = Lock->Destination,
                .Flags = Lock->Flags,
                .MdlOffset = Lock->MdlOffset,
            };
        }
        if (RefBusy(Args, Transfer.hAllocation,
                    (Transfer.Flags & DXGK_TRANSFERFLAGS_ALLOCATIONISIDLE) != 0)) {
            return STATUS_GRAPHICS_ALLOCATION_BUSY;
        }
        return RefBuildTransfer(Args, &Transfer);
    }
    case DXGK_OPERATION_FILL: {
        const DXGK_BUILDPAGINGBUFFER_FILL *Fill = &Args->Fill;
        const REF_FILL_CHUNKS Chunks = {(ULONGLONG)Fill->Destination.SegmentAddress.QuadPart,
                                        Fill->FillPattern};
        return RefEmitChunks(Args, Fill->FillSize, PAGING_CHUNK, GPU_FILL_SIZE, RefMakeFillChunk,
                             &Chunks);
    }
    case DXGK_OPERATION_DISCARD_CONTENT: {
        const DXGK_BUILDPAGINGBUFFER_DISCARDCONTENT *Discard = &Args->DiscardContent;
        BOOLEAN Idle = (Discard->Flags & DXGK_DISCARDCONTENTFLAGS_ALLOCATIONISIDLE) != 0;
        if (RefBusy(Args, Discard->hAllocation, Idle)) {
            return STATUS_GRAPHICS_ALLOCATION_BUSY;
        }
        return STATUS_SUCCESS;
    }
    case DXGK_OPERATION_READ_PHYSICAL:
    case DXGK_OPERATION_WRITE_PHYSICAL: {
        const DXGK_BUILDPAGINGBUFFER_PHYSICAL *Phys =
            Args->Operation == DXGK_OPERATION_READ_PHYSICAL ? &Args->ReadPhysical
                                                            : &Args->WritePhysical;
        UCHAR Width = (UCHAR)(Phys->Size < 1 ? 1 : Phys->Size > 8 ? 8 : Phys->Size);
        ULONGLONG Address = (ULONGLONG)Phys->PhysicalAddress.QuadPart;
        REF_PHYSICAL_CHUNKS Chunks;
        if (Args->Operation == DXGK_OPERATION_READ_PHYSICAL) {
            Chunks.Size = RefEncodeRead(Chunks.Instruction, Width, Address);
        } else {
            Chunks.Size = RefEncodeWrite(Chunks.Instruction, Width, Address, 0);
        }
        return RefEmitChunks(Args, 1, 1, Chunks.Size, RefMakePhysicalChunk, &Chunks);
    }
    case DXGK_OPERATION_MAP_APERTURE_SEGMENT: {
        const DXGK_BUILDPAGINGBUFFER_MAPAPERTURESEGMENT *Map = &Args->MapApertureSegment;
        if (Map->pMdl == NULL) {
            return STATUS_SUCCESS;
        }
        const REF_PTE_CHUNKS Chunks = {
            Map->OffsetInPages,
            PTE_VALID | ((Map->Flags & DXGK_MAPAPERTUREFLAGS_CACHECOHERENT) ? PTE_CACHE_COHERENT : 0),
            MmGetMdlPfnArray(Map->pMdl) + Map->MdlOffset,
            0,
        };
        return RefEmitChunks(Args, Map->NumberOfPages, 1, GPU_PTE_SIZE, RefMakePteChunk, &Chunks);
    }
    case DXGK_OPERATION_UNMAP_APERTURE_SEGMENT: {
#if defined(WDDM_MUTANT_UNMAP_OLD_PAGE)
        return STATUS_SUCCESS; /* treats unmap as a no-op: the aperture keeps the old pages */
#else
        const DXGK_BUILDPAGINGBUFFER_UNMAPAPERTURESEGMENT *Unmap = &Args->UnmapApertureSegment;
        const REF_PTE_CHUNKS Chunks = {
            Unmap->OffsetInPages,
            PTE_VALID,
            NULL,
            (ULONGLONG)Unmap->DummyPage.QuadPart / PAGE_SIZE,
        };
        return RefEmitChunks(Args, Unmap->NumberOfPages, 1, GPU_PTE_SIZE, RefMakePteChunk, &Chunks);
#endif
    }
    default:
        return STATUS_SUCCESS;
    }
}

/* _busy: the optional busy behaviour: ask for the allocation to go idle once, never
 * when it is idle (PGB-BUSY). */
static BOOLEAN RefBusy(const DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer, HANDLE hAllocation,
                       BOOLEAN Idle)
{
    return REF_REPORT_BUSY && hAllocation != NULL && !Idle &&
           pBuildPagingBuffer->MultipassOffset == 0;
}

/* _emit_chunks: emit Make(done, n) for successive chunks of Total units, resuming at
 * MultipassOffset (PGB-MULTIPASS). */
static NTSTATUS RefEmitChunks(DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer, ULONGLONG Total,
                              ULONGLONG Chunk, UINT InstructionSize, REF_CHUNK_FN Make,
                              const void *Context)
{
    UCHAR *Out = pBuildPagingBuffer->pDmaBuffer;
    SIZE_T Length = 0;
    LONGLONG Room = pBuildPagingBuffer->DmaSize;
    ULONGLONG Done = pBuildPagingBuffer->MultipassOffset;
    while (Done < Total) {
        if (Room < InstructionSize) {
            break;
        }
        ULONGLONG Count = Total - Done < Chunk ? Total - Done : Chunk;
        Length += Make(Context, Done, Count, Out + Length);
        Room -= InstructionSize;
        Done += Count;
    }
    if (Length != 0) {
        pBuildPagingBuffer->pDmaBuffer = Out + Length;
    }
    pBuildPagingBuffer->MultipassOffset = (UINT)Done;
    return Done >= Total ? STATUS_SUCCESS : STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER;
}

/* _build_transfer (PGB-TRANSFER, PGB-NOSWIZZLE, PGB-UNSWIZZLE) */
static NTSTATUS RefBuildTransfer(DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer,
                                 const DXGK_BUILDPAGINGBUFFER_TRANSFER *Transfer)
{
    BOOLEAN Swizzle =
        Transfer->hAllocation != NULL && (Transfer->Flags & DXGK_TRANSFERFLAGS_SWIZZLE) != 0;
    BOOLEAN Unswizzle =
        Transfer->hAllocation != NULL && (Transfer->Flags & DXGK_TRANSFERFLAGS_UNSWIZZLE) != 0;
    UCHAR Opcode = Swizzle ? GPU_SWZCOPY : Unswizzle ? GPU_UNSWZCOPY : GPU_COPY;
    BOOLEAN First = pBuildPagingBuffer->MultipassOffset == 0;
    BOOLEAN Starts = First && (Transfer->Flags & DXGK_TRANSFERFLAGS_TRANSFERSTART) != 0;
    BOOLEAN Ends = (Transfer->Flags & DXGK_TRANSFERFLAGS_TRANSFEREND) != 0;
    UCHAR *Out = pBuildPagingBuffer->pDmaBuffer;
    SIZE_T Length = 0;
    LONGLONG Room = (LONGLONG)pBuildPagingBuffer->DmaSize - (Ends ? GPU_REG_SIZE : 0);
    if (Starts) {
        if (Room < GPU_REG_SIZE + GPU_COPY_SIZE) {
            return STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER;
        }
        Length += RefEncodeReg(Out + Length, REG_TRANSFER_IN_PROGRESS,
                               (UINT)RefHandleValue(Transfer->hAllocation));
        Room -= GPU_REG_SIZE;
    }
    ULONGLONG Done = pBuildPagingBuffer->MultipassOffset;
    while (Done < Transfer->TransferSize && Room >= GPU_COPY_SIZE) {
        ULONGLONG Position = Transfer->TransferOffset + Done;
        ULONGLONG Count = Transfer->TransferSize - Done;
        if (Count > PAGING_CHUNK) {
            Count = PAGING_CHUNK;
        }
        /* an MDL side is contiguous only within one page */
        ULONGLONG PageRest = PAGE_SIZE - Position % PAGE_SIZE;
        if ((Transfer->Source.SegmentId == 0 || Transfer->Destination.SegmentId == 0) &&
            Count > PageRest) {
            Count = PageRest;
        }
        Length += RefEncodeCopy(Out + Length, Opcode, RefLocation(&Transfer->Destination, Position),
                                RefLocation(&Transfer->Source, Position), (UINT)Count);
        Room -= GPU_COPY_SIZE;
        Done += Count;
    }
    if (Done >= Transfer->TransferSize && Ends) {
        Length += RefEncodeReg(Out + Length, REG_TRANSFER_IN_PROGRESS, 0);
    }
    if (Length != 0) {
        pBuildPagingBuffer->pDmaBuffer = Out + Length;
    }
    pBuildPagingBuffer->MultipassOffset = (UINT)Done;
    return Done >= Transfer->TransferSize ? STATUS_SUCCESS : STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER;
}

/* _location: GPU physical address of allocation byte AllocationOffset at a transfer
 * location (MDL.physical_address for system memory). */
static ULONGLONG RefLocation(const DXGK_TRANSFER_LOCATION *Location, ULONGLONG AllocationOffset)
{
    if (Location->SegmentId == 0) {
        if (Location->pMdl == NULL) {
            return 0;
        }
        const PFN_NUMBER *Pfns = MmGetMdlPfnArray(Location->pMdl);
        return Pfns[AllocationOffset / PAGE_SIZE] * PAGE_SIZE + AllocationOffset % PAGE_SIZE;
    }
    return (ULONGLONG)Location->SegmentAddress.QuadPart + AllocationOffset;
}
