/*
 * wddm_native.h -- the C ABI between wddm-conformance and a native display miniport.
 *
 * A native driver is a shared library (Linux .so) that implements the DxgkDdi*
 * entry points below with the WDK signatures. wddm-conformance loads it with
 * --driver=native:path/to/libdriver.so and runs every conformance check and
 * fuzz target on it through the same simulated dxgkrnl as a Python driver.
 *
 * These are our own definitions, not the WDK's: each structure keeps the WDK
 * name, field names and field order, and has the x64 layout (HANDLE and
 * pointers 8 bytes, UINT/ULONG 4, SIZE_T 8, PHYSICAL_ADDRESS 8). The DDI argument
 * blocks have the WDK's layout: every field at the WDK's offset and the WDK's size,
 * so a driver compiled against the WDK compatibility headers (wdk/, docs/native.md)
 * sees the same bytes (tests/test_wdk_native.py compares them with the compiler).
 * Flag words are plain UINTs here; fields the harness adds are marked "harness:"
 * and sit where the WDK has padding or after its last field.
 * See docs/native.md for the contract, and INTERPRETING.md for what each DDI is
 * judged on.
 *
 * Between the WDDM_NATIVE_CDEF markers the header is plain C declarations (no
 * macros, no preprocessor conditionals): the harness reads that part with cffi,
 * so the layouts the driver is compiled against and the ones the harness
 * marshals are the same text.
 */
#ifndef WDDM_NATIVE_H
#define WDDM_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ABI version: major << 16 | minor. The harness refuses a library whose major differs. */
#define WDDM_NATIVE_ABI_VERSION 0x00020000u

/* ------------------------------------------------------------------ NTSTATUS (DDI_FACTS.md) */
#define STATUS_SUCCESS                           ((NTSTATUS)0x00000000L)
#define STATUS_INVALID_HANDLE                    ((NTSTATUS)0xC0000008L)
#define STATUS_INVALID_PARAMETER                 ((NTSTATUS)0xC000000DL)
#define STATUS_NO_MEMORY                         ((NTSTATUS)0xC0000017L)
#define STATUS_ILLEGAL_INSTRUCTION               ((NTSTATUS)0xC000001DL)
#define STATUS_PRIVILEGED_INSTRUCTION            ((NTSTATUS)0xC0000096L)
#define STATUS_NOT_SUPPORTED                     ((NTSTATUS)0xC00000BBL)
#define STATUS_INVALID_USER_BUFFER               ((NTSTATUS)0xC00000E8L)
#define STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER  ((NTSTATUS)0xC01E0001L)
#define STATUS_GRAPHICS_ALLOCATION_BUSY          ((NTSTATUS)0xC01E0102L)
#define STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE  ((NTSTATUS)0xC01E0200L)
/* Informational severity: NT_SUCCESS() is TRUE for it. Never judge a DDI with NT_SUCCESS. */
#define STATUS_GRAPHICS_DRIVER_MISMATCH          ((NTSTATUS)0x401E0117L)
#define NT_SUCCESS(Status)                       (((NTSTATUS)(Status)) >= 0)

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#define PAGE_SIZE 4096u

