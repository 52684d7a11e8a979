/*
 * wdm.h -- wddm-conformance WDK compatibility set: the kernel routines a display
 * miniport calls, modelled by the harness's runtime (wdk_runtime.c) the way Driver
 * Verifier checks them.
 *
 * Written from Microsoft's public documentation, not the WDK's header. Every
 * routine declared here is implemented by the runtime; a routine the set does not
 * provide is not declared (a compile error naming it, and -Wl,--no-undefined makes
 * a call through an own declaration a link error naming it). docs/native.md lists
 * what is provided and what each check reports.
 */
#ifndef WDDM_WDK_WDM_H
#define WDDM_WDK_WDM_H

#include "ntdef.h"
#include "ntstatus.h"

#include <setjmp.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ------------------------------------------------------------ IRQL */
#define PASSIVE_LEVEL 0
#define LOW_LEVEL 0
#define APC_LEVEL 1
#define DISPATCH_LEVEL 2
#define CMCI_LEVEL 5
#define CLOCK_LEVEL 13
#define IPI_LEVEL 14
#define DRS_LEVEL 14
#define POWER_LEVEL 14
#define PROFILE_LEVEL 15
#define HIGH_LEVEL 15

KIRQL KeGetCurrentIrql(void);
/* Raising to a lower IRQL is bug check 0x9 IRQL_NOT_GREATER_OR_EQUAL. */
void KeRaiseIrql(KIRQL NewIrql, PKIRQL OldIrql);
/* Lowering to a higher IRQL is bug check 0xA IRQL_NOT_LESS_OR_EQUAL. */
void KeLowerIrql(KIRQL NewIrql);
KIRQL KeRaiseIrqlToDpcLevel(void);

/* ------------------------------------------------------------ spin locks */
typedef ULONG_PTR KSPIN_LOCK;
typedef KSPIN_LOCK *PKSPIN_LOCK;

void KeInitializeSpinLock(PKSPIN_LOCK SpinLock);
/* The runtime records where each lock was taken: returning from a DDI with one held
 * is bug check 0x4A (REN-IRQL); taking a lock this thread holds is 0xF
 * SPIN_LOCK_ALREADY_OWNED; releasing one it does not hold is 0x10 SPIN_LOCK_NOT_OWNED. */
KIRQL WddmWdkAcquireSpinLock(PKSPIN_LOCK SpinLock, BOOLEAN RaiseToDpc, const char *File, int Line);
void WddmWdkReleaseSpinLock(PKSPIN_LOCK SpinLock, KIRQL NewIrql, BOOLEAN Lower);
#define KeAcquireSpinLock(SpinLock, OldIrql) \
    (*(OldIrql) = WddmWdkAcquireSpinLock((SpinLock), TRUE, __FILE__, __LINE__))
#define KeAcquireSpinLockRaiseToDpc(SpinLock) WddmWdkAcquireSpinLock((SpinLock), TRUE, __FILE__, __LINE__)
#define KeReleaseSpinLock(SpinLock, NewIrql) WddmWdkReleaseSpinLock((SpinLock), (NewIrql), TRUE)
#define KeAcquireSpinLockAtDpcLevel(SpinLock) \
    ((void)WddmWdkAcquireSpinLock((SpinLock), FALSE, __FILE__, __LINE__))
#define KeReleaseSpinLockFromDpcLevel(SpinLock) WddmWdkReleaseSpinLock((SpinLock), DISPATCH_LEVEL, FALSE)

/* ------------------------------------------------------------ bug checks and assertions */
DECLSPEC_NORETURN void KeBugCheckEx(ULONG BugCheckCode, ULONG_PTR BugCheckParameter1,
                                    ULONG_PTR BugCheckParameter2, ULONG_PTR BugCheckParameter3,
                                    ULONG_PTR BugCheckParameter4);
DECLSPEC_NORETURN void KeBugCheck(ULONG BugCheckCode);

/* A failed assertion raises STATUS_ASSERTION_FAILURE, as NT_ASSERT does with no
 * debugger attached: unhandled, it is bug check 0x1E (ALL-NORAISE), naming the
 * expression, file and line. Assertions are always on (a checked build's). */
DECLSPEC_NORETURN void WddmWdkAssertionFailure(const char *Expression, const char *Message,
                                               const char *File, int Line);
