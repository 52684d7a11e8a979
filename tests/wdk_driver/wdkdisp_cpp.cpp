/*
 * wdkdisp_cpp.cpp -- a display miniport in the C++ WDK idiom for the reference GPU
 * (docs/isa.md) and the reference user-mode format, written for issue 15 from the WDK
 * documentation (DxgkDdi* reference pages, "Using C++ in drivers", "Allocating
 * system-space memory"), docs/isa.md and docs/INTERPRETING.md.
 *
 * The kernel has no C++ runtime: the driver brings its own operator new and delete on
 * ExAllocatePool2/ExFreePoolWithTag (a placement form taking pool flags and a tag, and
 * per-class forms that tag each class's objects), uses no exceptions and no RTTI
 * (/kernel), and exports DriverEntry with C linkage. Objects are the adapter, its
 * devices, allocations and resources; a handle is the object's address, checked
 * against the adapter's lists under its spin lock (an RAII guard). The command buffer
 * is read inside __try/__except, each user byte once, into a pool staging buffer.
 *
 * Build: wddm-conformance native build --wdk tests/wdk_driver/wdkdisp_cpp.cpp --name wdkdispcpp
 * Each WDKDISP_BUG_* macro builds a broken variant (tests/mutants.py, WdkCppSample*).
 */
#include <ntddk.h>
#include <dispmprt.h>
#include <string.h>

extern "C" DRIVER_INITIALIZE DriverEntry;

WDDM_WDK_DRIVER_INFO("wdkdisp_cpp (WDK-style C++ sample)", NULL, NULL)

/* ------------------------------------------------------------------ operator new on pool */

/* new (POOL_FLAG_NON_PAGED, 'gaT1') T(...): NULL when the pool is exhausted (noexcept,
 * so the constructor is not run on NULL). */
void *__cdecl operator new(size_t Size, POOL_FLAGS Flags, ULONG Tag) noexcept {
    return ExAllocatePool2(Flags, Size, Tag);
}
void *__cdecl operator new[](size_t Size, POOL_FLAGS Flags, ULONG Tag) noexcept {
    return ExAllocatePool2(Flags, Size, Tag);
}
/* The tag is not known at delete: the untagged free. */
void __cdecl operator delete(void *P) noexcept {
    if (P != nullptr)
        ExFreePool(P);
}
void __cdecl operator delete(void *P, size_t) noexcept {
    if (P != nullptr)
        ExFreePool(P);
}
void __cdecl operator delete[](void *P) noexcept {
    if (P != nullptr)
        ExFreePool(P);
}
void __cdecl operator delete[](void *P, size_t) noexcept {
    if (P != nullptr)
        ExFreePool(P);
}
void __cdecl operator delete(void *P, POOL_FLAGS, ULONG) noexcept {
    if (P != nullptr)
        ExFreePool(P);
}

namespace {

/* ------------------------------------------------------------------ hardware (docs/isa.md) */
constexpr UINT MemorySegmentId = 1;
constexpr UINT ApertureSegmentId = 2;
constexpr ULONGLONG MemorySegmentBase = 0x100000000ULL;
constexpr ULONGLONG ApertureSegmentBase = 0x200000000ULL;

enum GpuOpcode : UCHAR {
    GpuCopy = 0x01,
    GpuFill = 0x02,
    GpuWrite = 0x03,
    GpuRead = 0x04,
    GpuXor = 0x05,
    GpuBind = 0x06,
    GpuFence = 0x07,
    GpuSwizzleCopy = 0x08,
    GpuUnswizzleCopy = 0x09,
    GpuPte = 0x80,
};
constexpr ULONG PteValid = 0x1, PteCacheCoherent = 0x2;
constexpr UINT CopySize = 24, FillSize = 20, WriteSize = 20, ReadSize = 12, BindSize = 16, FenceSize = 12,
               PteSize = 20;

/* ------------------------------------------------------------------ user-mode format */
enum Command : UCHAR {
    CmdNop = 0x00,
    CmdCopy = 0x01,
    CmdFill = 0x02,
    CmdWrite = 0x03,
    CmdXor = 0x05,
    CmdBind = 0x06,
    CmdSetReg = 0x40,
    CmdSetPte = 0x41,
    CmdVersion = 0x7F,
};
constexpr UINT CommandHeader = 4;
constexpr UINT FormatVersion = 1;

constexpr UINT AllocationDataSize = 24;
constexpr ULONG AllocationMagic = 0x434C4152; /* 'RALC' */
enum AllocationFlag : USHORT {
    CpuVisible = 0x01,
    Swizzled = 0x02,
    ApertureToo = 0x04,
    ApertureOnly = 0x08,
    HistoryBuffer = 0x10,
    AlternateVa = 0x20,
    Gdi = 0x40,
    KnownFlags = 0x7F,
};
constexpr ULONGLONG GdiPitchAlignment = 256;

constexpr ULONG DmaPrivateMagic = 0x414D4452; /* 'RDMA' */
constexpr UINT DmaPrivateSize = 8;
constexpr ULONGLONG PagingChunk = 1u << 20;
constexpr UINT StageSize = 4096;

/* ------------------------------------------------------------------ pool tags */
constexpr ULONG TagAdapter = 'AcdW';
constexpr ULONG TagDevice = 'DcdW';
constexpr ULONG TagAllocation = 'LcdW';
constexpr ULONG TagResource = 'RcdW';
constexpr ULONG TagStage = 'ScdW';

#define LOG(level, ...) DbgPrintEx(DPFLTR_IHVVIDEO_ID, (level), "wdkdisp_cpp: " __VA_ARGS__)

ULONG ReadU32(const UCHAR *P) {
    ULONG v;
    RtlCopyMemory(&v, P, sizeof v);
    return v;
}
USHORT ReadU16(const UCHAR *P) {
    USHORT v;
    RtlCopyMemory(&v, P, sizeof v);
    return v;
}
void Put32(UCHAR *P, ULONG V) { RtlCopyMemory(P, &V, sizeof V); }
void Put64(UCHAR *P, ULONGLONG V) { RtlCopyMemory(P, &V, sizeof V); }
void Header(UCHAR *P, UCHAR Opcode) {
    P[0] = Opcode;
    P[1] = P[2] = P[3] = 0;
}

/* ------------------------------------------------------------------ building blocks */

/* Objects of a class live in non-paged pool under the class's tag. */
template <ULONG Tag> class PoolObject {
  public:
    static void *operator new(size_t Size) noexcept { return ExAllocatePool2(POOL_FLAG_NON_PAGED, Size, Tag); }
    static void operator delete(void *P) noexcept {
        if (P != nullptr)
            ExFreePoolWithTag(P, Tag);
    }
};

/* Holds a spin lock for its scope. */
class SpinLockGuard {
  public:
    explicit SpinLockGuard(KSPIN_LOCK &Lock) : m_Lock(Lock) { KeAcquireSpinLock(&m_Lock, &m_OldIrql); }
    ~SpinLockGuard() { KeReleaseSpinLock(&m_Lock, m_OldIrql); }
    SpinLockGuard(const SpinLockGuard &) = delete;
    SpinLockGuard &operator=(const SpinLockGuard &) = delete;