/* ------------------------------------------------------------------ flag bits (DDI_FACTS.md) */
/* DXGK_ALLOCATIONLIST: WriteOperation is bit 0, SegmentId bits 1-5 (mask 0x3E). */
/* DXGK_PATCHFLAGS */
#define DXGK_PATCHFLAGS_PAGING                0x1u
#define DXGK_PATCHFLAGS_PRESENT               0x2u
#define DXGK_PATCHFLAGS_REDIRECTEDPRESENT     0x4u
#define DXGK_PATCHFLAGS_NULLRENDERING         0x8u
/* DXGK_TRANSFERFLAGS */
#define DXGK_TRANSFERFLAGS_SWIZZLE            0x1u
#define DXGK_TRANSFERFLAGS_UNSWIZZLE          0x2u
#define DXGK_TRANSFERFLAGS_ALLOCATIONISIDLE   0x4u
#define DXGK_TRANSFERFLAGS_TRANSFERSTART      0x8u
#define DXGK_TRANSFERFLAGS_TRANSFEREND        0x10u
/* DXGK_DISCARDCONTENTFLAGS, DXGK_MAPAPERTUREFLAGS */
#define DXGK_DISCARDCONTENTFLAGS_ALLOCATIONISIDLE 0x1u
#define DXGK_MAPAPERTUREFLAGS_CACHECOHERENT   0x1u
/* DXGK_CREATEALLOCATIONFLAGS, DXGK_DESTROYALLOCATIONFLAGS */
#define DXGK_CREATEALLOCATIONFLAGS_RESOURCE   0x1u
#define DXGK_DESTROYALLOCATIONFLAGS_DESTROYRESOURCE 0x1u
/* DXGK_ALLOCATIONINFOFLAGS */
#define DXGK_ALLOCATIONINFOFLAGS_CPUVISIBLE           0x1u
#define DXGK_ALLOCATIONINFOFLAGS_PERMANENTSYSMEM      0x2u
#define DXGK_ALLOCATIONINFOFLAGS_CACHED               0x4u
#define DXGK_ALLOCATIONINFOFLAGS_PROTECTED            0x8u
#define DXGK_ALLOCATIONINFOFLAGS_EXISTINGSYSMEM       0x10u
#define DXGK_ALLOCATIONINFOFLAGS_EXISTINGKERNELSYSMEM 0x20u
#define DXGK_ALLOCATIONINFOFLAGS_FROMENDOFSEGMENT     0x40u
#define DXGK_ALLOCATIONINFOFLAGS_SWIZZLED             0x80u
#define DXGK_ALLOCATIONINFOFLAGS_OVERLAY              0x100u
#define DXGK_ALLOCATIONINFOFLAGS_CAPTURE              0x200u
#define DXGK_ALLOCATIONINFOFLAGS_USEALTERNATEVA       0x400u
#define DXGK_ALLOCATIONINFOFLAGS_SYNCHRONOUSPAGING    0x800u
#define DXGK_ALLOCATIONINFOFLAGS_LINKMIRRORED         0x1000u
#define DXGK_ALLOCATIONINFOFLAGS_LINKINSTANCED        0x2000u
#define DXGK_ALLOCATIONINFOFLAGS_HISTORYBUFFER        0x4000u
/* DXGK_SEGMENTFLAGS */
#define DXGK_SEGMENTFLAGS_APERTURE            0x1u
#define DXGK_SEGMENTFLAGS_AGP                 0x2u
#define DXGK_SEGMENTFLAGS_CPUVISIBLE          0x4u
#define DXGK_SEGMENTFLAGS_USEBANKING          0x8u
#define DXGK_SEGMENTFLAGS_CACHECOHERENT       0x10u
/* DXGK_DRIVERCAPS.HarnessCaps (harness) */
#define WDDM_HARNESSCAPS_SUPPORTSCONTEXTS        0x1u
#define WDDM_HARNESSCAPS_SUPPORTSALTERNATEVA     0x2u
#define WDDM_HARNESSCAPS_MAYREPORTALLOCATIONBUSY 0x4u
#define WDDM_HARNESSCAPS_GUARANTEEDCONTRACTDMA   0x8u

/* WDDM_NATIVE_CDEF_BEGIN */

typedef int32_t NTSTATUS;
typedef uint8_t BOOLEAN;
typedef uint32_t UINT;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef int64_t LONGLONG;
typedef uint64_t ULONGLONG;
typedef int16_t CSHORT;
typedef size_t SIZE_T;
typedef uint64_t ULONG_PTR;
typedef ULONG_PTR PFN_NUMBER;
typedef void *PVOID;
typedef void *HANDLE;

typedef union _LARGE_INTEGER {
    struct {
        ULONG LowPart;
        LONG HighPart;
    };
    LONGLONG QuadPart;
} LARGE_INTEGER, PHYSICAL_ADDRESS;