#define NT_ASSERT(_exp) \
    ((!(_exp)) ? (WddmWdkAssertionFailure(#_exp, NULL, __FILE__, __LINE__), FALSE) : TRUE)
#define NT_ASSERTMSG(_msg, _exp) \
    ((!(_exp)) ? (WddmWdkAssertionFailure(#_exp, (_msg), __FILE__, __LINE__), FALSE) : TRUE)
#define NT_ASSERT_ASSUME(_exp) NT_ASSERT(_exp)
#define NT_VERIFY(_exp) NT_ASSERT(_exp)
#define NT_VERIFYMSG(_msg, _exp) NT_ASSERTMSG(_msg, _exp)
#define ASSERT(_exp) ((void)NT_ASSERT(_exp))
#define ASSERTMSG(_msg, _exp) ((void)NT_ASSERTMSG(_msg, _exp))
#define NT_FRE_ASSERT(_exp) NT_ASSERT(_exp)

/* PAGED_CODE(): pageable code run above APC_LEVEL is bug check 0xD1
 * DRIVER_IRQL_NOT_LESS_OR_EQUAL (parameter 3 = 8, an execute access; REN-IRQL). */
void WddmWdkPagedCode(const char *Function, const char *File, int Line);
#define PAGED_CODE() WddmWdkPagedCode(__func__, __FILE__, __LINE__)
#define PAGED_CODE_LOCKED() ((void)0)

/* ------------------------------------------------------------ debug output */
#define DPFLTR_ERROR_LEVEL 0
#define DPFLTR_WARNING_LEVEL 1
#define DPFLTR_TRACE_LEVEL 2
#define DPFLTR_INFO_LEVEL 3
#define DPFLTR_MASK 0x80000000u
#define DPFLTR_IHVVIDEO_ID 80
#define DPFLTR_IHVDRIVER_ID 77
#define DPFLTR_DEFAULT_ID 101

/* Captured into the harness's report (NativeMiniport.debug_output). */
ULONG DbgPrint(PCSTR Format, ...) __attribute__((format(printf, 1, 2)));
ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...) __attribute__((format(printf, 3, 4)));
#define KdPrint(_x_) DbgPrint _x_
#define KdPrintEx(_x_) DbgPrintEx _x_
#define DbgBreakPoint() KeBugCheckEx(0x1E, (ULONG_PTR)0x80000003L, 0, 0, 0)

/* ------------------------------------------------------------ structured exception handling */
/* __try/__except/__finally/__leave over setjmp/longjmp (C and C++). Exceptions are raised
 * by the routines of this set (ExRaiseStatus, ProbeForRead/ProbeForWrite, and
 * RtlCopyMemory/RtlMoveMemory from user memory that faults) and by real faults on the
 * call's user memory (the pages the harness makes inaccessible where it injects a fault);
 * any other fault is a crash. A local written inside __try and read in __except or
 * __finally must be volatile (setjmp's rule); break/continue leave the __try; return or
 * goto out of a __try that has a __finally is bug check 0x1E (the block cannot run: use
 * __leave); C++ destructors of frames an exception unwinds do not run. docs/native.md,
 * "Structured exception handling". */
#define EXCEPTION_EXECUTE_HANDLER 1
#define EXCEPTION_CONTINUE_SEARCH 0
#define EXCEPTION_CONTINUE_EXECUTION (-1)
#define EXCEPTION_MAXIMUM_PARAMETERS 15
#define EXCEPTION_NONCONTINUABLE 0x1

typedef struct _EXCEPTION_RECORD {
    NTSTATUS ExceptionCode;
    ULONG ExceptionFlags;
    struct _EXCEPTION_RECORD *ExceptionRecord;
    PVOID ExceptionAddress; /* the instruction that faulted, or the caller of the raising routine */
    ULONG NumberParameters;
    /* access violations: [0] 0 read, 1 write, 8 execute; [1] the address accessed */
    ULONG_PTR ExceptionInformation[EXCEPTION_MAXIMUM_PARAMETERS];
} EXCEPTION_RECORD, *PEXCEPTION_RECORD;

/* The processor context is not captured: ContextRecord is NULL. */
typedef struct _CONTEXT CONTEXT, *PCONTEXT;

typedef struct _EXCEPTION_POINTERS {
    PEXCEPTION_RECORD ExceptionRecord;
    PCONTEXT ContextRecord;
} EXCEPTION_POINTERS, *PEXCEPTION_POINTERS;

typedef struct _WDDM_WDK_SEH_FRAME {
    jmp_buf Jump;
    struct _WDDM_WDK_SEH_FRAME *Outer;
    NTSTATUS Code;
    int Phase;    /* WddmWdkSehNext's state machine (wdk_runtime.c) */
    int Finally;  /* a __try/__finally (found by the first pass through the statement) */
    int Abnormal; /* AbnormalTermination() */
    uint32_t Kind; /* how the runtime reports the exception if nothing handles it */
    const char *What;
    EXCEPTION_RECORD Record;
    EXCEPTION_POINTERS Pointers;
} WDDM_WDK_SEH_FRAME;

int WddmWdkSehNext(WDDM_WDK_SEH_FRAME *Frame);
void WddmWdkSehCleanup(WDDM_WDK_SEH_FRAME *Frame);
int WddmWdkSehFilter(WDDM_WDK_SEH_FRAME *Frame, LONG Disposition);
int WddmWdkSehFinally(WDDM_WDK_SEH_FRAME *Frame);

#ifdef __cplusplus
#define WDDM_WDK_SEH_INIT {}
#else
#define WDDM_WDK_SEH_INIT {.Phase = 0}
#endif

/* The statement runs as a loop: a first pass lets a __finally mark its frame, the body
 * runs in the second (Phase 1), and the __finally block after it, or after an exception
 * longjmps back to setjmp. __leave jumps to the end of the body (a GNU local label, so
 * nested __try blocks each have their own). */
#define __try                                                                                        \
    for (WDDM_WDK_SEH_FRAME _wddm_seh __attribute__((cleanup(WddmWdkSehCleanup))) = WDDM_WDK_SEH_INIT; \
         WddmWdkSehNext(&_wddm_seh);)                                                                \
        if (_wddm_seh.Phase == 1 && setjmp(_wddm_seh.Jump) == 0) {                                   \
            __label__ _wddm_leave;                                                                   \
            if (0)                                                                                   \
                goto _wddm_leave;
#define __leave goto _wddm_leave
#define __except(...)                                                                                \
            _wddm_leave:;                                                                            \
        } else if (_wddm_seh.Phase == 3 && WddmWdkSehFilter(&_wddm_seh, (LONG)(__VA_ARGS__)))
#define __finally                                                                                    \
            _wddm_leave:;                                                                            \
        } else if (WddmWdkSehFinally(&_wddm_seh))
#define GetExceptionCode() (_wddm_seh.Code)
#define _exception_code() (_wddm_seh.Code)
#define GetExceptionInformation() ((PEXCEPTION_POINTERS) & _wddm_seh.Pointers)
#define _exception_info() GetExceptionInformation()
#define AbnormalTermination() (_wddm_seh.Abnormal != 0)
#define _abnormal_termination() AbnormalTermination()

DECLSPEC_NORETURN void ExRaiseStatus(NTSTATUS Status);
#define ExRaiseAccessViolation() ExRaiseStatus(STATUS_ACCESS_VIOLATION)
#define ExRaiseDatatypeMisalignment() ExRaiseStatus(STATUS_DATATYPE_MISALIGNMENT)

/* Raises STATUS_ACCESS_VIOLATION unless [Address, Address+Length) lies in user memory
 * the harness handed to this call; STATUS_DATATYPE_MISALIGNMENT if misaligned. */
void ProbeForRead(const volatile void *Address, SIZE_T Length, ULONG Alignment);
void ProbeForWrite(volatile void *Address, SIZE_T Length, ULONG Alignment);

/* ------------------------------------------------------------ memory */
/* Functions, not the WDK's memcpy macros: a copy from user memory goes through the
 * harness (fault injection, the read log, TOCTOU), raises STATUS_ACCESS_VIOLATION
 * where the access faults, and above APC_LEVEL is bug check 0xD1 (REN-IRQL). */
void RtlCopyMemory(void *Destination, const volatile void *Source, SIZE_T Length);
void RtlMoveMemory(void *Destination, const volatile void *Source, SIZE_T Length);
void RtlZeroMemory(volatile void *Destination, SIZE_T Length);
void RtlFillMemory(volatile void *Destination, SIZE_T Length, UCHAR Fill);
SIZE_T RtlCompareMemory(const void *Source1, const void *Source2, SIZE_T Length);
#define RtlSecureZeroMemory(Destination, Length) (RtlZeroMemory((Destination), (Length)), (PVOID)(Destination))
#define RtlEqualMemory(Source1, Source2, Length) (RtlCompareMemory((Source1), (Source2), (Length)) == (Length))
#define RtlCopyBytes RtlCopyMemory
#define RtlZeroBytes RtlZeroMemory
#define RtlFillBytes RtlFillMemory

/* ------------------------------------------------------------ pool */
typedef enum _POOL_TYPE {
    NonPagedPool = 0,
    NonPagedPoolExecute = 0,
    PagedPool = 1,
    NonPagedPoolMustSucceed = 2,
    DontUseThisType = 3,
    NonPagedPoolCacheAligned = 4,
    PagedPoolCacheAligned = 5,
    NonPagedPoolCacheAlignedMustS = 6,
    MaxPoolType = 7,
    NonPagedPoolNx = 512,
    NonPagedPoolNxCacheAligned = 516
} POOL_TYPE;

typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_REQUIRED_START          0x0000000000000001ULL
#define POOL_FLAG_USE_QUOTA               0x0000000000000001ULL
#define POOL_FLAG_UNINITIALIZED           0x0000000000000002ULL
#define POOL_FLAG_SESSION                 0x0000000000000004ULL
#define POOL_FLAG_CACHE_ALIGNED           0x0000000000000008ULL
#define POOL_FLAG_RAISE_ON_FAILURE        0x0000000000000020ULL
#define POOL_FLAG_NON_PAGED               0x0000000000000040ULL
#define POOL_FLAG_NON_PAGED_EXECUTE       0x0000000000000080ULL
#define POOL_FLAG_PAGED                   0x0000000000000100ULL
#define POOL_FLAG_SPECIAL_POOL            0x0000000080000000ULL

/* Tracked by tag, size and the DDI call that allocated it (Driver Verifier's pool
 * tracking): pool still allocated when its owner is destroyed is a leak (ALC-ATOMIC for a
 * failed CreateAllocation batch, ALC-ADAPTER for a destroy path);
 * a double free, a free of memory that is not pool, a free with another tag, or pool
 * taken or freed at the wrong IRQL is bug check 0xC2 BAD_POOL_CALLER. */
PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);
PVOID ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
PVOID ExAllocatePoolZero(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
void ExFreePoolWithTag(PVOID P, ULONG Tag);
void ExFreePool(PVOID P);

/* ------------------------------------------------------------ MDLs */
typedef ULONG_PTR PFN_NUMBER, *PPFN_NUMBER;

/* A memory descriptor list: the page frames follow the header (MmGetMdlPfnArray). */
typedef struct _MDL {
    struct _MDL *Next;
    CSHORT Size;
    CSHORT MdlFlags;
    struct _EPROCESS *Process;
    PVOID MappedSystemVa;
    PVOID StartVa;
    ULONG ByteCount;
    ULONG ByteOffset;
} MDL, *PMDL;

#define MmGetMdlPfnArray(Mdl) ((PPFN_NUMBER)((PMDL)(Mdl) + 1))
#define MmGetMdlByteCount(Mdl) ((Mdl)->ByteCount)
#define MmGetMdlByteOffset(Mdl) ((Mdl)->ByteOffset)
#define PAGE_SIZE 0x1000
#define PAGE_SHIFT 12
#define BYTES_TO_PAGES(Size) (((Size) >> PAGE_SHIFT) + (((Size) & (PAGE_SIZE - 1)) != 0))
#define ROUND_TO_PAGES(Size) (((ULONG_PTR)(Size) + PAGE_SIZE - 1) & ~((ULONG_PTR)PAGE_SIZE - 1))

/* ------------------------------------------------------------ driver objects */
struct _DEVICE_OBJECT;
struct _DRIVER_OBJECT;
typedef NTSTATUS DRIVER_INITIALIZE(struct _DRIVER_OBJECT *DriverObject, PUNICODE_STRING RegistryPath);
typedef DRIVER_INITIALIZE *PDRIVER_INITIALIZE;
typedef void DRIVER_UNLOAD(struct _DRIVER_OBJECT *DriverObject);
typedef DRIVER_UNLOAD *PDRIVER_UNLOAD;

typedef struct _DRIVER_EXTENSION {
    struct _DRIVER_OBJECT *DriverObject;
    PVOID AddDevice;
    ULONG Count;
    UNICODE_STRING ServiceKeyName;
} DRIVER_EXTENSION, *PDRIVER_EXTENSION;

#define IRP_MJ_MAXIMUM_FUNCTION 0x1b

/* The documented members, in order; the harness's DRIVER_OBJECT is one per library. */
typedef struct _DRIVER_OBJECT {
    CSHORT Type;
    CSHORT Size;
    struct _DEVICE_OBJECT *DeviceObject;
    ULONG Flags;
    PVOID DriverStart;
    ULONG DriverSize;
    PVOID DriverSection;
    PDRIVER_EXTENSION DriverExtension;
    UNICODE_STRING DriverName;
    PUNICODE_STRING HardwareDatabase;
    PVOID FastIoDispatch;
    PDRIVER_INITIALIZE DriverInit;
    PVOID DriverStartIo;
    PDRIVER_UNLOAD DriverUnload;
    PVOID MajorFunction[IRP_MJ_MAXIMUM_FUNCTION + 1];
} DRIVER_OBJECT, *PDRIVER_OBJECT;

typedef struct _DEVICE_OBJECT *PDEVICE_OBJECT;

/* The driver's entry point: the harness calls it once per loaded library. */
DRIVER_INITIALIZE DriverEntry;

/* ------------------------------------------------------------ events and fast mutexes */
/* Dispatcher objects at the WDK's x64 layout (KEVENT 24 bytes, FAST_MUTEX 56). Only
 * events are waitable. The DDI runs on one thread and nothing else can signal, so a
 * wait is decided at once: a signalled event satisfies it (a synchronization event is
 * reset), else a wait with a timeout returns STATUS_TIMEOUT (its time passes at once),
 * and a wait with no timeout can never end: a hang, reported as the TDR it would be
 * (0x116, ALL-BOUNDED). Waiting above APC_LEVEL (above DISPATCH_LEVEL with a zero
 * timeout) is bug check 0xA IRQL_NOT_LESS_OR_EQUAL (REN-IRQL). */
typedef enum _EVENT_TYPE { NotificationEvent = 0, SynchronizationEvent = 1 } EVENT_TYPE;
typedef enum _KWAIT_REASON { Executive = 0, FreePage, PageIn, PoolAllocation, DelayExecution,
                             Suspended, UserRequest, WrExecutive } KWAIT_REASON;
typedef CCHAR KPROCESSOR_MODE;
typedef enum _MODE { KernelMode = 0, UserMode = 1, MaximumMode } MODE;

typedef struct _DISPATCHER_HEADER {
    union {
        struct {
            UCHAR Type; /* EVENT_TYPE for an event */
            UCHAR Signalling;
            UCHAR Size; /* in LONGs: 6 for a KEVENT */
            UCHAR Reserved1;
        };
        LONG Lock;
    };
    LONG SignalState;
    LIST_ENTRY WaitListHead;
} DISPATCHER_HEADER;

typedef struct _KEVENT {
    DISPATCHER_HEADER Header;
} KEVENT, *PKEVENT, *PRKEVENT;

void KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State);
/* At IRQL <= DISPATCH_LEVEL; each returns the previous state (KeClearEvent none). */
LONG KeSetEvent(PRKEVENT Event, LONG Increment, BOOLEAN Wait);
LONG KeResetEvent(PRKEVENT Event);
void KeClearEvent(PRKEVENT Event);
LONG KeReadStateEvent(PRKEVENT Event);
/* STATUS_SUCCESS or STATUS_TIMEOUT; Timeout in 100 ns units (negative: relative), NULL: none. */
NTSTATUS KeWaitForSingleObject(PVOID Object, KWAIT_REASON WaitReason, KPROCESSOR_MODE WaitMode,
                               BOOLEAN Alertable, PLARGE_INTEGER Timeout);

typedef struct _FAST_MUTEX {
    LONG_PTR Count; /* 1 free, 0 owned */
    PVOID Owner;
    ULONG Contention;
    KEVENT Event;
    ULONG OldIrql;
} FAST_MUTEX, *PFAST_MUTEX;

/* Acquiring raises to APC_LEVEL (and above APC_LEVEL is bug check 0xC4 with 0x20005, as
 * Driver Verifier's DDI compliance checking reports it); acquiring one this thread owns
 * is the self-deadlock Driver Verifier's deadlock detection reports, 0xC4 with 0x1001
 * (ALL-BOUNDED); releasing one it does not own is 0xE3 RESOURCE_NOT_OWNED; returning from
 * a DDI with one owned is 0x4A (REN-IRQL), naming where it was acquired. */
void ExInitializeFastMutex(PFAST_MUTEX FastMutex);
void WddmWdkAcquireFastMutex(PFAST_MUTEX FastMutex, BOOLEAN Try, BOOLEAN *Acquired, const char *File,
                             int Line);
void ExReleaseFastMutex(PFAST_MUTEX FastMutex);
#define ExAcquireFastMutex(FastMutex) WddmWdkAcquireFastMutex((FastMutex), FALSE, NULL, __FILE__, __LINE__)
static inline BOOLEAN WddmWdkTryFastMutex(PFAST_MUTEX FastMutex, const char *File, int Line) {
    BOOLEAN acquired = FALSE;
    WddmWdkAcquireFastMutex(FastMutex, TRUE, &acquired, File, Line);
    return acquired;
}
#define ExTryToAcquireFastMutex(FastMutex) WddmWdkTryFastMutex((FastMutex), __FILE__, __LINE__)

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* WDDM_WDK_WDM_H */