  private:
    KSPIN_LOCK &m_Lock;
    KIRQL m_OldIrql;
};

/* An intrusive doubly linked list of T (T has a LIST_ENTRY member named Link). */
template <class T> class List {
  public:
    void Init() { m_Head.Flink = m_Head.Blink = &m_Head; }
    bool Empty() const { return m_Head.Flink == &m_Head; }
    void PushBack(T *Item) {
        LIST_ENTRY *e = &Item->Link;
        e->Flink = &m_Head;
        e->Blink = m_Head.Blink;
        m_Head.Blink->Flink = e;
        m_Head.Blink = e;
    }
    static void Remove(T *Item) {
        LIST_ENTRY *e = &Item->Link;
        e->Blink->Flink = e->Flink;
        e->Flink->Blink = e->Blink;
        e->Flink = e->Blink = e;
    }
    T *Front() { return Empty() ? nullptr : CONTAINING_RECORD(m_Head.Flink, T, Link); }
    /* The item whose address is Handle, or nullptr: a handle is only trusted once found. */
    T *Find(HANDLE Handle) {
        for (LIST_ENTRY *e = m_Head.Flink; e != &m_Head; e = e->Flink) {
            T *item = CONTAINING_RECORD(e, T, Link);
            if (static_cast<HANDLE>(item) == Handle)
                return item;
        }
        return nullptr;
    }

  private:
    LIST_ENTRY m_Head;
};

/* ------------------------------------------------------------------ objects */

class Resource : public PoolObject<TagResource> {
  public:
    LIST_ENTRY Link;
};

/* Standard layout (every member public) so that CONTAINING_RECORD may find it from Link. */
class Allocation : public PoolObject<TagAllocation> {
  public:
    explicit Allocation(ULONGLONG AllocationSize) : Size(AllocationSize) { Link.Flink = Link.Blink = &Link; }
    LIST_ENTRY Link;
    ULONGLONG Size; /* what DXGK_ALLOCATIONINFO.Size reported */
};

class Adapter : public PoolObject<TagAdapter> {
  public:
    Adapter() {
        KeInitializeSpinLock(&m_Lock);
        m_Allocations.Init();
        m_Resources.Init();
    }
    ~Adapter() {
        while (Allocation *a = m_Allocations.Front()) {
            List<Allocation>::Remove(a);
            delete a;
        }
        while (Resource *r = m_Resources.Front()) {
            List<Resource>::Remove(r);
            delete r;
        }
    }

    void Start(const DXGK_START_INFO &Info, const DXGKRNL_INTERFACE &Dxgk) {
        m_MemorySize = Info.MemorySegmentSize;
        m_ApertureSize = Info.ApertureSegmentSize;
        m_Dxgk = Dxgk;
    }
    NTSTATUS QueryAdapterInfo(const DXGKARG_QUERYADAPTERINFO &Query) const;
    NTSTATUS CreateAllocation(DXGKARG_CREATEALLOCATION &Args);
    NTSTATUS DestroyAllocation(const DXGKARG_DESTROYALLOCATION &Args);

    /* The size of the allocation behind hAllocation; false if it is not one of ours. */
    bool AllocationSize(HANDLE hAllocation, ULONGLONG &Size) {
        SpinLockGuard hold(m_Lock);
        Allocation *a = hAllocation ? m_Allocations.Find(hAllocation) : nullptr;
        Size = a ? a->Size : 0;
        return a != nullptr;
    }
    KSPIN_LOCK &Lock() { return m_Lock; }

    /* Our allocation behind a kernel handle (DxgkCbGetHandleData gives back the
     * hAllocation CreateAllocation returned); nullptr for a handle the kernel cannot
     * resolve. */
    HANDLE OfKernelHandle(D3DKMT_HANDLE hAllocation) {
        DXGKARGCB_GETHANDLEDATA get = {};
        get.hObject = hAllocation;
        get.Type = DXGK_HANDLE_ALLOCATION;
        HANDLE mine = m_Dxgk.DxgkCbGetHandleData(&get);
        ULONGLONG size;
        return mine != nullptr && AllocationSize(mine, size) ? mine : nullptr;
    }

  private:
    NTSTATUS Describe(DXGK_ALLOCATIONINFO &Info, ULONGLONG &Size) const;

    KSPIN_LOCK m_Lock; /* guards m_Allocations and m_Resources */
    List<Allocation> m_Allocations;
    List<Resource> m_Resources;
    ULONGLONG m_MemorySize = 0;
    ULONGLONG m_ApertureSize = 0;
    DXGKRNL_INTERFACE m_Dxgk = {}; /* the kernel's callbacks, from StartDevice */
};

class Device : public PoolObject<TagDevice> {
  public:
    explicit Device(Adapter *Owner) : m_Adapter(Owner) {}
    Adapter *Owner() const { return m_Adapter; }
    LIST_ENTRY Link;
    Adapter *m_Adapter; /* public: a standard-layout class (CONTAINING_RECORD) */