/* A memory descriptor list: the page frames of the pages follow the header
 * (MmGetMdlPfnArray). ByteCount is the number of bytes described. */
typedef struct _MDL {
    struct _MDL *Next;
    CSHORT Size;
    CSHORT MdlFlags;
    PVOID Process;
    PVOID MappedSystemVa;
    PVOID StartVa;
    ULONG ByteCount;
    ULONG ByteOffset;
} MDL;

/* ------------------------------------------------------------------ arrays */

/* One element of the allocation list given to Render and Patch (24 bytes). */
typedef struct _DXGK_ALLOCATIONLIST {
    HANDLE hDeviceSpecificAllocation;
    union {
        struct {
            UINT WriteOperation : 1;
            UINT SegmentId : 5;
            UINT Reserved : 26;
        };
        UINT Value;
    };
    PHYSICAL_ADDRESS PhysicalAddress;
} DXGK_ALLOCATIONLIST;

/* One patch location (24 bytes). */
typedef struct _D3DDDI_PATCHLOCATIONLIST {
    UINT AllocationIndex;
    union {
        struct {
            UINT SlotId : 24;
            UINT Reserved : 8;
        };
        UINT Value;
    };
    UINT DriverId;
    UINT AllocationOffset;
    UINT PatchOffset;
    UINT SplitOffset;
} D3DDDI_PATCHLOCATIONLIST;

/* ------------------------------------------------------------------ kernel callbacks */

/* harness: the __try/__except of a Windows driver. Copies Length bytes of user-mode
 * memory at UserAddress (pCommand, pPatchLocationListIn) into Destination and returns
 * TRUE; returns FALSE, having copied nothing, where the access faults (the
 * __except branch). The harness injects faults, logs every read (double fetch) and
 * races user bytes (TOCTOU) here, so read user memory only through this callback. */
typedef BOOLEAN (*PWDDMCB_COPYFROMUSER)(HANDLE DeviceHandle, PVOID Destination,
                                        const void *UserAddress, SIZE_T Length);

/* The kernel's interface, given to DxgkDdiStartDevice; valid until DxgkDdiRemoveDevice. */
typedef struct _DXGKRNL_INTERFACE {
    ULONG Size;
    ULONG Version;
    HANDLE DeviceHandle;
    PWDDMCB_COPYFROMUSER WddmCbCopyFromUser; /* harness */
} DXGKRNL_INTERFACE;

/* harness: the resources of the emulated adapter. */
typedef struct _DXGK_START_INFO {
    SIZE_T MemorySegmentSize;
    SIZE_T ApertureSegmentSize;
} DXGK_START_INFO;

/* ------------------------------------------------------------------ adapter queries */

typedef enum _DXGK_QUERYADAPTERINFOTYPE {
    DXGKQAITYPE_UMDRIVERPRIVATE = 0,
    DXGKQAITYPE_DRIVERCAPS = 1,
    DXGKQAITYPE_QUERYSEGMENT = 2
} DXGK_QUERYADAPTERINFOTYPE;

typedef struct _DXGKARG_QUERYADAPTERINFO {
    DXGK_QUERYADAPTERINFOTYPE Type;
    PVOID pInputData;
    UINT InputDataSize;
    PVOID pOutputData;
    UINT OutputDataSize;
    UINT Flags;
    HANDLE hKmdProcessHandle;
} DXGKARG_QUERYADAPTERINFO;

typedef struct _DXGK_SEGMENTFLAGS {
    union {
        struct {
            UINT Aperture : 1;
            UINT Agp : 1;
            UINT CpuVisible : 1;
            UINT UseBanking : 1;
            UINT CacheCoherent : 1;
            UINT Reserved : 27;
        };
        UINT Value;
    };
} DXGK_SEGMENTFLAGS;

typedef struct _DXGK_SEGMENTDESCRIPTOR {
    PHYSICAL_ADDRESS BaseAddress;
    PHYSICAL_ADDRESS CpuTranslatedAddress;
    SIZE_T Size;
    UINT NbOfBanks;
    SIZE_T *pBankRangeTable;
    SIZE_T CommitLimit;
    DXGK_SEGMENTFLAGS Flags;
} DXGK_SEGMENTDESCRIPTOR;

/* DXGKQAITYPE_QUERYSEGMENT output: the kernel asks twice, first with
 * pSegmentDescriptor NULL for NbSegment, then with room for NbSegment descriptors. */
typedef struct _DXGK_QUERYSEGMENTOUT {
    UINT NbSegment;
    DXGK_SEGMENTDESCRIPTOR *pSegmentDescriptor;
    UINT PagingBufferSegmentId;
    UINT PagingBufferSize;
    UINT PagingBufferPrivateDataSize;
} DXGK_QUERYSEGMENTOUT;

/* DXGKQAITYPE_DRIVERCAPS output: the fields the harness uses. */
typedef struct _DXGK_DRIVERCAPS {
    UINT DmaBufferPrivateDataSize;
    UINT HarnessCaps; /* harness: WDDM_HARNESSCAPS_* bits */
} DXGK_DRIVERCAPS;

/* ------------------------------------------------------------------ devices and contexts */

/* What the driver tells the kernel about a device's or context's DMA buffers. */
typedef struct _DXGK_DEVICEINFO {
    UINT DmaBufferSize;
    UINT DmaBufferSegmentSet;
    UINT DmaBufferPrivateDataSize;
    UINT AllocationListSize;
    UINT PatchLocationListSize;
    UINT Flags; /* DXGK_DEVICEINFOFLAGS */
} DXGK_DEVICEINFO;

typedef struct _DXGK_CONTEXTINFO {
    UINT DmaBufferSize;
    UINT DmaBufferSegmentSet;
    UINT DmaBufferPrivateDataSize;
    UINT AllocationListSize;
    UINT PatchLocationListSize;
    UINT Reserved;
} DXGK_CONTEXTINFO;

typedef struct _DXGKARG_CREATEDEVICE {
    HANDLE hDevice; /* [out] */
    UINT Flags;
    DXGK_DEVICEINFO *pInfo; /* [out] the harness gives zeroed room; it does not read it */
} DXGKARG_CREATEDEVICE;

typedef struct _DXGKARG_CREATECONTEXT {
    HANDLE hContext; /* [out] */
    UINT NodeOrdinal;
    UINT EngineAffinity;
    UINT Flags;
    PVOID pPrivateDriverData;
    UINT PrivateDriverDataSize;
    DXGK_CONTEXTINFO ContextInfo; /* [out] not read by the harness */
} DXGKARG_CREATECONTEXT;

/* ------------------------------------------------------------------ allocations */

typedef struct _DXGK_SEGMENTPREFERENCE {
    union {
        struct {
            UINT SegmentId0 : 5;
            UINT Direction0 : 1;
            UINT SegmentId1 : 5;
            UINT Direction1 : 1;
            UINT SegmentId2 : 5;
            UINT Direction2 : 1;
            UINT SegmentId3 : 5;
            UINT Direction3 : 1;
            UINT SegmentId4 : 5;
            UINT Direction4 : 1;
            UINT Reserved : 2;
        };
        UINT Value;
    };
} DXGK_SEGMENTPREFERENCE;

typedef struct _DXGK_SEGMENTBANKPREFERENCE {
    UINT Value;
} DXGK_SEGMENTBANKPREFERENCE;

typedef struct _DXGK_ALLOCATIONINFOFLAGS {
    UINT Value; /* DXGK_ALLOCATIONINFOFLAGS_* bits */
} DXGK_ALLOCATIONINFOFLAGS;