    /* Devices of every adapter: a DDI that gets only hDevice finds its adapter here. */
    static void Register(Device *D) {
        SpinLockGuard hold(s_Lock);
        s_Devices.PushBack(D);
    }
    static void Unregister(Device *D) {
        SpinLockGuard hold(s_Lock);
        List<Device>::Remove(D);
    }
    static Device *FromHandle(HANDLE hDevice) {
        SpinLockGuard hold(s_Lock);
        return s_Devices.Find(hDevice);
    }
    static void InitializeRegistry() {
        KeInitializeSpinLock(&s_Lock);
        s_Devices.Init();
    }

  private:
    static KSPIN_LOCK s_Lock;
    static List<Device> s_Devices;
};

KSPIN_LOCK Device::s_Lock;
List<Device> Device::s_Devices;

/* ------------------------------------------------------------------ adapter */

NTSTATUS Adapter::QueryAdapterInfo(const DXGKARG_QUERYADAPTERINFO &Query) const {
    switch (Query.Type) {
    case DXGKQAITYPE_QUERYSEGMENT: {
        auto *out = static_cast<DXGK_QUERYSEGMENTOUT *>(Query.pOutputData);
        if (Query.OutputDataSize < sizeof *out)
            return STATUS_INVALID_PARAMETER;
        if (out->pSegmentDescriptor != nullptr) {
            if (out->NbSegment < 2)
                return STATUS_INVALID_PARAMETER;
            DXGK_SEGMENTDESCRIPTOR &memory = out->pSegmentDescriptor[0];
            DXGK_SEGMENTDESCRIPTOR &aperture = out->pSegmentDescriptor[1];
            RtlZeroMemory(&memory, 2 * sizeof memory);
            memory.BaseAddress.QuadPart = static_cast<LONGLONG>(MemorySegmentBase);
            memory.Size = m_MemorySize;
            memory.CommitLimit = m_MemorySize;
            memory.Flags.CpuVisible = 1;
            aperture.BaseAddress.QuadPart = static_cast<LONGLONG>(ApertureSegmentBase);
            aperture.Size = m_ApertureSize;
            aperture.CommitLimit = m_ApertureSize;
            aperture.Flags.Aperture = 1;
            aperture.Flags.CacheCoherent = 1;
        }
        out->NbSegment = 2;
        out->PagingBufferSegmentId = 0;
        out->PagingBufferSize = 64 * 1024;
        out->PagingBufferPrivateDataSize = 0;
        return STATUS_SUCCESS;
    }
    case DXGKQAITYPE_DRIVERCAPS: {
        auto *caps = static_cast<DXGK_DRIVERCAPS *>(Query.pOutputData);
        if (Query.OutputDataSize < sizeof *caps)
            return STATUS_INVALID_PARAMETER;
        caps->DmaBufferPrivateDataSize = DmaPrivateSize;
        caps->HarnessCaps = 0; /* no contexts, no alternate VA, never busy */
        return STATUS_SUCCESS;
    }
    default:
        return STATUS_NOT_SUPPORTED;
    }
}

/* ------------------------------------------------------------------ allocations */

/* Validates one allocation's private data (docs/isa.md) and fills its DXGK_ALLOCATIONINFO. */
NTSTATUS Adapter::Describe(DXGK_ALLOCATIONINFO &Info, ULONGLONG &Size) const {
    UCHAR data[AllocationDataSize];
    if (Info.pPrivateDriverData == nullptr || Info.PrivateDriverDataSize != AllocationDataSize)
        return STATUS_INVALID_PARAMETER;
    RtlCopyMemory(data, Info.pPrivateDriverData, sizeof data);
    const ULONG magic = ReadU32(data);
    const USHORT version = ReadU16(data + 4), flags = ReadU16(data + 6);
    ULONGLONG size;
    RtlCopyMemory(&size, data + 8, sizeof size);
    const ULONG rows = ReadU32(data + 16), reserved = ReadU32(data + 20);
    if (magic != AllocationMagic)
        return STATUS_INVALID_PARAMETER;
    if (version != FormatVersion)
        return STATUS_GRAPHICS_DRIVER_MISMATCH;
    const bool gdi = (flags & Gdi) != 0;
    if ((flags & ~KnownFlags) || reserved || size == 0 || gdi != (rows != 0))
        return STATUS_INVALID_PARAMETER;
    if ((flags & Swizzled) && (flags & ApertureOnly))
        return STATUS_INVALID_PARAMETER; /* swizzled surfaces live in video memory only */
    const bool apertureToo = (flags & ApertureToo) && !(flags & Swizzled);
    ULONGLONG limit = m_MemorySize;
    if (flags & ApertureOnly)
        limit = m_ApertureSize;
    else if (apertureToo && m_ApertureSize > m_MemorySize)
        limit = m_ApertureSize;
    ULONGLONG pitched = 0;
    if (gdi) { /* Size is one row; the pitch of a CPU-visible surface is aligned */
        const ULONGLONG pitch = (flags & CpuVisible) ? ALIGN_UP_BY(size, GdiPitchAlignment) : size;
        if (pitch < size || pitch > limit / rows)
            return STATUS_INVALID_PARAMETER;
        size = pitch * rows;
        pitched = (flags & CpuVisible) ? size : 0;
    }
    if (size > limit)
        return STATUS_INVALID_PARAMETER;
    const ULONGLONG rounded = ALIGN_UP_BY(size, PAGE_SIZE);
    ULONG segments;
    RtlZeroMemory(&Info.PreferredSegment, sizeof Info.PreferredSegment);
    if (flags & ApertureOnly) {
        segments = 1u << ApertureSegmentId;
        Info.PreferredSegment.SegmentId0 = ApertureSegmentId;
    } else if (apertureToo) {
        segments = (1u << MemorySegmentId) | (1u << ApertureSegmentId);
        Info.PreferredSegment.SegmentId0 = MemorySegmentId;
        Info.PreferredSegment.SegmentId1 = ApertureSegmentId;
    } else {
        segments = 1u << MemorySegmentId;
        Info.PreferredSegment.SegmentId0 = MemorySegmentId;
    }
    Info.Size = rounded;
    Info.PitchAlignedSize = (flags & CpuVisible) ? (pitched ? pitched : rounded) : 0;
    Info.Alignment = PAGE_SIZE;
    Info.SupportedReadSegmentSet = segments;
    Info.SupportedWriteSegmentSet = segments;
    Info.EvictionSegmentSet = 0;
    Info.Flags.Value = 0;
    Info.Flags.CpuVisible = (flags & CpuVisible) != 0;
    Info.Flags.Swizzled = (flags & Swizzled) != 0;
    Info.Flags.HistoryBuffer = (flags & HistoryBuffer) != 0;
    Info.Flags.UseAlternateVA = (flags & AlternateVa) != 0;
    Size = rounded;
    return STATUS_SUCCESS;
}

NTSTATUS Adapter::CreateAllocation(DXGKARG_CREATEALLOCATION &Args) {
    const UINT count = Args.NumAllocations;
    Resource *resource = nullptr, *created = nullptr;
    NTSTATUS status = STATUS_SUCCESS;
    UINT made = 0;
    if (count == 0 || Args.pAllocationInfo == nullptr)
        return STATUS_INVALID_PARAMETER;
    if (Args.Flags.Resource) {
        {
            SpinLockGuard hold(m_Lock);
            resource = m_Resources.Find(Args.hResource);
        }
        if (resource == nullptr) {
            created = resource = new Resource;
            if (resource == nullptr)
                return STATUS_NO_MEMORY;
        }
    }
    for (; made < count; made++) {
        DXGK_ALLOCATIONINFO &info = Args.pAllocationInfo[made];
        ULONGLONG size;
        status = Describe(info, size);
        if (status != STATUS_SUCCESS)
            break;
        Allocation *allocation = new Allocation(size);
        if (allocation == nullptr) {
            status = STATUS_NO_MEMORY;
            break;
        }
        info.hAllocation = allocation;
    }
    if (status != STATUS_SUCCESS) { /* ALC-ATOMIC: nothing of the batch survives */
#ifndef WDKDISP_BUG_LEAK_FAILED_BATCH
        for (UINT i = 0; i < made; i++)
            delete static_cast<Allocation *>(Args.pAllocationInfo[i].hAllocation);
        delete created;
#endif
        for (UINT i = 0; i < count; i++)
            Args.pAllocationInfo[i].hAllocation = nullptr;
        LOG(DPFLTR_TRACE_LEVEL, "allocation %u of %u refused (0x%08X)\n", made, count, (unsigned)status);
        return status;
    }
    {
        SpinLockGuard hold(m_Lock);
        for (UINT i = 0; i < count; i++)
            m_Allocations.PushBack(static_cast<Allocation *>(Args.pAllocationInfo[i].hAllocation));
        if (created != nullptr)
            m_Resources.PushBack(created);
    }
    if (resource != nullptr)
        Args.hResource = resource;
    return STATUS_SUCCESS;
}

NTSTATUS Adapter::DestroyAllocation(const DXGKARG_DESTROYALLOCATION &Args) {
    for (UINT i = 0; i < Args.NumAllocations; i++) {
        Allocation *allocation;
        {
            SpinLockGuard hold(m_Lock);
            allocation = m_Allocations.Find(Args.pAllocationList[i]);
            if (allocation != nullptr)
                List<Allocation>::Remove(allocation);
        }
        delete allocation;
#ifdef WDKDISP_BUG_USE_AFTER_FREE
        if (allocation != nullptr) /* wrong: reads the object it has just deleted */
            LOG(DPFLTR_TRACE_LEVEL, "destroyed %llu bytes\n", static_cast<unsigned long long>(allocation->Size));
#endif
    }
    if (Args.Flags.DestroyResource && Args.hResource != nullptr) {
        Resource *resource;
        {
            SpinLockGuard hold(m_Lock);
            resource = m_Resources.Find(Args.hResource);
            if (resource != nullptr)
                List<Resource>::Remove(resource);
        }
        delete resource;
    }
    return STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ render */

/* One user command translated into one GPU instruction, with the references to patch. */
class Translation {
  public:
    Translation(Adapter &Owner, DXGKARG_RENDER &Args) : m_Adapter(Owner), m_Args(Args) {}
    NTSTATUS Translate(const UCHAR *Command);
    UCHAR Code[CopySize];
    UINT CodeSize = 0;
    UINT PatchCount = 0;
    UINT PatchIndex[2] = {};
    UINT PatchAt[2] = {}; /* offset of the address inside Code */
    ULONG PatchOffset[2] = {};

  private:
    NTSTATUS Reference(ULONG Index, ULONG Offset, ULONGLONG Length, bool Write, UINT At, ULONGLONG &Address);
    Adapter &m_Adapter;
    DXGKARG_RENDER &m_Args;
};

/* Validates a reference to [Offset, Offset + Length) of list entry Index and gives the
 * address to pre-patch (0 while the allocation is paged out). */
NTSTATUS Translation::Reference(ULONG Index, ULONG Offset, ULONGLONG Length, bool Write, UINT At,
                                ULONGLONG &Address) {
    if (Index >= m_Args.AllocationListSize)
        return STATUS_INVALID_HANDLE;
    const DXGK_ALLOCATIONLIST &entry = m_Args.pAllocationList[Index];
    ULONGLONG size;
    if (!m_Adapter.AllocationSize(entry.hDeviceSpecificAllocation, size))
        return STATUS_INVALID_HANDLE;
    if (static_cast<ULONGLONG>(Offset) + Length > size)
        return STATUS_INVALID_PARAMETER;
    if (Write && !entry.WriteOperation)
        return STATUS_INVALID_PARAMETER;
    Address = entry.SegmentId != 0 ? static_cast<ULONGLONG>(entry.PhysicalAddress.QuadPart) + Offset : 0;
    PatchIndex[PatchCount] = Index;
    PatchAt[PatchCount] = At;
    PatchOffset[PatchCount] = Offset;
    PatchCount++;
    return STATUS_SUCCESS;
}

NTSTATUS Translation::Translate(const UCHAR *Command) {
    ULONGLONG dst = 0, src = 0;
    NTSTATUS status;
    CodeSize = 0;
    PatchCount = 0;
    switch (Command[0]) {
    case CmdNop:
        return STATUS_SUCCESS;
    case CmdVersion:
        return ReadU32(Command + 4) == FormatVersion ? STATUS_SUCCESS : STATUS_GRAPHICS_DRIVER_MISMATCH;
    case CmdCopy:
    case CmdXor: {
        const ULONG size = ReadU32(Command + 20);
        status = Reference(ReadU32(Command + 4), ReadU32(Command + 8), size, true, 4, dst);
        if (status == STATUS_SUCCESS)
            status = Reference(ReadU32(Command + 12), ReadU32(Command + 16), size, false, 12, src);
        if (status != STATUS_SUCCESS)
            return status;
        Header(Code, Command[0] == CmdCopy ? GpuCopy : GpuXor);
        Put64(Code + 4, dst);
        Put64(Code + 12, src);
        Put32(Code + 20, size);
        CodeSize = CopySize;
        return STATUS_SUCCESS;
    }
    case CmdFill: {
        const ULONG size = ReadU32(Command + 12);
        status = Reference(ReadU32(Command + 4), ReadU32(Command + 8), size, true, 4, dst);
        if (status != STATUS_SUCCESS)
            return status;
        Header(Code, GpuFill);
        Put64(Code + 4, dst);
        Put32(Code + 12, size);
        Put32(Code + 16, ReadU32(Command + 16));
        CodeSize = FillSize;
        return STATUS_SUCCESS;
    }
    case CmdWrite: {
        status = Reference(ReadU32(Command + 4), ReadU32(Command + 8), 4, true, 4, dst);
        if (status != STATUS_SUCCESS)
            return status;
        Header(Code, GpuWrite);
        Code[1] = 4; /* width */
        Put64(Code + 4, dst);
        Put64(Code + 12, ReadU32(Command + 12));
        CodeSize = WriteSize;
        return STATUS_SUCCESS;
    }
    case CmdBind: {
        const ULONG slot = ReadU32(Command + 4), index = ReadU32(Command + 8);
        if (index >= m_Args.AllocationListSize)
            return STATUS_INVALID_HANDLE;
        if (m_Args.pAllocationList[index].hDeviceSpecificAllocation != nullptr) {
            status = Reference(index, ReadU32(Command + 12), 0, false, 8, dst);
            if (status != STATUS_SUCCESS)
                return status;
        } /* the NULL element unbinds: address 0, nothing to patch (REN-NULLALLOC) */
        Header(Code, GpuBind);
        Put32(Code + 4, slot);
        Put64(Code + 8, dst);
        CodeSize = BindSize;
        return STATUS_SUCCESS;
    }
    default:
        return STATUS_ILLEGAL_INSTRUCTION;
    }
}

UINT CommandSize(UCHAR Opcode) {
    switch (Opcode) {
    case CmdNop: return 4;
    case CmdCopy: return 24;
    case CmdFill: return 20;
    case CmdWrite: return 16;
    case CmdXor: return 24;
    case CmdBind: return 16;
    case CmdSetReg: return 12;
    case CmdSetPte: return 20;
    case CmdVersion: return 8;
    default: return 0;
    }
}

/* The command buffer, read from user memory once, a window at a time, into pool. */
class CommandStage {
  public:
    CommandStage() : m_Buffer(new (POOL_FLAG_PAGED, TagStage) UCHAR[StageSize]) {}
    ~CommandStage() { delete[] m_Buffer; }
    CommandStage(const CommandStage &) = delete;
    CommandStage &operator=(const CommandStage &) = delete;
    bool Valid() const { return m_Buffer != nullptr; }
    UCHAR *Data() { return m_Buffer; }

    /* Moves the Keep unread bytes at Offset to the front and appends Want user bytes from
     * User; false if the user memory faulted (the WDK's __try/__except). */
    bool Refill(UINT Offset, UINT Keep, const UCHAR *User, UINT Want) {
        RtlMoveMemory(m_Buffer, m_Buffer + Offset, Keep);
#ifdef WDKDISP_BUG_NO_TRY
        memcpy(m_Buffer + Keep, User, Want); /* wrong: a fault on user memory is not caught */
        return true;
#else
        __try {
            ProbeForRead(User, Want, 1);
            RtlCopyMemory(m_Buffer + Keep, User, Want);
        } __except (EXCEPTION_EXECUTE_HANDLER) {
            LOG(DPFLTR_WARNING_LEVEL, "command buffer faulted (0x%08X)\n", (unsigned)GetExceptionCode());
            return false;
        }
#ifdef WDKDISP_BUG_POOL_OVERRUN
        m_Buffer[StageSize] = 0; /* wrong: one past the staging buffer (special pool's catch) */
#endif
        return true;
#endif
    }

  private:
    UCHAR *m_Buffer;
};

NTSTATUS Render(Device &Dev, DXGKARG_RENDER &Args) {
    if (Args.DmaSize < FenceSize)
        return STATUS_INVALID_PARAMETER;
    CommandStage stage;
    if (!stage.Valid())
        return STATUS_NO_MEMORY;
    Translation t(*Dev.Owner(), Args);
    const UINT total = Args.CommandLength, room = Args.DmaSize - FenceSize;
    const UCHAR *user = static_cast<const UCHAR *>(Args.pCommand);
    UCHAR *dma = static_cast<UCHAR *>(Args.pDmaBuffer);
    UCHAR *s = stage.Data();
    NTSTATUS status = STATUS_SUCCESS;
    UINT consumed = 0, staged = 0, at = 0, used = 0, patches = 0;
    while (consumed < total) {
        if (staged - at < CommandHeader || staged - at < CommandSize(s[at])) {
            const UINT keep = staged - at;
            UINT want = total - consumed - keep;
            if (want > StageSize - keep)
                want = StageSize - keep;
            if (!stage.Refill(at, keep, user + consumed + keep, want))
                return STATUS_INVALID_PARAMETER;
            staged = keep + want;
            at = 0;
            if (staged < CommandHeader)
                return STATUS_INVALID_USER_BUFFER;
        }
        const UCHAR opcode = s[at];
        const UINT size = CommandSize(opcode);
        if (size == 0)
            return STATUS_ILLEGAL_INSTRUCTION;
        if (opcode == CmdSetReg || opcode == CmdSetPte)
            return STATUS_PRIVILEGED_INSTRUCTION;
        if (ReadU16(s + at + 2) != size || staged - at < size)
            return STATUS_INVALID_USER_BUFFER;
        status = t.Translate(s + at);
        if (status != STATUS_SUCCESS)
            return status;
        if (used + t.CodeSize > room || patches + t.PatchCount > Args.PatchLocationListOutSize) {
            if (used == 0 && patches == 0)
                return STATUS_INVALID_PARAMETER; /* larger than an empty DMA buffer */
            status = STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER;
            break;
        }
        for (UINT i = 0; i < t.PatchCount; i++) {
            D3DDDI_PATCHLOCATIONLIST &out = Args.pPatchLocationListOut[patches++];
            RtlZeroMemory(&out, sizeof out);
            out.AllocationIndex = t.PatchIndex[i];
            out.AllocationOffset = t.PatchOffset[i];
            out.PatchOffset = used + t.PatchAt[i];
            out.SplitOffset = out.PatchOffset;
        }
        RtlCopyMemory(dma + used, t.Code, t.CodeSize);
        used += t.CodeSize;
        at += size;
        consumed += size;
    }
    /* Every DMA buffer ends with FENCE 0; Patch writes the submission's fence ID there. */
    Header(dma + used, GpuFence);
    Put64(dma + used + 4, 0);
    if (Args.pDmaBufferPrivateData != nullptr && Args.DmaBufferPrivateDataSize >= DmaPrivateSize) {
        auto *data = static_cast<UCHAR *>(Args.pDmaBufferPrivateData);
        Put32(data, DmaPrivateMagic);
        Put32(data + 4, used);
    }
    used += FenceSize;
    NT_ASSERT(used <= Args.DmaSize);
    Args.pDmaBuffer = dma + used;
    Args.pPatchLocationListOut += patches;
    if (status == STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER)
        Args.pCommand = const_cast<UCHAR *>(user + consumed);
    return status;
}

/* ------------------------------------------------------------------ paging */

class PagingBuffer {
  public:
    explicit PagingBuffer(DXGKARG_BUILDPAGINGBUFFER &Args)
        : m_Args(Args), m_Next(static_cast<UCHAR *>(Args.pDmaBuffer)), m_Room(Args.DmaSize),
          m_Done(Args.MultipassOffset) {}
    NTSTATUS Build();

  private:
    bool Fits(UINT Size) const { return m_Room >= Size; }
    UCHAR *Emit(UINT Size) {
        UCHAR *at = m_Next;
        NT_ASSERT(m_Room >= Size);
        m_Next += Size;
        m_Room -= Size;
        return at;
    }
    NTSTATUS Finish(ULONGLONG Total) {
        m_Args.pDmaBuffer = m_Next;
        m_Args.MultipassOffset = static_cast<UINT>(m_Done);
        return m_Done >= Total ? STATUS_SUCCESS : STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER;
    }
    static ULONGLONG Location(UINT SegmentId, LARGE_INTEGER SegmentAddress, const MDL *Mdl, ULONGLONG Offset) {
        if (SegmentId != 0)
            return static_cast<ULONGLONG>(SegmentAddress.QuadPart) + Offset;
        if (Mdl == nullptr)
            return 0;
        return static_cast<ULONGLONG>(MmGetMdlPfnArray(Mdl)[Offset / PAGE_SIZE]) * PAGE_SIZE + Offset % PAGE_SIZE;
    }
    NTSTATUS Transfer();
    NTSTATUS Fill();
    NTSTATUS Physical(bool Read);
    NTSTATUS Pte(ULONGLONG Total, ULONGLONG FirstPage, ULONG Flags, const MDL *Mdl, ULONGLONG MdlOffset,
                 ULONGLONG Frame);

    DXGKARG_BUILDPAGINGBUFFER &m_Args;
    UCHAR *m_Next;
    UINT m_Room;
    ULONGLONG m_Done;
};

NTSTATUS PagingBuffer::Transfer() {
    const auto &op = m_Args.Transfer;
    UCHAR opcode = GpuCopy;
    if (op.hAllocation != nullptr && op.Flags.Swizzle)
        opcode = GpuSwizzleCopy;
    else if (op.hAllocation != nullptr && op.Flags.Unswizzle)
        opcode = GpuUnswizzleCopy;
    const bool byPage = op.Source.SegmentId == 0 || op.Destination.SegmentId == 0;
    const ULONGLONG total = op.TransferSize;
    while (m_Done < total && Fits(CopySize)) {
        const ULONGLONG at = op.TransferOffset + m_Done;
        ULONGLONG n = total - m_Done < PagingChunk ? total - m_Done : PagingChunk;
        if (byPage && n > PAGE_SIZE - at % PAGE_SIZE)
            n = PAGE_SIZE - at % PAGE_SIZE;
        UCHAR *code = Emit(CopySize);
        Header(code, opcode);
        Put64(code + 4, Location(op.Destination.SegmentId, op.Destination.SegmentAddress, op.Destination.pMdl, at));
        Put64(code + 12, Location(op.Source.SegmentId, op.Source.SegmentAddress, op.Source.pMdl, at));
        Put32(code + 20, static_cast<ULONG>(n));
        m_Done += n;
    }
    return Finish(total);
}

NTSTATUS PagingBuffer::Fill() {
    const auto &op = m_Args.Fill;
    const ULONGLONG total = op.FillSize;
    while (m_Done < total && Fits(FillSize)) {
        const ULONGLONG n = total - m_Done < PagingChunk ? total - m_Done : PagingChunk;
        UCHAR *code = Emit(FillSize);
        Header(code, GpuFill);
        Put64(code + 4, static_cast<ULONGLONG>(op.Destination.SegmentAddress.QuadPart) + m_Done);
        Put32(code + 12, static_cast<ULONG>(n));
        Put32(code + 16, op.FillPattern);
        m_Done += n;
    }
    return Finish(total);
}

NTSTATUS PagingBuffer::Physical(bool Read) {
    UINT width = Read ? m_Args.ReadPhysical.Size : m_Args.WritePhysical.Size;
    const ULONGLONG address = static_cast<ULONGLONG>(Read ? m_Args.ReadPhysical.PhysicalAddress.QuadPart
                                                          : m_Args.WritePhysical.PhysicalAddress.QuadPart);
    width = width < 1 ? 1 : width > 8 ? 8 : width;
    if (m_Done < 1 && Fits(Read ? ReadSize : WriteSize)) {
        UCHAR *code = Emit(Read ? ReadSize : WriteSize);
        Header(code, Read ? GpuRead : GpuWrite);
        code[1] = static_cast<UCHAR>(width);
        Put64(code + 4, address);
        if (!Read)
            Put64(code + 12, 0);
        m_Done = 1;
    }
    return Finish(1);
}

/* PTE writes for Total pages from FirstPage: the MDL's frames, or Frame for every page. */
NTSTATUS PagingBuffer::Pte(ULONGLONG Total, ULONGLONG FirstPage, ULONG Flags, const MDL *Mdl, ULONGLONG MdlOffset,
                           ULONGLONG Frame) {
    while (m_Done < Total && Fits(PteSize)) {
        UCHAR *code = Emit(PteSize);
        Header(code, GpuPte);
        Put32(code + 4, static_cast<ULONG>(FirstPage + m_Done));
        Put32(code + 8, Flags);
        Put64(code + 12, Mdl != nullptr ? MmGetMdlPfnArray(Mdl)[MdlOffset + m_Done] : Frame);
        m_Done++;
    }
    return Finish(Total);
}

NTSTATUS PagingBuffer::Build() {
    switch (m_Args.Operation) {
    case DXGK_OPERATION_TRANSFER:
        return Transfer();
    case DXGK_OPERATION_FILL:
        return Fill();
    case DXGK_OPERATION_DISCARD_CONTENT:
        return STATUS_SUCCESS; /* nothing to do: the content is not needed */
    case DXGK_OPERATION_READ_PHYSICAL:
        return Physical(true);
    case DXGK_OPERATION_WRITE_PHYSICAL:
        return Physical(false);
    case DXGK_OPERATION_MAP_APERTURE_SEGMENT: {
        const auto &op = m_Args.MapApertureSegment;
        if (op.pMdl == nullptr)
            return STATUS_SUCCESS;
        return Pte(op.NumberOfPages, op.OffsetInPages, PteValid | (op.Flags.CacheCoherent ? PteCacheCoherent : 0),
                   op.pMdl, op.MdlOffset, 0);
    }
    case DXGK_OPERATION_UNMAP_APERTURE_SEGMENT: {
        const auto &op = m_Args.UnmapApertureSegment;
        return Pte(op.NumberOfPages, op.OffsetInPages, PteValid, nullptr, 0,
                   static_cast<ULONGLONG>(op.DummyPage.QuadPart) / PAGE_SIZE);
    }
    default:
        return STATUS_SUCCESS; /* special-lock transfers are never asked (no alternate VA) */
    }
}

/* ------------------------------------------------------------------ the DDIs */

NTSTATUS APIENTRY DdiAddDevice(const PDEVICE_OBJECT PhysicalDeviceObject, PVOID *MiniportDeviceContext) {
    PAGED_CODE();
    UNREFERENCED_PARAMETER(PhysicalDeviceObject);
    Adapter *adapter = new Adapter;
    if (adapter == nullptr)
        return STATUS_NO_MEMORY;
    *MiniportDeviceContext = adapter;
    return STATUS_SUCCESS;
}

NTSTATUS APIENTRY DdiRemoveDevice(const PVOID MiniportDeviceContext) {
    PAGED_CODE();
    delete static_cast<Adapter *>(MiniportDeviceContext);
    return STATUS_SUCCESS;
}

NTSTATUS APIENTRY DdiStartDevice(const PVOID MiniportDeviceContext, PDXGK_START_INFO DxgkStartInfo,
                                 PDXGKRNL_INTERFACE DxgkInterface, PULONG NumberOfVideoPresentSources,
                                 PULONG NumberOfChildren) {
    PAGED_CODE();
    NT_ASSERT(DxgkInterface != nullptr && DxgkInterface->Size >= sizeof(DXGKRNL_INTERFACE));
    static_cast<Adapter *>(MiniportDeviceContext)->Start(*DxgkStartInfo, *DxgkInterface);
    *NumberOfVideoPresentSources = 0;
    *NumberOfChildren = 0;
    LOG(DPFLTR_INFO_LEVEL, "started: %llu bytes of video memory, %llu of aperture\n",
        static_cast<unsigned long long>(DxgkStartInfo->MemorySegmentSize),
        static_cast<unsigned long long>(DxgkStartInfo->ApertureSegmentSize));
    return STATUS_SUCCESS;
}

NTSTATUS APIENTRY DdiQueryAdapterInfo(const HANDLE hAdapter, const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo) {
    PAGED_CODE();
    return static_cast<const Adapter *>(hAdapter)->QueryAdapterInfo(*pQueryAdapterInfo);
}

NTSTATUS APIENTRY DdiCreateDevice(const HANDLE hAdapter, DXGKARG_CREATEDEVICE *pCreateDevice) {
    PAGED_CODE();
    Device *device = new Device(static_cast<Adapter *>(hAdapter));
    if (device == nullptr)
        return STATUS_NO_MEMORY;
    Device::Register(device);
    pCreateDevice->hDevice = device;
    return STATUS_SUCCESS;
}

NTSTATUS APIENTRY DdiDestroyDevice(const HANDLE hDevice) {
    PAGED_CODE();
    Device *device = Device::FromHandle(hDevice);
    if (device == nullptr)
        return STATUS_INVALID_HANDLE;
    Device::Unregister(device);
    delete device;
    return STATUS_SUCCESS;
}

NTSTATUS APIENTRY DdiCreateContext(const HANDLE hDevice, DXGKARG_CREATECONTEXT *pCreateContext) {
    UNREFERENCED_PARAMETER(hDevice);
    UNREFERENCED_PARAMETER(pCreateContext);
    return STATUS_NOT_SUPPORTED; /* HarnessCaps has no SUPPORTSCONTEXTS: never called */
}

NTSTATUS APIENTRY DdiDestroyContext(const HANDLE hContext) {
    UNREFERENCED_PARAMETER(hContext);
    return STATUS_NOT_SUPPORTED;
}

NTSTATUS APIENTRY DdiCreateAllocation(const HANDLE hAdapter, DXGKARG_CREATEALLOCATION *pCreateAllocation) {
    PAGED_CODE();
    return static_cast<Adapter *>(hAdapter)->CreateAllocation(*pCreateAllocation);
}

NTSTATUS APIENTRY DdiDestroyAllocation(const HANDLE hAdapter, const DXGKARG_DESTROYALLOCATION *pDestroyAllocation) {
    PAGED_CODE();
    return static_cast<Adapter *>(hAdapter)->DestroyAllocation(*pDestroyAllocation);
}

NTSTATUS APIENTRY DdiOpenAllocation(const HANDLE hDevice, const DXGKARG_OPENALLOCATION *pOpenAllocation) {
    Device *device = Device::FromHandle(hDevice);
    if (device == nullptr)
        return STATUS_INVALID_HANDLE;
    for (UINT i = 0; i < pOpenAllocation->NumAllocations; i++) {
        DXGK_OPENALLOCATIONINFO &open = pOpenAllocation->pOpenAllocation[i];
        HANDLE mine = device->Owner()->OfKernelHandle(open.hAllocation);
        if (mine == nullptr)
            return STATUS_INVALID_HANDLE; /* as DxgkCbGetHandleData's documentation asks */
        open.hDeviceSpecificAllocation = mine;
    }
    return STATUS_SUCCESS;
}

NTSTATUS APIENTRY DdiCloseAllocation(const HANDLE hDevice, const DXGKARG_CLOSEALLOCATION *pCloseAllocation) {
    UNREFERENCED_PARAMETER(pCloseAllocation);
    return Device::FromHandle(hDevice) != nullptr ? STATUS_SUCCESS : STATUS_INVALID_HANDLE;
}

NTSTATUS APIENTRY DdiRender(const HANDLE hContext, DXGKARG_RENDER *pRender) {
    PAGED_CODE();
    Device *device = Device::FromHandle(hContext); /* no contexts: the device handle stands in */
    if (device == nullptr)
        return STATUS_INVALID_HANDLE;
    return Render(*device, *pRender);
}

NTSTATUS APIENTRY DdiPatch(const HANDLE hAdapter, const DXGKARG_PATCH *pPatch) {
    auto *dma = static_cast<UCHAR *>(pPatch->pDmaBuffer);
    const UINT start = pPatch->DmaBufferSubmissionStartOffset, end = pPatch->DmaBufferSubmissionEndOffset;
    UNREFERENCED_PARAMETER(hAdapter);
    if (!pPatch->Flags.Paging && pPatch->pPatchLocationList != nullptr && pPatch->pAllocationList != nullptr) {
        for (UINT i = 0; i < pPatch->PatchLocationListSubmissionLength; i++) {
            const D3DDDI_PATCHLOCATIONLIST &location =
                pPatch->pPatchLocationList[pPatch->PatchLocationListSubmissionStart + i];
            if (location.AllocationIndex >= pPatch->AllocationListSize || location.PatchOffset < start ||
                static_cast<ULONGLONG>(location.PatchOffset) + 8 > end)
                continue;
            const DXGK_ALLOCATIONLIST &entry = pPatch->pAllocationList[location.AllocationIndex];
            const ULONGLONG address =
                entry.hDeviceSpecificAllocation != nullptr
                    ? static_cast<ULONGLONG>(entry.PhysicalAddress.QuadPart) + location.AllocationOffset
                    : 0;
            Put64(dma + location.PatchOffset, address);
        }
    }
    if (pPatch->pDmaBufferPrivateData != nullptr && pPatch->DmaBufferPrivateDataSize >= DmaPrivateSize) {
        const auto *data = static_cast<const UCHAR *>(pPatch->pDmaBufferPrivateData);
        const ULONG fence = ReadU32(data + 4);
        if (ReadU32(data) == DmaPrivateMagic && fence >= start && static_cast<ULONGLONG>(fence) + FenceSize <= end)
            Put64(dma + fence + 4, pPatch->SubmissionFenceId);
    }
    return STATUS_SUCCESS;
}

NTSTATUS APIENTRY DdiSubmitCommand(const HANDLE hAdapter, const DXGKARG_SUBMITCOMMAND *pSubmitCommand) {
    UNREFERENCED_PARAMETER(hAdapter);
    UNREFERENCED_PARAMETER(pSubmitCommand);
    return STATUS_SUCCESS; /* the emulated GPU runs what the scheduler submits */
}

NTSTATUS APIENTRY DdiBuildPagingBuffer(const HANDLE hAdapter, DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer) {
    UNREFERENCED_PARAMETER(hAdapter);
    return PagingBuffer(*pBuildPagingBuffer).Build();
}

} // namespace

/* ------------------------------------------------------------------ registration */

extern "C" NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath) {
    PAGED_CODE();
    if (!ARGUMENT_PRESENT(DriverObject) || !ARGUMENT_PRESENT(RegistryPath))
        return STATUS_INVALID_PARAMETER;
    Device::InitializeRegistry();
    DRIVER_INITIALIZATION_DATA init;
    RtlZeroMemory(&init, sizeof init);
    init.Version = DXGKDDI_INTERFACE_VERSION;
    init.DxgkDdiAddDevice = DdiAddDevice;
    init.DxgkDdiStartDevice = DdiStartDevice;
    init.DxgkDdiRemoveDevice = DdiRemoveDevice;
    init.DxgkDdiQueryAdapterInfo = DdiQueryAdapterInfo;
    init.DxgkDdiCreateDevice = DdiCreateDevice;
    init.DxgkDdiDestroyDevice = DdiDestroyDevice;
    init.DxgkDdiCreateContext = DdiCreateContext;
    init.DxgkDdiDestroyContext = DdiDestroyContext;
    init.DxgkDdiCreateAllocation = DdiCreateAllocation;
    init.DxgkDdiDestroyAllocation = DdiDestroyAllocation;
    init.DxgkDdiOpenAllocation = DdiOpenAllocation;
    init.DxgkDdiCloseAllocation = DdiCloseAllocation;
    init.DxgkDdiRender = DdiRender;
    init.DxgkDdiPatch = DdiPatch;
    init.DxgkDdiSubmitCommand = DdiSubmitCommand;
    init.DxgkDdiBuildPagingBuffer = DdiBuildPagingBuffer;
    LOG(DPFLTR_INFO_LEVEL, "DriverEntry: registering with DxgkInitialize\n");
    return DxgkInitialize(DriverObject, RegistryPath, &init);
}