typedef struct _DXGK_ALLOCATIONINFO {
    const void *pPrivateDriverData;
    UINT PrivateDriverDataSize;
    UINT Alignment;
    SIZE_T Size;
    SIZE_T PitchAlignedSize;
    DXGK_SEGMENTBANKPREFERENCE HintedBank;
    DXGK_SEGMENTPREFERENCE PreferredSegment;
    UINT SupportedReadSegmentSet;
    UINT SupportedWriteSegmentSet;
    UINT EvictionSegmentSet;
    UINT MaximumRenamingListLength;
    HANDLE hAllocation; /* [out] */
    DXGK_ALLOCATIONINFOFLAGS Flags;
    PVOID pAllocationUsageHint;
    UINT AllocationPriority;
    UINT Flags2;
} DXGK_ALLOCATIONINFO;

typedef struct _DXGKARG_CREATEALLOCATION {
    const void *pPrivateDriverData;
    UINT PrivateDriverDataSize;
    UINT NumAllocations;
    DXGK_ALLOCATIONINFO *pAllocationInfo;
    HANDLE hResource; /* [in/out] */
    UINT Flags;       /* DXGK_CREATEALLOCATIONFLAGS_* */
} DXGKARG_CREATEALLOCATION;

typedef struct _DXGKARG_DESTROYALLOCATION {
    UINT NumAllocations;
    const HANDLE *pAllocationList;
    HANDLE hResource;
    UINT Flags; /* DXGK_DESTROYALLOCATIONFLAGS_* */
} DXGKARG_DESTROYALLOCATION;

typedef struct _DXGK_OPENALLOCATIONINFO {
    HANDLE hAllocation;
    PVOID pPrivateDriverData;
    UINT PrivateDriverDataSize;
    HANDLE hDeviceSpecificAllocation; /* [out] */
} DXGK_OPENALLOCATIONINFO;

typedef struct _DXGKARG_OPENALLOCATION {
    UINT NumAllocations;
    DXGK_OPENALLOCATIONINFO *pOpenAllocation;
    PVOID pPrivateDriverData;
    UINT PrivateDriverDataSize;
    UINT Flags;
} DXGKARG_OPENALLOCATION;

typedef struct _DXGKARG_CLOSEALLOCATION {
    UINT NumAllocations;
    const HANDLE *pOpenHandleList;
} DXGKARG_CLOSEALLOCATION;

/* ------------------------------------------------------------------ render, patch, submit */

typedef struct _DXGKARG_RENDER {
    const void *pCommand; /* [in/out] a user-mode address: read it with WddmCbCopyFromUser */
    UINT CommandLength;
    PVOID pDmaBuffer; /* [in/out] */
    UINT DmaSize;
    PVOID pDmaBufferPrivateData;
    UINT DmaBufferPrivateDataSize;
    DXGK_ALLOCATIONLIST *pAllocationList;
    UINT AllocationListSize;
    D3DDDI_PATCHLOCATIONLIST *pPatchLocationListIn; /* user-mode, like pCommand */
    UINT PatchLocationListInSize;
    D3DDDI_PATCHLOCATIONLIST *pPatchLocationListOut; /* [in/out] */
    UINT PatchLocationListOutSize;
    UINT MultipassOffset; /* [in/out] */
    UINT DmaBufferSegmentId;
    PHYSICAL_ADDRESS DmaBufferPhysicalAddress;
} DXGKARG_RENDER;

typedef struct _DXGK_PATCHFLAGS {
    union {
        struct {
            UINT Paging : 1;
            UINT Present : 1;
            UINT RedirectedPresent : 1;
            UINT NullRendering : 1;
            UINT Reserved : 28;
        };
        UINT Value;
    };
} DXGK_PATCHFLAGS;

typedef struct _DXGKARG_PATCH {
    union {
        HANDLE hDevice;
        HANDLE hContext;
    };
    UINT DmaBufferSegmentId;
    PHYSICAL_ADDRESS DmaBufferPhysicalAddress;
    PVOID pDmaBuffer;
    UINT DmaBufferSize;
    UINT DmaBufferSubmissionStartOffset;
    UINT DmaBufferSubmissionEndOffset;
    PVOID pDmaBufferPrivateData;
    UINT DmaBufferPrivateDataSize;
    UINT DmaBufferPrivateDataSubmissionStartOffset;
    UINT DmaBufferPrivateDataSubmissionEndOffset;
    const DXGK_ALLOCATIONLIST *pAllocationList;
    UINT AllocationListSize;
    const D3DDDI_PATCHLOCATIONLIST *pPatchLocationList;
    UINT PatchLocationListSize;
    UINT PatchLocationListSubmissionStart;
    UINT PatchLocationListSubmissionLength;
    UINT SubmissionFenceId;
    DXGK_PATCHFLAGS Flags;
    UINT EngineOrdinal;
} DXGKARG_PATCH;

typedef struct _DXGKARG_SUBMITCOMMAND {
    union {
        HANDLE hDevice;
        HANDLE hContext;
    };
    UINT DmaBufferSegmentId;
    PHYSICAL_ADDRESS DmaBufferPhysicalAddress;
    UINT DmaBufferSize;
    UINT DmaBufferSubmissionStartOffset;
    UINT DmaBufferSubmissionEndOffset;
    PVOID pDmaBufferPrivateData;
    UINT DmaBufferPrivateDataSize;
    UINT DmaBufferPrivateDataSubmissionStartOffset;
    UINT DmaBufferPrivateDataSubmissionEndOffset;
    UINT SubmissionFenceId;
    UINT VidPnSourceId;
    UINT FlipInterval;
    DXGK_PATCHFLAGS Flags; /* DXGK_SUBMITCOMMANDFLAGS: its first four bits are these */
    UINT EngineOrdinal;
    ULONGLONG DmaBufferVirtualAddress;
    UINT NodeOrdinal;
} DXGKARG_SUBMITCOMMAND;

/* ------------------------------------------------------------------ paging */

typedef enum _DXGK_BUILDPAGINGBUFFER_OPERATION {
    DXGK_OPERATION_TRANSFER = 0,
    DXGK_OPERATION_FILL = 1,
    DXGK_OPERATION_DISCARD_CONTENT = 2,
    DXGK_OPERATION_READ_PHYSICAL = 3,
    DXGK_OPERATION_WRITE_PHYSICAL = 4,
    DXGK_OPERATION_MAP_APERTURE_SEGMENT = 5,
    DXGK_OPERATION_UNMAP_APERTURE_SEGMENT = 6,
    DXGK_OPERATION_SPECIAL_LOCK_TRANSFER = 7
} DXGK_BUILDPAGINGBUFFER_OPERATION;

/* Source or Destination of a transfer: a segment address, or an MDL when SegmentId is 0. */
typedef struct _DXGK_TRANSFER_LOCATION {
    UINT SegmentId;
    union {
        PHYSICAL_ADDRESS SegmentAddress;
        MDL *pMdl;
    };
} DXGK_TRANSFER_LOCATION;

typedef struct _DXGK_BUILDPAGINGBUFFER_TRANSFER {
    HANDLE hAllocation;
    UINT TransferOffset;
    SIZE_T TransferSize;
    DXGK_TRANSFER_LOCATION Source;
    DXGK_TRANSFER_LOCATION Destination;
    UINT Flags; /* DXGK_TRANSFERFLAGS_* */
    UINT MdlOffset; /* in pages */
} DXGK_BUILDPAGINGBUFFER_TRANSFER;

typedef struct _DXGK_BUILDPAGINGBUFFER_SPECIALLOCKTRANSFER {
    HANDLE hAllocation;
    UINT TransferOffset;
    SIZE_T TransferSize;
    DXGK_TRANSFER_LOCATION Source;
    DXGK_TRANSFER_LOCATION Destination;
    UINT Flags;
    UINT SwizzlingRangeId;
    UINT SwizzlingRangeData;
    UINT MdlOffset; /* harness: after the WDK's fields (the WDK has none) */
} DXGK_BUILDPAGINGBUFFER_SPECIALLOCKTRANSFER;

typedef struct _DXGK_BUILDPAGINGBUFFER_FILL {
    HANDLE hAllocation;
    SIZE_T FillSize;
    UINT FillPattern;
    struct {
        UINT SegmentId;
        PHYSICAL_ADDRESS SegmentAddress;
    } Destination;
} DXGK_BUILDPAGINGBUFFER_FILL;

typedef struct _DXGK_BUILDPAGINGBUFFER_DISCARDCONTENT {
    HANDLE hAllocation;
    UINT Flags; /* DXGK_DISCARDCONTENTFLAGS_* */
    UINT SegmentId;
    PHYSICAL_ADDRESS SegmentAddress;
} DXGK_BUILDPAGINGBUFFER_DISCARDCONTENT;

typedef struct _DXGK_BUILDPAGINGBUFFER_PHYSICAL {
    UINT SegmentId;
    PHYSICAL_ADDRESS PhysicalAddress;
    UINT Size; /* harness: the access width, 1 to 8 bytes (after the WDK's fields) */
} DXGK_BUILDPAGINGBUFFER_PHYSICAL;

typedef struct _DXGK_BUILDPAGINGBUFFER_MAPAPERTURESEGMENT {
    HANDLE hDevice;
    HANDLE hAllocation;
    UINT SegmentId;
    SIZE_T OffsetInPages;
    SIZE_T NumberOfPages;
    MDL *pMdl;
    UINT Flags; /* DXGK_MAPAPERTUREFLAGS_* */
    ULONG MdlOffset;
} DXGK_BUILDPAGINGBUFFER_MAPAPERTURESEGMENT;

typedef struct _DXGK_BUILDPAGINGBUFFER_UNMAPAPERTURESEGMENT {
    HANDLE hDevice;
    HANDLE hAllocation;
    UINT SegmentId;
    SIZE_T OffsetInPages;
    SIZE_T NumberOfPages;
    PHYSICAL_ADDRESS DummyPage;
} DXGK_BUILDPAGINGBUFFER_UNMAPAPERTURESEGMENT;

typedef struct _DXGKARG_BUILDPAGINGBUFFER {
    PVOID pDmaBuffer; /* [in/out] */
    UINT DmaSize;
    PVOID pDmaBufferPrivateData;
    UINT DmaBufferPrivateDataSize;
    DXGK_BUILDPAGINGBUFFER_OPERATION Operation;
    UINT MultipassOffset; /* [in/out] */
    union {
        DXGK_BUILDPAGINGBUFFER_TRANSFER Transfer;
        DXGK_BUILDPAGINGBUFFER_FILL Fill;
        DXGK_BUILDPAGINGBUFFER_DISCARDCONTENT DiscardContent;
        DXGK_BUILDPAGINGBUFFER_PHYSICAL ReadPhysical;
        DXGK_BUILDPAGINGBUFFER_PHYSICAL WritePhysical;
        DXGK_BUILDPAGINGBUFFER_MAPAPERTURESEGMENT MapApertureSegment;
        DXGK_BUILDPAGINGBUFFER_UNMAPAPERTURESEGMENT UnmapApertureSegment;
        DXGK_BUILDPAGINGBUFFER_SPECIALLOCKTRANSFER SpecialLockTransfer;
        struct {
            UINT Reserved[64];
        } Reserved; /* the WDK's size of the union (its later operations live here) */
    };
    HANDLE hSystemContext;
    ULONGLONG DmaBufferGpuVirtualAddress;
    UINT DmaBufferWriteOffset;
} DXGKARG_BUILDPAGINGBUFFER;

/* ------------------------------------------------------------------ identity */

/* Every native driver exports WddmNativeQueryDriverInfo, which returns its identity
 * (define both with WDDM_NATIVE_DRIVER_INFO_DEFINE below). */
typedef struct _WDDM_NATIVE_DRIVER_INFO {
    UINT AbiVersion;        /* WDDM_NATIVE_ABI_VERSION the driver was built against */
    UINT Size;              /* sizeof(WDDM_NATIVE_DRIVER_INFO) */
    const char *Name;       /* shown in the report header */
    const char *CommandEncoder; /* "module:Class" of the user-mode side, or NULL for the reference's */
    const char *GpuModel;       /* "module:Class" of the hardware model, or NULL for the reference's */
} WDDM_NATIVE_DRIVER_INFO;

const WDDM_NATIVE_DRIVER_INFO *WddmNativeQueryDriverInfo(void);

/* ------------------------------------------------------------------ entry points */

/* One adapter: the driver allocates its per-adapter context (every adapter DDI gets it
 * back as hAdapter / MiniportDeviceContext). The harness creates one adapter per
 * simulated kernel and removes it when the kernel is discarded. */
NTSTATUS DxgkDdiAddDevice(PVOID PhysicalDeviceObject, PVOID *MiniportDeviceContext);
NTSTATUS DxgkDdiRemoveDevice(PVOID MiniportDeviceContext);
NTSTATUS DxgkDdiStartDevice(PVOID MiniportDeviceContext, DXGK_START_INFO *DxgkStartInfo,
                            DXGKRNL_INTERFACE *DxgkInterface, ULONG *NumberOfVideoPresentSources,
                            ULONG *NumberOfChildren);
NTSTATUS DxgkDdiQueryAdapterInfo(HANDLE hAdapter, const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo);
NTSTATUS DxgkDdiCreateDevice(HANDLE hAdapter, DXGKARG_CREATEDEVICE *pCreateDevice);
NTSTATUS DxgkDdiDestroyDevice(HANDLE hDevice);
NTSTATUS DxgkDdiCreateContext(HANDLE hDevice, DXGKARG_CREATECONTEXT *pCreateContext);
NTSTATUS DxgkDdiDestroyContext(HANDLE hContext);
NTSTATUS DxgkDdiCreateAllocation(HANDLE hAdapter, DXGKARG_CREATEALLOCATION *pCreateAllocation);
NTSTATUS DxgkDdiDestroyAllocation(HANDLE hAdapter, const DXGKARG_DESTROYALLOCATION *pDestroyAllocation);
NTSTATUS DxgkDdiOpenAllocation(HANDLE hDevice, const DXGKARG_OPENALLOCATION *pOpenAllocation);
NTSTATUS DxgkDdiCloseAllocation(HANDLE hDevice, const DXGKARG_CLOSEALLOCATION *pCloseAllocation);
NTSTATUS DxgkDdiRender(HANDLE hContext, DXGKARG_RENDER *pRender);
NTSTATUS DxgkDdiPatch(HANDLE hAdapter, const DXGKARG_PATCH *pPatch);
NTSTATUS DxgkDdiSubmitCommand(HANDLE hAdapter, const DXGKARG_SUBMITCOMMAND *pSubmitCommand);
NTSTATUS DxgkDdiBuildPagingBuffer(HANDLE hAdapter, DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer);

/* WDDM_NATIVE_CDEF_END */

/* The page frames of an MDL follow its header, as in the WDK. */
static inline PFN_NUMBER *MmGetMdlPfnArray(MDL *Mdl) { return (PFN_NUMBER *)(Mdl + 1); }

/* Define the driver's identity once, in one source file of the driver. */
#define WDDM_NATIVE_DRIVER_INFO_DEFINE(name, encoder, gpu)                                      \
    static const WDDM_NATIVE_DRIVER_INFO WddmNativeDriverInfo = {                               \
        WDDM_NATIVE_ABI_VERSION, (UINT)sizeof(WDDM_NATIVE_DRIVER_INFO), (name), (encoder), (gpu)}; \
    const WDDM_NATIVE_DRIVER_INFO *WddmNativeQueryDriverInfo(void) { return &WddmNativeDriverInfo; }

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* WDDM_NATIVE_H */
