/*
 * wdk_runtime.c -- the kernel a WDK-style display miniport links against under
 * wddm-conformance: DxgkInitialize, pool, IRQL, spin locks, assertions, debug output,
 * structured exceptions and user-memory copies, each modelled with the checks Driver
 * Verifier makes. `wddm-conformance native build --wdk` compiles it into the driver's
 * library; the harness drives it through wdk_runtime.h. docs/native.md describes
 * every check and the bug check it raises.
 *
 * State: the IRQL, held spin locks, exception frames and the running call are per
 * thread (a DDI runs on one thread); pool and debug output are per library, under a
 * mutex. A bug check ends the running DDI: the runtime jumps back to WddmWdkInvoke,
 * which reports it in the WDDM_WDK_CALL (the driver's own cleanup does not run, as on
 * a crashed machine).
 */
#define _GNU_SOURCE /* sigaction, mprotect, dladdr */
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dispmprt.h"
#include "wdk_runtime.h"

/* Built with AddressSanitizer (the --sanitize build): special pool (below). */
#if defined(__SANITIZE_ADDRESS__)
#define WDDM_WDK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WDDM_WDK_ASAN 1
#endif
#endif

#ifdef WDDM_WDK_ASAN
void __asan_poison_memory_region(void const volatile *Address, size_t Size);
void __asan_unpoison_memory_region(void const volatile *Address, size_t Size);
#define POISON(Address, Size) __asan_poison_memory_region((Address), (Size))
#define UNPOISON(Address, Size) __asan_unpoison_memory_region((Address), (Size))
#else
#define POISON(Address, Size) ((void)0)
#define UNPOISON(Address, Size) ((void)0)
#endif

#define BAD_POOL_CALLER 0xC2u
#define DRIVER_IRQL_NOT_LESS_OR_EQUAL 0xD1u
#define IRQL_NOT_LESS_OR_EQUAL 0xAu
#define IRQL_NOT_GREATER_OR_EQUAL 0x9u
#define IRQL_GT_ZERO_AT_SYSTEM_SERVICE 0x4Au
#define SPIN_LOCK_ALREADY_OWNED 0xFu
#define SPIN_LOCK_NOT_OWNED 0x10u
#define KMODE_EXCEPTION_NOT_HANDLED 0x1Eu
#define MAX_HELD_LOCKS 16
#define QUARANTINE 1024
#define DEBUG_OUTPUT_LIMIT 65536

typedef struct {
    PKSPIN_LOCK Lock;
    const char *File;
    int Line;
} HELD_LOCK;

static __thread KIRQL CurrentIrql;
static __thread HELD_LOCK Held[MAX_HELD_LOCKS];
static __thread unsigned HeldCount;
static __thread WDDM_WDK_SEH_FRAME *Frames;
static __thread WDDM_WDK_CALL *Running;
static __thread jmp_buf *Landing;
/* The instruction a fault the runtime turned into an exception stopped at (OnFault). */
static __thread uintptr_t FaultInstruction;

/* ------------------------------------------------------------------ bug checks */

/* Where this library is loaded: the report's source lines are offsets from it. */
static uintptr_t LoadBase(void) {
    static uintptr_t base;
    Dl_info info;
    if (base == 0 && dladdr((void *)&LoadBase, &info) != 0)
        base = (uintptr_t)info.dli_fbase;
    return base;
}

/* WDDM_WDK_CALL.Frames: the harness turns them into the driver's source line. backtrace()
 * unwinds through a signal frame too (a fault in the C library's memcpy: the driver's
 * caller is below it). */
static void CaptureStack(WDDM_WDK_CALL *Call) {
    void *raw[64];
    int n = backtrace(raw, 64);
    uintptr_t base = LoadBase();
    uint32_t k = 0;
    memset(Call->Frames, 0, sizeof Call->Frames);
    for (int i = 0; i < n && k < RTL_NUMBER_OF(Call->Frames); i++) {
        uintptr_t address = (uintptr_t)raw[i];
        Dl_info info;
        if (base == 0 || dladdr(raw[i], &info) == 0 || (uintptr_t)info.dli_fbase != base)
            continue;
        Call->Frames[k++] = address - base - (address == FaultInstruction ? 0 : 1);
    }
}

static DECLSPEC_NORETURN __attribute__((format(printf, 7, 8))) void
Stop(uint32_t Kind, ULONG Code, ULONG_PTR P1, ULONG_PTR P2, ULONG_PTR P3, ULONG_PTR P4,
     const char *Format, ...) {
    va_list args;
    WDDM_WDK_CALL *call = Running;
    if (call == NULL || Landing == NULL) {
        /* Not inside a DDI the harness called (a thread of the driver's own). */
        va_start(args, Format);
        fprintf(stderr, "wddm-conformance: bug check 0x%X outside a DDI call: ", Code);
        vfprintf(stderr, Format, args);
        va_end(args);
        fputc('\n', stderr);
        abort();
    }
    call->BugCheckCode = Code;
    call->BugCheckParameters[0] = P1;
    call->BugCheckParameters[1] = P2;
    call->BugCheckParameters[2] = P3;
    call->BugCheckParameters[3] = P4;
    call->Kind = Kind;
    va_start(args, Format);
    vsnprintf(call->Message, sizeof call->Message, Format, args);
    va_end(args);
    CaptureStack(call);
    longjmp(*Landing, 1);
}

void KeBugCheckEx(ULONG BugCheckCode, ULONG_PTR P1, ULONG_PTR P2, ULONG_PTR P3, ULONG_PTR P4) {
    Stop(WDDM_WDK_KIND_DRIVER, BugCheckCode, P1, P2, P3, P4, "the driver called KeBugCheckEx");
}

void KeBugCheck(ULONG BugCheckCode) {
    Stop(WDDM_WDK_KIND_DRIVER, BugCheckCode, 0, 0, 0, 0, "the driver called KeBugCheck");
}

void WddmWdkAssertionFailure(const char *Expression, const char *Message, const char *File, int Line) {
    Stop(WDDM_WDK_KIND_ASSERT, KMODE_EXCEPTION_NOT_HANDLED, (ULONG_PTR)(ULONG)STATUS_ASSERTION_FAILURE,
         (ULONG_PTR)__builtin_return_address(0), 0, 0, "assertion failed: NT_ASSERT(%s)%s%s at %s:%d",
         Expression, Message ? ": " : "", Message ? Message : "", File, Line);
}

/* ------------------------------------------------------------------ IRQL and spin locks */

KIRQL KeGetCurrentIrql(void) { return CurrentIrql; }

void KeRaiseIrql(KIRQL NewIrql, PKIRQL OldIrql) {
    if (NewIrql < CurrentIrql)
        Stop(WDDM_WDK_KIND_IRQL, IRQL_NOT_GREATER_OR_EQUAL, CurrentIrql, NewIrql, 0,
             (ULONG_PTR)__builtin_return_address(0), "KeRaiseIrql to %u from the higher IRQL %u",
             NewIrql, CurrentIrql);
    *OldIrql = CurrentIrql;
    CurrentIrql = NewIrql;
}

KIRQL KeRaiseIrqlToDpcLevel(void) {
    KIRQL old;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    return old;
}

void KeLowerIrql(KIRQL NewIrql) {
    if (NewIrql > CurrentIrql)
        Stop(WDDM_WDK_KIND_IRQL, IRQL_NOT_LESS_OR_EQUAL, 0, NewIrql, 0,
             (ULONG_PTR)__builtin_return_address(0), "KeLowerIrql to %u from the lower IRQL %u",
             NewIrql, CurrentIrql);
    CurrentIrql = NewIrql;
}

void KeInitializeSpinLock(PKSPIN_LOCK SpinLock) { __atomic_store_n(SpinLock, 0, __ATOMIC_RELEASE); }

KIRQL WddmWdkAcquireSpinLock(PKSPIN_LOCK SpinLock, BOOLEAN RaiseToDpc, const char *File, int Line) {
    KIRQL old = CurrentIrql;
    for (unsigned i = 0; i < HeldCount; i++)
        if (Held[i].Lock == SpinLock)
            Stop(WDDM_WDK_KIND_IRQL, SPIN_LOCK_ALREADY_OWNED, (ULONG_PTR)SpinLock, 0, 0, 0,
                 "spin lock %p taken at %s:%d is taken again at %s:%d by its owner (a deadlock)",
                 (void *)SpinLock, Held[i].File, Held[i].Line, File, Line);
    if (RaiseToDpc) {
        if (CurrentIrql > DISPATCH_LEVEL)
            Stop(WDDM_WDK_KIND_IRQL, IRQL_NOT_GREATER_OR_EQUAL, CurrentIrql, DISPATCH_LEVEL, 0, 0,
                 "KeAcquireSpinLock at IRQL %u (above DISPATCH_LEVEL) at %s:%d", CurrentIrql, File, Line);
        CurrentIrql = DISPATCH_LEVEL;
    }
    ULONG_PTR expected = 0;
    while (!__atomic_compare_exchange_n(SpinLock, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        expected = 0;
        sched_yield(); /* held by another thread: spin, as a processor would */
    }
    if (HeldCount < MAX_HELD_LOCKS)
        Held[HeldCount++] = (HELD_LOCK){SpinLock, File, Line};
    return old;
}

void WddmWdkReleaseSpinLock(PKSPIN_LOCK SpinLock, KIRQL NewIrql, BOOLEAN Lower) {
    unsigned i = 0;
    while (i < HeldCount && Held[i].Lock != SpinLock)
        i++;
    if (i == HeldCount)
        Stop(WDDM_WDK_KIND_IRQL, SPIN_LOCK_NOT_OWNED, (ULONG_PTR)SpinLock, 0, 0, 0,
             "spin lock %p released by a thread that does not hold it", (void *)SpinLock);
    Held[i] = Held[--HeldCount];
    __atomic_store_n(SpinLock, 0, __ATOMIC_RELEASE);
    if (Lower)
        KeLowerIrql(NewIrql);
}

void WddmWdkPagedCode(const char *Function, const char *File, int Line) {
    if (CurrentIrql > APC_LEVEL)
        Stop(WDDM_WDK_KIND_IRQL, DRIVER_IRQL_NOT_LESS_OR_EQUAL, (ULONG_PTR)__builtin_return_address(0),
             CurrentIrql, 8, (ULONG_PTR)__builtin_return_address(0),
             "pageable code (PAGED_CODE() in %s at %s:%d) ran at IRQL %u, above APC_LEVEL", Function,
             File, Line, CurrentIrql);
}

/* ------------------------------------------------------------------ exceptions */

/* WDDM_WDK_SEH_FRAME.Phase: wdm.h's __try runs its statement once per phase (SEH_BODY and
 * SEH_RAISED are numbers there). */
enum { SEH_INIT = 0, SEH_BODY = 1, SEH_AFTER = 2, SEH_RAISED = 3, SEH_DONE = 4, SEH_PROBE = 5 };

/* Hands the exception to the innermost frame (its filter, or its __finally, which passes
 * it on); bug check 0x1E at once, nothing unwound, when no frame has a filter (Windows
 * finds no handler before it unwinds). */
static DECLSPEC_NORETURN void Dispatch(const EXCEPTION_RECORD *Record, uint32_t Kind, const char *What) {
    WDDM_WDK_SEH_FRAME *frame = Frames, *handler = Frames;
    while (handler != NULL && handler->Finally)
        handler = handler->Outer;
    if (handler == NULL) {
        int av = Record->NumberParameters >= 2;
        Stop(Kind, KMODE_EXCEPTION_NOT_HANDLED, (ULONG_PTR)(ULONG)Record->ExceptionCode,
             (ULONG_PTR)Record->ExceptionAddress, av ? Record->ExceptionInformation[0] : 0,
             av ? Record->ExceptionInformation[1] : 0, "exception 0x%08X (%s) raised outside any __try",
             (unsigned)Record->ExceptionCode, What);
    }
    Frames = frame->Outer;
    frame->Record = *Record;
    frame->Record.ExceptionRecord = NULL;
    frame->Pointers.ExceptionRecord = &frame->Record;
    frame->Pointers.ContextRecord = NULL;
    frame->Code = Record->ExceptionCode;
    frame->Kind = Kind;
    frame->What = What;
    frame->Phase = SEH_RAISED;
    longjmp(frame->Jump, 1);
}

int WddmWdkSehNext(WDDM_WDK_SEH_FRAME *Frame) {
    switch (Frame->Phase) {
    case SEH_INIT:
        Frame->Phase = SEH_PROBE;
        return 1;
    case SEH_PROBE:
        Frame->Outer = Frames;
        Frames = Frame;
        Frame->Phase = SEH_BODY;
        return 1;
    case SEH_BODY: /* the body ended, or __leave or continue left it */
        if (Frames == Frame)
            Frames = Frame->Outer;
        Frame->Abnormal = 0;
        Frame->Phase = Frame->Finally ? SEH_AFTER : SEH_DONE;
        return Frame->Finally;
    case SEH_RAISED:
        Frame->Phase = SEH_DONE;
        if (Frame->Finally) /* its __finally ran: the exception goes on outwards */
            Dispatch(&Frame->Record, Frame->Kind, Frame->What);
        return 0;
    default:
        Frame->Phase = SEH_DONE;
        return 0;
    }
}

int WddmWdkSehFinally(WDDM_WDK_SEH_FRAME *Frame) {
    if (Frame->Phase == SEH_PROBE) {
        Frame->Finally = 1;
        return 0;
    }
    Frame->Abnormal = Frame->Phase == SEH_RAISED;
    return 1;
}

void WddmWdkSehCleanup(WDDM_WDK_SEH_FRAME *Frame) {
    int phase = Frame->Phase;
    if (phase == SEH_BODY && Frames == Frame) /* left by return, goto or break: unlink the frame */
        Frames = Frame->Outer;
    Frame->Phase = SEH_DONE;
    if (phase == SEH_BODY && Frame->Finally)
        Stop(WDDM_WDK_KIND_EXCEPTION, KMODE_EXCEPTION_NOT_HANDLED, (ULONG_PTR)(ULONG)STATUS_INTERNAL_ERROR,
             (ULONG_PTR)__builtin_return_address(0), 0, 0,
             "a return, goto or break left a __try whose __finally the harness cannot run (a limit of its "
             "setjmp-based SEH, not a driver bug: leave the __try with __leave)");
}

/* Raises Status at Instruction; an access violation carries its two parameters (Access:
 * 0 read, 1 write, 8 execute; Address: the memory accessed), as Windows gives them, and
 * they are bug check 0x1E's parameters 3 and 4 when no __try covers it. */
static DECLSPEC_NORETURN void RaiseAt(NTSTATUS Status, ULONG_PTR Instruction, ULONG_PTR Access,
                                      ULONG_PTR Address, uint32_t Kind, const char *What) {
    EXCEPTION_RECORD record;
    memset(&record, 0, sizeof record);
    record.ExceptionCode = Status;
    record.ExceptionAddress = (PVOID)Instruction;
    if (Status == STATUS_ACCESS_VIOLATION) {
        record.NumberParameters = 2;
        record.ExceptionInformation[0] = Access;
        record.ExceptionInformation[1] = Address;
    }
    Dispatch(&record, Kind, What);
}

int WddmWdkSehFilter(WDDM_WDK_SEH_FRAME *Frame, LONG Disposition) {
    if (Disposition == EXCEPTION_EXECUTE_HANDLER)
        return 1;
    if (Disposition == EXCEPTION_CONTINUE_SEARCH)
        Dispatch(&Frame->Record, Frame->Kind, Frame->What);
    Stop(WDDM_WDK_KIND_EXCEPTION, KMODE_EXCEPTION_NOT_HANDLED, (ULONG_PTR)(ULONG)Frame->Code, 0, 0, 0,
         "an __except filter returned %d: only EXCEPTION_EXECUTE_HANDLER and EXCEPTION_CONTINUE_SEARCH "
         "are modelled",
         (int)Disposition);
}

void ExRaiseStatus(NTSTATUS Status) {
    EXCEPTION_RECORD record;
    memset(&record, 0, sizeof record);
    record.ExceptionCode = Status;
    record.ExceptionAddress = __builtin_return_address(0);
    Dispatch(&record, WDDM_WDK_KIND_EXCEPTION, "ExRaiseStatus");
}

/* ------------------------------------------------------------------ user memory */

static int InUserMemory(const volatile void *Address, SIZE_T Length) {
    WDDM_WDK_CALL *call = Running;
    uint64_t start = (uint64_t)(uintptr_t)Address;
    if (call == NULL)
        return 0;
    for (uint32_t i = 0; i < call->UserRangeCount && i < 8; i++) {
        uint64_t lo = call->UserRanges[i][0], hi = call->UserRanges[i][1];
        if (start >= lo && start < hi && Length <= hi - start)
            return 1;
    }
    return 0;
}

static void Probe(const volatile void *Address, SIZE_T Length, ULONG Alignment, ULONG_PTR Access,
                  ULONG_PTR Caller, const char *Routine) {
    if (Length == 0)
        return;
    if (Alignment > 1 && ((uintptr_t)Address & (Alignment - 1)) != 0)
        RaiseAt(STATUS_DATATYPE_MISALIGNMENT, Caller, 0, 0, WDDM_WDK_KIND_EXCEPTION, Routine);
    if (!InUserMemory(Address, Length))
        RaiseAt(STATUS_ACCESS_VIOLATION, Caller, Access, (ULONG_PTR)Address, WDDM_WDK_KIND_USERFAULT, Routine);
}

void ProbeForRead(const volatile void *Address, SIZE_T Length, ULONG Alignment) {
    Probe(Address, Length, Alignment, 0, (ULONG_PTR)__builtin_return_address(0),
          "ProbeForRead: not user memory of this call");
}

void ProbeForWrite(volatile void *Address, SIZE_T Length, ULONG Alignment) {
    Probe(Address, Length, Alignment, 1, (ULONG_PTR)__builtin_return_address(0),
          "ProbeForWrite: not user memory of this call");
}

typedef BOOLEAN (*COPY_FROM_USER)(void *Context, void *Destination, const void *Source, SIZE_T Length);

static int CopyFromUser(void *Destination, const volatile void *Source, SIZE_T Length, ULONG_PTR Caller) {
    WDDM_WDK_CALL *call = Running;
    if (call == NULL || call->CopyFromUser == NULL || !InUserMemory(Source, 1))
        return 0;
    if (CurrentIrql > APC_LEVEL)
        Stop(WDDM_WDK_KIND_IRQL, DRIVER_IRQL_NOT_LESS_OR_EQUAL, (ULONG_PTR)Source, CurrentIrql, 0, Caller,
             "user memory at %p read at IRQL %u, above APC_LEVEL (it is pageable)", (const void *)Source,
             CurrentIrql);
    if (!((COPY_FROM_USER)call->CopyFromUser)(call->CopyContext, Destination, (const void *)Source, Length))
        RaiseAt(STATUS_ACCESS_VIOLATION, Caller, 0, (ULONG_PTR)Source, WDDM_WDK_KIND_USERFAULT,
                "an access to user memory faulted");
    return 1;
}

/* ------------------------------------------------------------------ real faults */

/* A read of user memory that reaches a page the harness made inaccessible (a fault it
 * injects) raises STATUS_ACCESS_VIOLATION into the driver's __try, as a processor's
 * fault would on Windows; above APC_LEVEL it is bug check 0xD1. Any other fault is
 * handed to the handler that was there before (Python's faulthandler, a sanitizer's, or
 * the default: the process dies, a crash the isolation layer reports). */
static struct sigaction PreviousSegv, PreviousBus;
static pthread_once_t FaultHandlerOnce = PTHREAD_ONCE_INIT;

static void OnFault(int Signal, siginfo_t *Info, void *Context) {
    if (Running != NULL && Landing != NULL && InUserMemory(Info->si_addr, 1)) {
        if (CurrentIrql > APC_LEVEL)
            Stop(WDDM_WDK_KIND_IRQL, DRIVER_IRQL_NOT_LESS_OR_EQUAL, (ULONG_PTR)Info->si_addr, CurrentIrql, 0, 0,
                 "user memory at %p touched at IRQL %u, above APC_LEVEL (it is pageable)", Info->si_addr,
                 CurrentIrql);
        ULONG_PTR instruction = 0, access = 0;
#if defined(__x86_64__)
        instruction = (ULONG_PTR)((ucontext_t *)Context)->uc_mcontext.gregs[REG_RIP];
        access = (((ucontext_t *)Context)->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0; /* page fault W bit */
#endif
        FaultInstruction = instruction;
        RaiseAt(STATUS_ACCESS_VIOLATION, instruction, access, (ULONG_PTR)Info->si_addr, WDDM_WDK_KIND_USERFAULT,
                "a read of user memory faulted");
    }
    struct sigaction *previous = Signal == SIGSEGV ? &PreviousSegv : &PreviousBus;
    if (previous->sa_flags & SA_SIGINFO) {
        previous->sa_sigaction(Signal, Info, Context);
    } else if (previous->sa_handler == SIG_DFL || previous->sa_handler == SIG_IGN) {
        sigaction(Signal, previous, NULL); /* the access runs again and gets the old disposition */
    } else {
        previous->sa_handler(Signal);
    }
}

static void InstallFaultHandler(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = OnFault;
    action.sa_flags = SA_SIGINFO | SA_NODEFER; /* it leaves by longjmp: keep the signal unblocked */
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &PreviousSegv);
    sigaction(SIGBUS, &action, &PreviousBus);
}

int32_t WddmWdkProtect(void *Address, uint64_t Length, int32_t Accessible) {
    pthread_once(&FaultHandlerOnce, InstallFaultHandler);
    return mprotect(Address, (size_t)Length, Accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
}

void RtlCopyMemory(void *Destination, const volatile void *Source, SIZE_T Length) {
    if (Length == 0)
        return;
    if (!CopyFromUser(Destination, Source, Length, (ULONG_PTR)__builtin_return_address(0)))
        memcpy(Destination, (const void *)Source, Length);
}

void RtlMoveMemory(void *Destination, const volatile void *Source, SIZE_T Length) {
    if (Length == 0)
        return;
    if (!CopyFromUser(Destination, Source, Length, (ULONG_PTR)__builtin_return_address(0)))
        memmove(Destination, (const void *)Source, Length);
}

void RtlZeroMemory(volatile void *Destination, SIZE_T Length) { memset((void *)Destination, 0, Length); }

void RtlFillMemory(volatile void *Destination, SIZE_T Length, UCHAR Fill) {
    memset((void *)Destination, Fill, Length);
}

SIZE_T RtlCompareMemory(const void *Source1, const void *Source2, SIZE_T Length) {
    const UCHAR *a = Source1, *b = Source2;
    SIZE_T i = 0;
    while (i < Length && a[i] == b[i])
        i++;
    return i;
}

/* ------------------------------------------------------------------ pool */

typedef struct {
    void *Address;
    SIZE_T Size;
    ULONG Tag;
    ULONG PoolType;
    uint64_t Scope;
} BLOCK;

static pthread_mutex_t PoolLock = PTHREAD_MUTEX_INITIALIZER;
static BLOCK *Blocks;
static size_t BlockCount, BlockCapacity;
/* Freed blocks are kept (not returned to the C heap) for a while, so a second free of
 * the same address is recognised as a double free, not as a free of foreign memory. */
static BLOCK Quarantine[QUARANTINE];
static size_t QuarantineNext, QuarantineCount;

static __thread char TagText[5];

static const char *TagName(ULONG Tag) {
    for (int i = 0; i < 4; i++) {
        char c = (char)((Tag >> (8 * i)) & 0xFF);
        TagText[i] = (c >= 0x20 && c < 0x7F) ? c : '.';
    }
    TagText[4] = 0;
    return TagText;
}

static int IsPaged(ULONG PoolType) { return (PoolType & 1) != 0; }

static PVOID Allocate(ULONG PoolType, SIZE_T NumberOfBytes, ULONG Tag, int Zero, const char *Routine,
                      ULONG_PTR Caller) {
    KIRQL limit = IsPaged(PoolType) ? APC_LEVEL : DISPATCH_LEVEL;
    if (CurrentIrql > limit)
        Stop(WDDM_WDK_KIND_POOL, BAD_POOL_CALLER, 0x08, CurrentIrql, PoolType, NumberOfBytes,
             "%s of %zu bytes of %s pool at IRQL %u", Routine, (size_t)NumberOfBytes,
             IsPaged(PoolType) ? "paged" : "nonpaged", CurrentIrql);
    if (Tag == 0)
        Stop(WDDM_WDK_KIND_POOL, BAD_POOL_CALLER, 0x9B, PoolType, NumberOfBytes, Caller,
             "%s with pool tag 0 (untrackable)", Routine);
    if (NumberOfBytes == 0)
        Stop(WDDM_WDK_KIND_POOL, BAD_POOL_CALLER, 0x00, 0, PoolType, Tag,
             "%s of zero bytes (tag '%s')", Routine, TagName(Tag));
    void *p = Zero ? calloc(1, NumberOfBytes) : malloc(NumberOfBytes);
    if (p == NULL)
        return NULL;
    pthread_mutex_lock(&PoolLock);
    if (BlockCount == BlockCapacity) {
        size_t capacity = BlockCapacity ? 2 * BlockCapacity : 256;
        BLOCK *grown = realloc(Blocks, capacity * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&PoolLock);
            free(p);
            return NULL;
        }
        Blocks = grown;
        BlockCapacity = capacity;
    }
    Blocks[BlockCount++] = (BLOCK){p, NumberOfBytes, Tag, PoolType, Running ? Running->Scope : 0};
    pthread_mutex_unlock(&PoolLock);
    return p;
}

PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag) {
    ULONG type = (Flags & POOL_FLAG_PAGED) ? PagedPool : NonPagedPoolNx;
    return Allocate(type, NumberOfBytes, Tag, (Flags & POOL_FLAG_UNINITIALIZED) == 0, "ExAllocatePool2",
                    (ULONG_PTR)__builtin_return_address(0));
}

PVOID ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag) {
    return Allocate((ULONG)PoolType, NumberOfBytes, Tag, 0, "ExAllocatePoolWithTag",
                    (ULONG_PTR)__builtin_return_address(0));
}

PVOID ExAllocatePoolZero(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag) {
    return Allocate((ULONG)PoolType, NumberOfBytes, Tag, 1, "ExAllocatePoolZero",
                    (ULONG_PTR)__builtin_return_address(0));
}

static void Free(PVOID P, ULONG Tag, int CheckTag, const char *Routine) {
    if (P == NULL)
        Stop(WDDM_WDK_KIND_POOL, BAD_POOL_CALLER, 0x46, 0, 0, 0, "%s(NULL)", Routine);
    pthread_mutex_lock(&PoolLock);
    size_t i = 0;
    while (i < BlockCount && Blocks[i].Address != P)
        i++;
    if (i == BlockCount) {
        for (size_t q = 0; q < QuarantineCount; q++) {
            if (Quarantine[q].Address == P) {
                BLOCK freed = Quarantine[q];
                pthread_mutex_unlock(&PoolLock);
                Stop(WDDM_WDK_KIND_POOL, BAD_POOL_CALLER, 0x07, 0, freed.Tag, (ULONG_PTR)P,
                     "%s of pool at %p (tag '%s', %zu bytes) that was already freed (a double free)",
                     Routine, P, TagName(freed.Tag), (size_t)freed.Size);
            }
        }
        pthread_mutex_unlock(&PoolLock);
        Stop(WDDM_WDK_KIND_POOL, BAD_POOL_CALLER, 0x42, (ULONG_PTR)P, 0, 0,
             "%s of %p, which is not pool (never allocated from it)", Routine, P);
    }
    BLOCK block = Blocks[i];
    KIRQL limit = IsPaged(block.PoolType) ? APC_LEVEL : DISPATCH_LEVEL;
    if (CurrentIrql > limit) {
        pthread_mutex_unlock(&PoolLock);
        Stop(WDDM_WDK_KIND_POOL, BAD_POOL_CALLER, 0x09, CurrentIrql, block.PoolType, (ULONG_PTR)P,
             "%s of %s pool at IRQL %u", Routine, IsPaged(block.PoolType) ? "paged" : "nonpaged",
             CurrentIrql);
    }
    if (CheckTag && Tag != block.Tag) {
        char allocated[5];
        memcpy(allocated, TagName(block.Tag), 5);
        pthread_mutex_unlock(&PoolLock);
        Stop(WDDM_WDK_KIND_POOL, BAD_POOL_CALLER, 0x0A, (ULONG_PTR)P, block.Tag, Tag,
             "%s of pool at %p allocated with tag '%s' names tag '%s'", Routine, P, allocated,
             TagName(Tag));
    }
    Blocks[i] = Blocks[--BlockCount];
    if (QuarantineCount == QUARANTINE) {
        UNPOISON(Quarantine[QuarantineNext].Address, Quarantine[QuarantineNext].Size);
        free(Quarantine[QuarantineNext].Address);
    } else {
        QuarantineCount++;
    }
    POISON(block.Address, block.Size); /* special pool: a use after free is caught (ASan builds) */
    Quarantine[QuarantineNext] = block;
    QuarantineNext = (QuarantineNext + 1) % QUARANTINE;
    pthread_mutex_unlock(&PoolLock);
}

void ExFreePoolWithTag(PVOID P, ULONG Tag) { Free(P, Tag, 1, "ExFreePoolWithTag"); }

void ExFreePool(PVOID P) { Free(P, 0, 0, "ExFreePool"); }

uint32_t WddmWdkPoolBlocks(uint64_t Scope, WDDM_WDK_POOLBLOCK *Out, uint32_t Max) {
    uint32_t found = 0;
    pthread_mutex_lock(&PoolLock);
    for (size_t i = 0; i < BlockCount; i++) {
        if (Scope != UINT64_MAX && Blocks[i].Scope != Scope)
            continue;
        if (found < Max)
            Out[found] = (WDDM_WDK_POOLBLOCK){(uint64_t)(uintptr_t)Blocks[i].Address, Blocks[i].Size,
                                              Blocks[i].Tag, Blocks[i].PoolType, Blocks[i].Scope};
        found++;
    }
    pthread_mutex_unlock(&PoolLock);
    return found;
}

/* ------------------------------------------------------------------ special pool (ASan builds) */

/* Built with AddressSanitizer, the runtime names the pool block a memory error hit, as
 * Driver Verifier's special pool would stop Windows at the access: one line on stderr
 * after ASan's report, "wddm-conformance: special pool: ...". */
#ifdef WDDM_WDK_ASAN
void __asan_set_error_report_callback(void (*Callback)(const char *));
void *__asan_get_report_address(void);
int __asan_get_report_access_type(void);
size_t __asan_get_report_access_size(void);

static const char *RunningDdi(void);

static void OnSanitizerReport(const char *Report) {
    /* Which DDI, for the harness's finding record (fuzz/sanitizer.py): the driver's own
     * function names (SampleRender) say nothing of it. ASan calls this on the faulting
     * thread before it dies; the death callback would be libFuzzer's to lose (it saves the
     * crash input there). */
    const char *ddi = RunningDdi();
    if (ddi != NULL)
        fprintf(stderr, "wddm-conformance: in %s\n", ddi);
    uintptr_t address = (uintptr_t)__asan_get_report_address();
    const char *access = __asan_get_report_access_type() ? "write" : "read";
    size_t width = __asan_get_report_access_size();
    char line[256] = "";
    (void)Report;
    if (pthread_mutex_trylock(&PoolLock) != 0)
        return; /* the error is inside the pool's own bookkeeping: ASan's report says it all */
    for (size_t q = 0; q < QuarantineCount && !line[0]; q++) {
        uintptr_t start = (uintptr_t)Quarantine[q].Address;
        if (address >= start && address - start < Quarantine[q].Size)
            snprintf(line, sizeof line,
                     "a %zu-byte %s at +%zu of a %zu-byte pool block already freed (tag '%s'): bug check "
                     "0xCC PAGE_FAULT_IN_FREED_SPECIAL_POOL",
                     width, access, (size_t)(address - start), (size_t)Quarantine[q].Size,
                     TagName(Quarantine[q].Tag));
    }
    const BLOCK *nearest = NULL;
    uintptr_t distance = PAGE_SIZE + 1; /* special pool's guard page: the block's neighbourhood */
    for (size_t i = 0; i < BlockCount && !line[0]; i++) {
        uintptr_t start = (uintptr_t)Blocks[i].Address, end = start + Blocks[i].Size;
        uintptr_t d = address >= end ? address - end : address < start ? start - address : distance;
        if (d < distance) {
            distance = d;
            nearest = &Blocks[i];
        }
    }
    if (nearest != NULL && address >= (uintptr_t)nearest->Address)
        snprintf(line, sizeof line,
                 "a %zu-byte %s %zu byte(s) past the end of a %zu-byte pool block (tag '%s'): bug check "
                 "0xD6 DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
                 width, access, (size_t)distance, (size_t)nearest->Size, TagName(nearest->Tag));
    else if (nearest != NULL)
        snprintf(line, sizeof line,
                 "a %zu-byte %s %zu byte(s) before the start of a %zu-byte pool block (tag '%s'): bug check "
                 "0xD6 DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
                 width, access, (size_t)distance, (size_t)nearest->Size, TagName(nearest->Tag));
    pthread_mutex_unlock(&PoolLock);
    if (line[0])
        fprintf(stderr, "wddm-conformance: special pool: %s\n", line);
}
#endif

/* ------------------------------------------------------------------ debug output */

static pthread_mutex_t OutputLock = PTHREAD_MUTEX_INITIALIZER;
static char Output[DEBUG_OUTPUT_LIMIT];
static size_t OutputLength;

static ULONG Print(const char *Prefix, const char *Format, va_list Args) {
    char line[1024];
    int n = snprintf(line, sizeof line, "%s", Prefix);
    if (n < 0)
        n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, Format, Args);
    size_t length = strlen(line);
    while (length && line[length - 1] == '\n')
        length--;
    pthread_mutex_lock(&OutputLock);
    if (OutputLength + length + 1 > sizeof Output) {
        size_t keep = OutputLength / 2;
        memmove(Output, Output + OutputLength - keep, keep);
        OutputLength = keep;
    }
    if (length + 1 <= sizeof Output - OutputLength) {
        memcpy(Output + OutputLength, line, length);
        OutputLength += length;
        Output[OutputLength++] = '\n';
    }
    pthread_mutex_unlock(&OutputLock);
    return 0; /* STATUS_SUCCESS */
}

ULONG DbgPrint(PCSTR Format, ...) {
    va_list args;
    va_start(args, Format);
    ULONG status = Print("", Format, args);
    va_end(args);
    return status;
}

ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...) {
    static const char *names[] = {"ERROR", "WARNING", "TRACE", "INFO"};
    char prefix[48];
    if (Level < 4)
        snprintf(prefix, sizeof prefix, "[%s] ", names[Level]);
    else
        snprintf(prefix, sizeof prefix, "[level 0x%X] ", (unsigned)Level);
    (void)ComponentId;
    va_list args;
    va_start(args, Format);
    ULONG status = Print(prefix, Format, args);
    va_end(args);
    return status;
}

uint32_t WddmWdkDebugOutput(char *Buffer, uint32_t Size) {
    pthread_mutex_lock(&OutputLock);
    size_t n = OutputLength < Size ? OutputLength : Size;
    memcpy(Buffer, Output, n);
    memmove(Output, Output + n, OutputLength - n);
    OutputLength -= n;
    pthread_mutex_unlock(&OutputLock);
    return (uint32_t)n;
}

/* ------------------------------------------------------------------ events and fast mutexes */

#define DRIVER_VERIFIER_DETECTED_VIOLATION 0xC4u
#define VERIFIER_DEADLOCK_RECURSIVE 0x1001u      /* a lock acquired again by its owner */
#define VERIFIER_FAST_MUTEX_ABOVE_APC 0x20005u   /* ExAcquireFastMutex above APC_LEVEL */
#define RESOURCE_NOT_OWNED 0xE3u
#define VIDEO_TDR_FAILURE 0x116u
#define MAX_HELD_MUTEXES 16
#define KEVENT_SIZE_IN_LONGS ((UCHAR)(sizeof(KEVENT) / sizeof(LONG)))

typedef struct {
    PFAST_MUTEX Mutex;
    const char *File;
    int Line;
} HELD_MUTEX;

static __thread HELD_MUTEX HeldMutexes[MAX_HELD_MUTEXES];
static __thread unsigned HeldMutexCount;
static __thread char ThreadIdentity; /* its address names this thread as a mutex's Owner */

void KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State) {
    memset(Event, 0, sizeof *Event);
    Event->Header.Type = (UCHAR)Type;
    Event->Header.Size = KEVENT_SIZE_IN_LONGS;
    __atomic_store_n(&Event->Header.SignalState, State ? 1 : 0, __ATOMIC_RELEASE);
    Event->Header.WaitListHead.Flink = Event->Header.WaitListHead.Blink = &Event->Header.WaitListHead;
}

static void RequireEvent(PRKEVENT Event, const char *Routine, ULONG_PTR Caller) {
    if (Event == NULL || Event->Header.Size != KEVENT_SIZE_IN_LONGS || Event->Header.Type > SynchronizationEvent)
        Stop(WDDM_WDK_KIND_EXCEPTION, KMODE_EXCEPTION_NOT_HANDLED, (ULONG_PTR)(ULONG)STATUS_INVALID_PARAMETER,
             Caller, 0, (ULONG_PTR)Event,
             "%s on %p, which is not an event initialised by KeInitializeEvent (only events are waitable "
             "here)",
             Routine, (void *)Event);
}

static void RequireIrqlAtMost(KIRQL Limit, const void *Object, const char *Routine, ULONG_PTR Caller) {
    if (CurrentIrql > Limit)
        Stop(WDDM_WDK_KIND_IRQL, IRQL_NOT_LESS_OR_EQUAL, (ULONG_PTR)Object, CurrentIrql, 0, Caller,
             "%s at IRQL %u (allowed up to %u)", Routine, CurrentIrql, Limit);
}

LONG KeSetEvent(PRKEVENT Event, LONG Increment, BOOLEAN Wait) {
    ULONG_PTR caller = (ULONG_PTR)__builtin_return_address(0);
    (void)Increment;
    (void)Wait;
    RequireEvent(Event, "KeSetEvent", caller);
    RequireIrqlAtMost(DISPATCH_LEVEL, Event, "KeSetEvent", caller);
    return __atomic_exchange_n(&Event->Header.SignalState, 1, __ATOMIC_ACQ_REL);
}

LONG KeResetEvent(PRKEVENT Event) {
    ULONG_PTR caller = (ULONG_PTR)__builtin_return_address(0);
    RequireEvent(Event, "KeResetEvent", caller);
    RequireIrqlAtMost(DISPATCH_LEVEL, Event, "KeResetEvent", caller);
    return __atomic_exchange_n(&Event->Header.SignalState, 0, __ATOMIC_ACQ_REL);
}

void KeClearEvent(PRKEVENT Event) {
    ULONG_PTR caller = (ULONG_PTR)__builtin_return_address(0);
    RequireEvent(Event, "KeClearEvent", caller);
    __atomic_store_n(&Event->Header.SignalState, 0, __ATOMIC_RELEASE);
}

LONG KeReadStateEvent(PRKEVENT Event) {
    RequireEvent(Event, "KeReadStateEvent", (ULONG_PTR)__builtin_return_address(0));
    return __atomic_load_n(&Event->Header.SignalState, __ATOMIC_ACQUIRE);
}

NTSTATUS KeWaitForSingleObject(PVOID Object, KWAIT_REASON WaitReason, KPROCESSOR_MODE WaitMode,
                               BOOLEAN Alertable, PLARGE_INTEGER Timeout) {
    ULONG_PTR caller = (ULONG_PTR)__builtin_return_address(0);
    PRKEVENT event = Object;
    (void)WaitReason;
    (void)WaitMode;
    (void)Alertable;
    RequireEvent(event, "KeWaitForSingleObject", caller);
    int zero = Timeout != NULL && Timeout->QuadPart == 0;
    RequireIrqlAtMost(zero ? DISPATCH_LEVEL : APC_LEVEL, Object,
                      zero ? "KeWaitForSingleObject (zero timeout)" : "KeWaitForSingleObject", caller);
    if (event->Header.Type == SynchronizationEvent) {
        if (__atomic_exchange_n(&event->Header.SignalState, 0, __ATOMIC_ACQ_REL) != 0)
            return STATUS_SUCCESS;
    } else if (__atomic_load_n(&event->Header.SignalState, __ATOMIC_ACQUIRE) != 0) {
        return STATUS_SUCCESS;
    }
    if (Timeout != NULL)
        return STATUS_TIMEOUT;
    Stop(WDDM_WDK_KIND_HANG, VIDEO_TDR_FAILURE, (ULONG_PTR)Object, caller, 0, 0,
         "KeWaitForSingleObject with no timeout on event %p, which is not signalled and which "
         "nothing can signal while the DDI waits: it would never return",
         Object);
}

void ExInitializeFastMutex(PFAST_MUTEX FastMutex) {
    memset(FastMutex, 0, sizeof *FastMutex);
    KeInitializeEvent(&FastMutex->Event, SynchronizationEvent, FALSE);
    __atomic_store_n(&FastMutex->Count, 1, __ATOMIC_RELEASE);
}

void WddmWdkAcquireFastMutex(PFAST_MUTEX FastMutex, BOOLEAN Try, BOOLEAN *Acquired, const char *File,
                             int Line) {
    const char *routine = Try ? "ExTryToAcquireFastMutex" : "ExAcquireFastMutex";
    if (CurrentIrql > APC_LEVEL)
        Stop(WDDM_WDK_KIND_IRQL, DRIVER_VERIFIER_DETECTED_VIOLATION, VERIFIER_FAST_MUTEX_ABOVE_APC,
             (ULONG_PTR)FastMutex, CurrentIrql, 0, "%s at IRQL %u (allowed up to APC_LEVEL) at %s:%d",
             routine, CurrentIrql, File, Line);
    if (__atomic_load_n(&FastMutex->Owner, __ATOMIC_ACQUIRE) == (PVOID)&ThreadIdentity) {
        if (Try) {
            *Acquired = FALSE;
            return;
        }
        const char *file = "?";
        int line = 0;
        for (unsigned i = 0; i < HeldMutexCount; i++)
            if (HeldMutexes[i].Mutex == FastMutex)
                file = HeldMutexes[i].File, line = HeldMutexes[i].Line;
        Stop(WDDM_WDK_KIND_HANG, DRIVER_VERIFIER_DETECTED_VIOLATION, VERIFIER_DEADLOCK_RECURSIVE,
             (ULONG_PTR)FastMutex, (ULONG_PTR)&ThreadIdentity, 0,
             "fast mutex %p acquired at %s:%d is acquired again at %s:%d by its owner (a deadlock)",
             (void *)FastMutex, file, line, File, Line);
    }
    KIRQL old = CurrentIrql;
    CurrentIrql = APC_LEVEL;
    LONG_PTR free_ = 1;
    while (!__atomic_compare_exchange_n(&FastMutex->Count, &free_, 0, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        if (Try) {
            CurrentIrql = old;
            *Acquired = FALSE;
            return;
        }
        free_ = 1;
        FastMutex->Contention++;
        sched_yield(); /* owned by another thread: it releases it */
    }
    __atomic_store_n(&FastMutex->Owner, (PVOID)&ThreadIdentity, __ATOMIC_RELEASE);
    FastMutex->OldIrql = old;
    if (HeldMutexCount < MAX_HELD_MUTEXES)
        HeldMutexes[HeldMutexCount++] = (HELD_MUTEX){FastMutex, File, Line};
    if (Acquired != NULL)
        *Acquired = TRUE;
}

void ExReleaseFastMutex(PFAST_MUTEX FastMutex) {
    if (__atomic_load_n(&FastMutex->Owner, __ATOMIC_ACQUIRE) != (PVOID)&ThreadIdentity)
        Stop(WDDM_WDK_KIND_DRIVER, RESOURCE_NOT_OWNED, (ULONG_PTR)FastMutex, (ULONG_PTR)&ThreadIdentity, 0, 0,
             "ExReleaseFastMutex of fast mutex %p, which this thread does not own", (void *)FastMutex);
    unsigned i = 0;
    while (i < HeldMutexCount && HeldMutexes[i].Mutex != FastMutex)
        i++;
    if (i < HeldMutexCount)
        HeldMutexes[i] = HeldMutexes[--HeldMutexCount];
    KIRQL old = (KIRQL)FastMutex->OldIrql;
    __atomic_store_n(&FastMutex->Owner, NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&FastMutex->Count, 1, __ATOMIC_RELEASE);
    KeLowerIrql(old);
}

/* For WddmWdkInvoke: a DDI that returns owning a fast mutex is 0x4A. */
static void CheckNoMutexHeld(WDDM_WDK_CALL *Call, unsigned Outer) {
    if (Call->CheckReturn && HeldMutexCount > Outer)
        Stop(WDDM_WDK_KIND_IRQL, IRQL_GT_ZERO_AT_SYSTEM_SERVICE, 0, CurrentIrql, HeldMutexCount - Outer,
             (ULONG_PTR)HeldMutexes[Outer].Mutex, "returned owning fast mutex %p (acquired at %s:%d)%s",
             (void *)HeldMutexes[Outer].Mutex, HeldMutexes[Outer].File, HeldMutexes[Outer].Line,
             HeldMutexCount - Outer > 1 ? " and others" : "");
}

/* ------------------------------------------------------------------ the kernel's handle callbacks */

typedef uint64_t (*HANDLE_QUERY)(uint32_t Op, uint32_t Handle, uint32_t Argument, uint32_t Flags);

static uint64_t QueryHandles(uint32_t Op, uint32_t Handle, uint32_t Argument, uint32_t Flags) {
    WDDM_WDK_CALL *call = Running;
    if (call == NULL || call->HandleQuery == NULL)
        return 0; /* outside a DDI the harness called: no handle is valid */
    return ((HANDLE_QUERY)call->HandleQuery)(Op, Handle, Argument, Flags);
}

static void RequireArguments(const void *Arguments, const char *Routine, ULONG_PTR Caller) {
    if (Arguments == NULL)
        Stop(WDDM_WDK_KIND_EXCEPTION, KMODE_EXCEPTION_NOT_HANDLED, (ULONG_PTR)(ULONG)STATUS_ACCESS_VIOLATION,
             Caller, 0, 0, "%s(NULL): the kernel reads its arguments from address 0", Routine);
}

static PVOID APIENTRY CbGetHandleData(const DXGKARGCB_GETHANDLEDATA *pData) {
    RequireArguments(pData, "DxgkCbGetHandleData", (ULONG_PTR)__builtin_return_address(0));
    return (PVOID)(uintptr_t)QueryHandles(WDDM_WDK_HANDLE_DATA, pData->hObject, (uint32_t)pData->Type,
                                          pData->Flags.Value);
}

static D3DKMT_HANDLE APIENTRY CbGetHandleParent(D3DKMT_HANDLE hAllocation) {
    RequireIrqlAtMost(APC_LEVEL, NULL, "DxgkCbGetHandleParent", (ULONG_PTR)__builtin_return_address(0));
    return (D3DKMT_HANDLE)QueryHandles(WDDM_WDK_HANDLE_PARENT, hAllocation, 0, 0);
}

static D3DKMT_HANDLE APIENTRY CbEnumHandleChildren(const DXGKARGCB_ENUMHANDLECHILDREN *pData) {
    ULONG_PTR caller = (ULONG_PTR)__builtin_return_address(0);
    RequireArguments(pData, "DxgkCbEnumHandleChildren", caller);
    RequireIrqlAtMost(PASSIVE_LEVEL, pData, "DxgkCbEnumHandleChildren", caller);
    return (D3DKMT_HANDLE)QueryHandles(WDDM_WDK_HANDLE_CHILD, pData->hObject, pData->Index, 0);
}

void WddmWdkKernelInterface(WDDM_WDK_DXGKRNL_INTERFACE *Interface) {
    DXGKRNL_INTERFACE *kernel = (DXGKRNL_INTERFACE *)(void *)Interface;
    kernel->DxgkCbGetHandleData = CbGetHandleData;
    kernel->DxgkCbGetHandleParent = CbGetHandleParent;
    kernel->DxgkCbEnumHandleChildren = CbEnumHandleChildren;
}

/* ------------------------------------------------------------------ WPP tracing */

/* WPP_INIT_TRACING .. WPP_CLEANUP: messages outside are not traced, as on Windows. */
static int WppTracing;

void WddmWdkWppInit(PVOID DriverObject, PVOID RegistryPath) {
    (void)DriverObject;
    (void)RegistryPath;
    __atomic_store_n(&WppTracing, 1, __ATOMIC_RELEASE);
}

void WddmWdkWppCleanup(PVOID DriverObject) {
    (void)DriverObject;
    __atomic_store_n(&WppTracing, 0, __ATOMIC_RELEASE);
}

typedef struct {
    char *Text;
    size_t Size, Length;
} TEXT;

static void Append(TEXT *Out, const char *Text, size_t Length) {
    size_t room = Out->Size - 1 - Out->Length;
    if (Length > room)
        Length = room;
    memcpy(Out->Text + Out->Length, Text, Length);
    Out->Length += Length;
    Out->Text[Out->Length] = 0;
}

static void AppendF(TEXT *Out, const char *Format, ...) __attribute__((format(printf, 2, 3)));
static void AppendF(TEXT *Out, const char *Format, ...) {
    char piece[512];
    va_list args;
    va_start(args, Format);
    int n = vsnprintf(piece, sizeof piece, Format, args);
    va_end(args);
    if (n > 0)
        Append(Out, piece, (size_t)n < sizeof piece ? (size_t)n : sizeof piece - 1);
}

static void AppendWide(TEXT *Out, const WCHAR *Text, size_t Count) {
    for (size_t i = 0; Text != NULL && i < Count && Text[i] != 0; i++) {
        char c = Text[i] < 0x80 ? (char)Text[i] : '?';
        Append(Out, &c, 1);
    }
}

/* One printf conversion of a WPP format at *Format (after the '%'): appends it, consuming
 * its argument; returns 0 for a conversion it does not know (the rest is not formatted). */
static int Convert(TEXT *Out, const char **Format, va_list *Args) {
    const char *p = *Format;
    char spec[32] = "%";
    size_t n = 1;
    while (*p && strchr("-+ #0", *p) && n < 8)
        spec[n++] = *p++;
    if (*p == '*') {
        n += (size_t)snprintf(spec + n, sizeof spec - n, "%d", va_arg(*Args, int));
        p++;
    } else {
        while (*p >= '0' && *p <= '9' && n < 16)
            spec[n++] = *p++;
    }
    if (*p == '.') {
        spec[n++] = *p++;
        if (*p == '*') {
            n += (size_t)snprintf(spec + n, sizeof spec - n, "%d", va_arg(*Args, int));
            p++;
        } else {
            while (*p >= '0' && *p <= '9' && n < 24)
                spec[n++] = *p++;
        }
    }
    int size = 0; /* 0 int, 1 long, 2 long long, 3 size_t, -1 short, -2 char */
    if (strncmp(p, "I64", 3) == 0) size = 2, p += 3;
    else if (strncmp(p, "I32", 3) == 0) size = 0, p += 3;
    else if (*p == 'I') size = 3, p += 1;
    else if (p[0] == 'l' && p[1] == 'l') size = 2, p += 2;
    else if (*p == 'l' || *p == 'L') size = 1, p += 1;
    else if (p[0] == 'h' && p[1] == 'h') size = -2, p += 2;
    else if (*p == 'h') size = -1, p += 1;
    else if (*p == 'z' || *p == 't' || *p == 'j') size = 3, p += 1;
    char conversion = *p;
    if (conversion == 'w' && (p[1] == 's' || p[1] == 'Z'))
        conversion = (char)(p[1] == 's' ? 'S' : 'W'), p++;
    if (conversion == 0)
        return 0;
    p++;
    *Format = p;
    switch (conversion) {
    case 'd': case 'i': {
        long long v = size == 2 ? va_arg(*Args, long long) : size == 1 ? va_arg(*Args, long)
                    : size == 3 ? (long long)va_arg(*Args, ptrdiff_t) : va_arg(*Args, int);
        if (size == -1) v = (short)v;
        if (size == -2) v = (signed char)v;
        strcpy(spec + n, "lld");
        AppendF(Out, spec, v);
        return 1;
    }
    case 'u': case 'x': case 'X': case 'o': {
        unsigned long long v = size == 2 ? va_arg(*Args, unsigned long long)
                             : size == 1 ? va_arg(*Args, unsigned long)
                             : size == 3 ? (unsigned long long)va_arg(*Args, size_t) : va_arg(*Args, unsigned);
        if (size == -1) v = (unsigned short)v;
        if (size == -2) v = (unsigned char)v;
        spec[n++] = 'l';
        spec[n++] = 'l';
        spec[n++] = conversion;
        spec[n] = 0;
        AppendF(Out, spec, v);
        return 1;
    }
    case 'c':
        strcpy(spec + n, "c");
        AppendF(Out, spec, va_arg(*Args, int));
        return 1;
    case 's': {
        const char *text = va_arg(*Args, const char *);
        strcpy(spec + n, "s");
        AppendF(Out, spec, text ? text : "(null)");
        return 1;
    }
    case 'S': /* %ws, %S: a wide string */
        AppendWide(Out, va_arg(*Args, const WCHAR *), (size_t)-1);
        return 1;
    case 'W': { /* %wZ: a PCUNICODE_STRING */
        PCUNICODE_STRING u = va_arg(*Args, PCUNICODE_STRING);
        if (u != NULL)
            AppendWide(Out, u->Buffer, u->Length / sizeof(WCHAR));
        return 1;
    }
    case 'p':
        AppendF(Out, "%p", va_arg(*Args, void *)); /* glibc writes the 0x */
        return 1;
    default:
        return 0;
    }
}

static const char *BaseName(const char *File) {
    const char *slash = strrchr(File, '/');
    return slash ? slash + 1 : File;
}

void WddmWdkWppMessage(const char *Flag, ULONG Level, const char *File, int Line, const char *Function,
                       const char *Format, ...) {
    static const char *levels[] = {"", "CRITICAL", "ERROR", "WARNING", "INFORMATION", "VERBOSE"};
    char buffer[1024];
    TEXT out = {buffer, sizeof buffer, 0};
    va_list args;
    if (!__atomic_load_n(&WppTracing, __ATOMIC_ACQUIRE))
        return;
    buffer[0] = 0;
    if (Level == 0)
        AppendF(&out, "[WPP %s] ", Flag);
    else
        AppendF(&out, "[WPP %s %s] ", Flag, Level < 6 ? levels[Level] : "LEVEL");
    va_start(args, Format);
    for (const char *p = Format; p != NULL && *p;) {
        const char *percent = strchr(p, '%');
        if (percent == NULL) {
            Append(&out, p, strlen(p));
            break;
        }
        Append(&out, p, (size_t)(percent - p));
        p = percent + 1;
        if (*p == '%') {
            Append(&out, "%", 1);
            p++;
        } else if (*p == '!') {
            const char *end = strchr(p + 1, '!');
            size_t length = end ? (size_t)(end - p - 1) : 0;
            const char *name = p + 1;
#define WPP_IS(literal) (length == sizeof(literal) - 1 && strncmp(name, literal, length) == 0)
            if (end == NULL) {
                Append(&out, percent, strlen(percent));
                break;
            } else if (WPP_IS("FUNC")) {
                Append(&out, Function, strlen(Function));
            } else if (WPP_IS("FILE")) {
                Append(&out, BaseName(File), strlen(BaseName(File)));
            } else if (WPP_IS("LINE")) {
                AppendF(&out, "%d", Line);
            } else if (WPP_IS("LEVEL")) {
                AppendF(&out, "%s", Level < 6 ? levels[Level] : "LEVEL");
            } else if (WPP_IS("FLAGS")) {
                Append(&out, Flag, strlen(Flag));
            } else if (WPP_IS("STATUS") || WPP_IS("HRESULT")) {
                AppendF(&out, "0x%08X", (unsigned)va_arg(args, int));
            } else if (WPP_IS("bool") || WPP_IS("BOOLEAN")) {
                int value = va_arg(args, int);
                Append(&out, value ? "TRUE" : "FALSE", value ? 4 : 5);
            } else {
                AppendF(&out, "%%!%.*s! (not supported: the rest is not formatted)", (int)length, name);
                break;
            }
#undef WPP_IS
            p = end + 1;
        } else if (!Convert(&out, &p, &args)) {
            AppendF(&out, "%%%s (not supported: the rest is not formatted)", p);
            break;
        }
    }
    va_end(args);
    DbgPrint("%s", buffer);
}

/* ------------------------------------------------------------------ calls */

typedef NTSTATUS (*ARGS0)(void);
typedef NTSTATUS (*ARGS1)(void *);
typedef NTSTATUS (*ARGS2)(void *, void *);
typedef NTSTATUS (*ARGS3)(void *, void *, void *);
typedef NTSTATUS (*ARGS4)(void *, void *, void *, void *);
typedef NTSTATUS (*ARGS5)(void *, void *, void *, void *, void *);

int32_t WddmWdkInvoke(WDDM_WDK_CALL *Call) {
    jmp_buf landing;
    WDDM_WDK_CALL *outer = Running;
    jmp_buf *outerLanding = Landing;
    WDDM_WDK_SEH_FRAME *outerFrames = Frames;
    KIRQL outerIrql = CurrentIrql;
    unsigned outerHeld = HeldCount;
    unsigned outerMutexes = HeldMutexCount;
    volatile int32_t stopped = 0;
    void **a = Call->Arguments;

    Call->Status = 0;
    Call->BugCheckCode = 0;
    Call->Kind = WDDM_WDK_KIND_NONE;
    Call->Message[0] = 0;
    memset(Call->Frames, 0, sizeof Call->Frames);
    FaultInstruction = 0;
    Running = Call;
    Landing = &landing;
    Frames = NULL;
    CurrentIrql = PASSIVE_LEVEL; /* the DDIs of this suite are called at PASSIVE_LEVEL */
    HeldCount = 0;
    if (setjmp(landing) == 0) {
        NTSTATUS status;
        switch (Call->ArgumentCount) {
        case 0: status = ((ARGS0)Call->Function)(); break;
        case 1: status = ((ARGS1)Call->Function)(a[0]); break;
        case 2: status = ((ARGS2)Call->Function)(a[0], a[1]); break;
        case 3: status = ((ARGS3)Call->Function)(a[0], a[1], a[2]); break;
        case 4: status = ((ARGS4)Call->Function)(a[0], a[1], a[2], a[3]); break;
        default: status = ((ARGS5)Call->Function)(a[0], a[1], a[2], a[3], a[4]); break;
        }
        Call->Status = status;
        CheckNoMutexHeld(Call, outerMutexes);
        if (Call->CheckReturn && HeldCount > 0)
            Stop(WDDM_WDK_KIND_IRQL, IRQL_GT_ZERO_AT_SYSTEM_SERVICE, 0, CurrentIrql, HeldCount,
                 (ULONG_PTR)Held[0].Lock, "returned holding spin lock %p (taken at %s:%d)%s",
                 (void *)Held[0].Lock, Held[0].File, Held[0].Line, HeldCount > 1 ? " and others" : "");
        if (Call->CheckReturn && CurrentIrql != PASSIVE_LEVEL)
            Stop(WDDM_WDK_KIND_IRQL, IRQL_GT_ZERO_AT_SYSTEM_SERVICE, 0, CurrentIrql, 0, 0,
                 "returned at IRQL %u, not at PASSIVE_LEVEL where it was called", CurrentIrql);
    } else {
        stopped = 1;
    }
    Running = outer;
    Landing = outerLanding;
    Frames = outerFrames;
    CurrentIrql = outerIrql;
    HeldCount = outerHeld;
    HeldMutexCount = outerMutexes;
    return stopped;
}

/* ------------------------------------------------------------------ registration */

static pthread_mutex_t EntryLock = PTHREAD_MUTEX_INITIALIZER;
static DRIVER_OBJECT Driver;
static DRIVER_EXTENSION Extension;
static UNICODE_STRING RegistryPath;
static WCHAR RegistryPathText[96];
static DRIVER_INITIALIZATION_DATA Registered;
static int RegisteredOnce, Entered;
static WDDM_WDK_CALL EntryCall;

NTSTATUS DxgkInitialize(PDRIVER_OBJECT DriverObject, PUNICODE_STRING Path,
                        PDRIVER_INITIALIZATION_DATA DriverInitializationData) {
    if (DriverObject != &Driver || Path != &RegistryPath || DriverInitializationData == NULL)
        return STATUS_INVALID_PARAMETER;
    if (DriverInitializationData->Version < DXGKDDI_INTERFACE_VERSION_VISTA)
        return STATUS_NOT_SUPPORTED;
    if (RegisteredOnce)
        return STATUS_UNSUCCESSFUL;
    Registered = *DriverInitializationData;
    RegisteredOnce = 1;
    return STATUS_SUCCESS;
}

const void *WddmWdkDriverEntry(WDDM_WDK_CALL *Call) {
    pthread_mutex_lock(&EntryLock);
    if (!Entered) {
#ifdef WDDM_WDK_ASAN
        __asan_set_error_report_callback(OnSanitizerReport);
#endif
        void *first[1];
        backtrace(first, 1); /* loads the unwinder now, not in a signal handler */
        LoadBase();
        static const char path[] = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\wddmconf";
        size_t n = 0;
        for (; path[n] && n < RTL_NUMBER_OF(RegistryPathText); n++)
            RegistryPathText[n] = (WCHAR)path[n];
        RegistryPath = (UNICODE_STRING){(USHORT)(2 * n), (USHORT)sizeof RegistryPathText, RegistryPathText};
        Driver.Type = 4; /* IO_TYPE_DRIVER */
        Driver.Size = (CSHORT)sizeof Driver;
        Driver.DriverExtension = &Extension;
        Driver.DriverInit = DriverEntry;
        Extension.DriverObject = &Driver;
        memset(&EntryCall, 0, sizeof EntryCall);
        EntryCall.Function = (void *)DriverEntry;
        EntryCall.ArgumentCount = 2;
        EntryCall.Arguments[0] = &Driver;
        EntryCall.Arguments[1] = &RegistryPath;
        EntryCall.CheckReturn = 1;
        WddmWdkInvoke(&EntryCall);
        Entered = 1;
    }
    *Call = EntryCall;
    const void *data = (RegisteredOnce && EntryCall.BugCheckCode == 0 && EntryCall.Status == 0) ? &Registered : NULL;
    pthread_mutex_unlock(&EntryLock);
    return data;
}

#define DDI(name) {#name, offsetof(DRIVER_INITIALIZATION_DATA, name)}
static const struct {
    const char *Name;
    size_t Offset;
} DdiOffsets[] = {
    DDI(DxgkDdiAddDevice),        DDI(DxgkDdiStartDevice),       DDI(DxgkDdiStopDevice),
    DDI(DxgkDdiRemoveDevice),     DDI(DxgkDdiUnload),            DDI(DxgkDdiQueryAdapterInfo),
    DDI(DxgkDdiCreateDevice),     DDI(DxgkDdiCreateAllocation),  DDI(DxgkDdiDestroyAllocation),
    DDI(DxgkDdiPatch),            DDI(DxgkDdiSubmitCommand),     DDI(DxgkDdiBuildPagingBuffer),
    DDI(DxgkDdiDestroyDevice),    DDI(DxgkDdiOpenAllocation),    DDI(DxgkDdiCloseAllocation),
    DDI(DxgkDdiRender),           DDI(DxgkDdiCreateContext),     DDI(DxgkDdiDestroyContext),
};

/* The DDI the running call entered: the DRIVER_INITIALIZATION_DATA member that holds its
 * function ("DxgkDdiRender"), "DriverEntry", or NULL (no call, or a function of no member). */
static __attribute__((unused)) const char *RunningDdi(void) {
    WDDM_WDK_CALL *call = Running;
    if (call == NULL)
        return NULL;
    if (call->Function == (void *)DriverEntry)
        return "DriverEntry";
    for (size_t i = 0; i < RTL_NUMBER_OF(DdiOffsets); i++) {
        void *member;
        memcpy(&member, (const char *)&Registered + DdiOffsets[i].Offset, sizeof member);
        if (member != NULL && member == call->Function)
            return DdiOffsets[i].Name;
    }
    return NULL;
}

int32_t WddmWdkDdiOffset(const char *Name) {
    for (size_t i = 0; i < RTL_NUMBER_OF(DdiOffsets); i++)
        if (strcmp(DdiOffsets[i].Name, Name) == 0)
            return (int32_t)DdiOffsets[i].Offset;
    return -1;
}

/* ------------------------------------------------------------------ direct reads of user memory
 *
 * A driver reads user memory directly (`*(ULONG *)p`, its own memcpy, a structure copy),
 * not only with RtlCopyMemory. While a trace is begun (WddmWdkTraceBegin, around a DDI
 * that takes user memory) the pages of its ranges are PROT_NONE. A read there faults:
 * OnTracedFault logs it (address, length decoded from the instruction, instruction
 * pointer) in the trace's fixed log (no allocation in a signal handler), makes the page
 * readable and sets the trap flag; after that one instruction the processor traps
 * (SIGTRAP) and OnTracedStep protects the page again and clears the flag. So every read
 * is seen, in order, and the harness replays the log into its UserBuffer (read log,
 * TOCTOU). A TOCTOU race fires when the read that covered its offset is over (EndRead).
 *
 * A fault at or past a range's Guard (an injected fault) is not a read: it goes to
 * OnFault, the access violation for the driver's __try. A read or write of the call's
 * user memory above APC_LEVEL is bug check 0xD1, as RtlCopyMemory's. One instruction may
 * fault on a second traced page while its step is pending (a read across a page
 * boundary): that page is opened too, without another log entry. Writes (the page-fault
 * error code says so) are not logged: the harness judges them after the call.
 *
 * Merging: consecutive reads by one instruction, each starting where the last ended (rep
 * movs, a loop), are one read. Reads by code outside the driver's library (the C
 * library's memcpy, which loads overlapping and out of order) are one read, the bytes
 * from the lowest to the highest, until code of the driver reads, another range is read,
 * or an instruction already seen in that copy reads bytes it read before (a second copy).
 */

#if defined(__x86_64__) && defined(__linux__)
#include <errno.h>
#include <link.h>
#include <unistd.h>

#define TRACE_SLOTS 16
#define TRACE_READS 8192
#define STEP_PAGES 4
#define COPY_INSTRUCTIONS 16
#define TRAP_FLAG 0x100
#define PAGE_FAULT_WRITE 0x2

typedef struct {
    uint64_t Instruction, Lo, Hi;
} COPY_PART;

typedef struct {
    uint32_t Stepping;          /* a step is pending on Thread */
    uint32_t PageCount;
    uint64_t Pages[STEP_PAGES]; /* opened for the step */
    uint64_t Instruction;       /* the instruction being stepped */
    pthread_t Thread;
    int32_t FireRange;          /* the range whose TOCTOU fires when the last read ends, or -1 */
    uint32_t Copying;           /* the last entry is a copy routine's (merging) */
    uint32_t PartCount;
    COPY_PART Parts[COPY_INSTRUCTIONS];
} TRACE_STATE;

_Static_assert(sizeof(TRACE_STATE) <= sizeof(((WDDM_WDK_TRACE *)0)->Private), "TRACE_STATE too large");
_Static_assert(TRACE_READS == sizeof(((WDDM_WDK_TRACE *)0)->Reads) / sizeof(WDDM_WDK_READ), "log size");

static WDDM_WDK_TRACE *volatile Traces[TRACE_SLOTS];
static volatile uint32_t OrphanSteps; /* steps whose trace ended before their trap (a hung call) */
static uint64_t PageSize = 4096;
static uint64_t DriverText[2];        /* [start, end) of this library's executable segment */
static struct sigaction PreviousTraceSegv, PreviousTraceBus, PreviousTrap;
static pthread_once_t TraceHandlerOnce = PTHREAD_ONCE_INIT;

static TRACE_STATE *StateOf(WDDM_WDK_TRACE *Trace) { return (TRACE_STATE *)(void *)Trace->Private; }

static int FindText(struct dl_phdr_info *Info, size_t Size, void *Data) {
    uint64_t here = (uint64_t)(uintptr_t)Data;
    (void)Size;
    for (int i = 0; i < Info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &Info->dlpi_phdr[i];
        uint64_t lo = Info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && here >= lo && here < hi) {
            DriverText[0] = lo;
            DriverText[1] = hi;
            return 1;
        }
    }
    return 0;
}

/* Bytes a load at Code reads (the common integer, SSE and AVX forms); 0 if not decoded. */
static uint32_t DecodeLength(const uint8_t *Code) {
    int w = 0, operand16 = 0, rep = 0, repne = 0;
    const uint8_t *p = Code;
    for (int i = 0; i < 14; i++, p++) {
        uint8_t b = *p;
        if (b == 0x66) operand16 = 1;
        else if (b == 0xF3) rep = 1;
        else if (b == 0xF2) repne = 1;
        else if (b == 0x67 || b == 0xF0 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x26 || b == 0x64 || b == 0x65) continue;
        else break;
    }
    if (*p >= 0x40 && *p <= 0x4F) {
        w = (*p & 0x8) != 0;
        p++;
    }
    uint32_t full = w ? 8 : operand16 ? 2 : 4;
    uint8_t op = *p;
    if (op == 0xC5 || op == 0xC4 || op == 0x62) { /* VEX, EVEX */
        uint32_t vector;
        uint8_t opcode;
        int vw;
        if (op == 0xC5) {
            vector = (p[1] & 0x4) ? 32 : 16;
            vw = 0;
            opcode = p[2];
            operand16 = (p[1] & 3) == 1, rep = (p[1] & 3) == 2, repne = (p[1] & 3) == 3;
        } else if (op == 0xC4) {
            vector = (p[2] & 0x4) ? 32 : 16;
            vw = (p[2] & 0x80) != 0;
            opcode = p[3];
            operand16 = (p[2] & 3) == 1, rep = (p[2] & 3) == 2, repne = (p[2] & 3) == 3;
            if ((p[1] & 0x1F) != 1)
                return vector; /* 0F38 / 0F3A maps: whole-vector operations */
        } else {
            uint32_t ll = (p[3] >> 5) & 3;
            vector = ll == 0 ? 16 : ll == 1 ? 32 : 64;
            vw = (p[2] & 0x80) != 0;
            opcode = p[4];
            operand16 = (p[2] & 3) == 1, rep = (p[2] & 3) == 2, repne = (p[2] & 3) == 3;
            if ((p[1] & 0x3) != 1)
                return vector;
        }
        if ((opcode == 0x10 || opcode == 0x11) && (rep || repne))
            return rep ? 4 : 8; /* vmovss, vmovsd */
        if (opcode == 0x6E || (opcode == 0x7E && !rep))
            return vw ? 8 : 4; /* vmovd, vmovq */
        if (opcode == 0x7E || opcode == 0xD6 || opcode == 0x12 || opcode == 0x13 || opcode == 0x16 || opcode == 0x17)
            return 8;
        return vector;
    }
    if (op == 0x0F) {
        uint8_t op2 = p[1];
        if (op2 == 0xB6 || op2 == 0xBE) return 1;
        if (op2 == 0xB7 || op2 == 0xBF) return 2;
        if ((op2 >= 0x40 && op2 <= 0x4F) || op2 == 0xAF || op2 == 0xB0 || op2 == 0xB1 || op2 == 0xC1 || op2 == 0xC0)
            return op2 == 0xB0 || op2 == 0xC0 ? 1 : full;
        if (op2 == 0x10 || op2 == 0x11) return rep ? 4 : repne ? 8 : 16;
        if (op2 == 0x12 || op2 == 0x13 || op2 == 0x16 || op2 == 0x17 || op2 == 0xD6) return 8;
        if (op2 == 0x6E) return w ? 8 : 4;
        if (op2 == 0x7E) return rep ? 8 : w ? 8 : 4;
        if (op2 == 0x38 || op2 == 0x3A) return 16;
        if (op2 >= 0x50 && op2 <= 0xFE) return (operand16 || rep) ? 16 : 8;
        if (op2 == 0x28 || op2 == 0x29 || op2 == 0x2E || op2 == 0x2F) return 16;
        return 0;
    }
    if (op < 0x40 && (op & 7) < 4) return (op & 1) ? full : 1;  /* add, or, adc, sbb, and, sub, xor, cmp */
    switch (op) {
    case 0x63: return 4;                                             /* movsxd */
    case 0x69: case 0x6B: case 0x81: case 0x83: case 0x85: case 0x87: case 0x89: case 0x8B:
    case 0xC1: case 0xC7: case 0xD1: case 0xD3: case 0xF7: case 0xFF:
    case 0xA5: case 0xA7: case 0xAD: case 0xAF:                      /* movs, cmps, lods, scas */
        return full;
    case 0x80: case 0x82: case 0x84: case 0x86: case 0x88: case 0x8A: case 0xC0: case 0xC6:
    case 0xD0: case 0xD2: case 0xF6: case 0xFE: case 0xA4: case 0xA6: case 0xAC: case 0xAE:
        return 1;
    default:
        return 0;
    }
}

static int FindTraced(uint64_t Address, WDDM_WDK_TRACE **Trace, uint32_t *Range) {
    for (int i = 0; i < TRACE_SLOTS; i++) {
        WDDM_WDK_TRACE *t = __atomic_load_n(&Traces[i], __ATOMIC_ACQUIRE);
        if (t == NULL)
            continue;
        for (uint32_t r = 0; r < t->RangeCount && r < 4; r++) {
            if (Address >= t->Ranges[r].Start && Address < t->Ranges[r].End) {
                *Trace = t;
                *Range = r;
                return 1;
            }
        }
    }
    return 0;
}

static int SetAccess(uint64_t Start, uint64_t End, int Prot) {
    return End > Start ? mprotect((void *)(uintptr_t)Start, (size_t)(End - Start), Prot) : 0;
}

static int ProtectRanges(WDDM_WDK_TRACE *Trace, int Prot) {
    int result = 0;
    for (uint32_t r = 0; r < Trace->RangeCount && r < 4; r++)
        result |= SetAccess(Trace->Ranges[r].Start, Trace->Ranges[r].End, Prot);
    return result;
}

static void EndStep(TRACE_STATE *State) {
    for (uint32_t i = 0; i < State->PageCount; i++)
        SetAccess(State->Pages[i], State->Pages[i] + PageSize, PROT_NONE);
    State->PageCount = 0;
    State->Stepping = 0;
}

static void RememberPart(TRACE_STATE *State, uint64_t Instruction, uint64_t Lo, uint64_t Hi) {
    for (uint32_t i = 0; i < State->PartCount; i++) {
        COPY_PART *part = &State->Parts[i];
        if (part->Instruction == Instruction) {
            part->Lo = Lo < part->Lo ? Lo : part->Lo;
            part->Hi = Hi > part->Hi ? Hi : part->Hi;
            return;
        }
    }
    if (State->PartCount < COPY_INSTRUCTIONS)
        State->Parts[State->PartCount++] = (COPY_PART){Instruction, Lo, Hi};
}

static void FireToctou(WDDM_WDK_TRACE *Trace, uint32_t Range) {
    WDDM_WDK_TRACED_RANGE *range = &Trace->Ranges[Range];
    if (range->ToctouLength == 0)
        return; /* the harness fired it on a copy through RtlCopyMemory */
    uint64_t lo = range->ToctouAddress, hi = lo + range->ToctouLength;
    if (hi > range->Guard)
        hi = range->Guard;
    if (hi > lo) {
        uint64_t first = lo & ~(PageSize - 1), last = (hi + PageSize - 1) & ~(PageSize - 1);
        SetAccess(first, last, PROT_READ | PROT_WRITE);
        memcpy((void *)(uintptr_t)lo, range->ToctouBytes, (size_t)(hi - lo));
        SetAccess(first, last, PROT_NONE);
    }
    range->ToctouLength = 0;
    range->ToctouFired = 1;
}

/* A TOCTOU race fires when the read that covered its offset is over: before the next read
 * that is not merged into it (the harness's model of a read is one copy: a race in the
 * middle of one memcpy or of one loop over the bytes would tear it), or when the call ends. */
static void EndRead(WDDM_WDK_TRACE *Trace, TRACE_STATE *State) {
    if (State->FireRange >= 0)
        FireToctou(Trace, (uint32_t)State->FireRange);
    State->FireRange = -1;
}

/* Reads [Address, Address + Length) again by an instruction of the copy being merged. */
static int Rereads(TRACE_STATE *State, uint64_t Instruction, uint64_t Lo, uint64_t Hi) {
    for (uint32_t i = 0; i < State->PartCount; i++) {
        COPY_PART *part = &State->Parts[i];
        if (part->Instruction == Instruction && Lo < part->Hi && Hi > part->Lo)
            return 1;
    }
    return 0;
}

/* Logs a read (merged into the last one where it continues it). */
static void LogRead(WDDM_WDK_TRACE *Trace, uint32_t Range, uint64_t Address, uint32_t Length, uint64_t Instruction) {
    TRACE_STATE *state = StateOf(Trace);
    uint64_t lo = Address, hi = Address + (Length ? Length : 1);
    int copying = !(Instruction >= DriverText[0] && Instruction < DriverText[1]);
    if (Trace->Written > Trace->Consumed) {
        WDDM_WDK_READ *last = &Trace->Reads[Trace->Written - 1];
        uint64_t lastHi = last->Address + (last->Length ? last->Length : 1);
        if (last->Range == Range && last->Instruction == Instruction && last->Length && Length &&
            Address == lastHi && !state->Copying) {
            last->Length += Length; /* the same instruction going on: rep movs, a loop */
            return;
        }
        if (last->Range == Range && copying && state->Copying && !Rereads(state, Instruction, lo, hi)) {
            uint64_t newLo = lo < last->Address ? lo : last->Address, newHi = hi > lastHi ? hi : lastHi;
            last->Address = newLo;
            last->Length = (uint32_t)(newHi - newLo);
            RememberPart(state, Instruction, lo, hi);
            return;
        }
    }
    EndRead(Trace, state);
    if (Trace->Written >= TRACE_READS) {
        Trace->Lost++;
        return;
    }
    Trace->Reads[Trace->Written] = (WDDM_WDK_READ){Address, Instruction, Length, Range};
    Trace->Written++;
    state->Copying = (uint32_t)copying;
    state->PartCount = 0;
    if (copying) {
        if (Length == 0)
            Trace->Reads[Trace->Written - 1].Length = 1;
        RememberPart(state, Instruction, lo, hi);
    }
}

static void PassOn(struct sigaction *Previous, int Signal, siginfo_t *Info, void *Context) {
    if (Previous->sa_flags & SA_SIGINFO) {
        Previous->sa_sigaction(Signal, Info, Context);
    } else if (Previous->sa_handler == SIG_DFL || Previous->sa_handler == SIG_IGN) {
        sigaction(Signal, Previous, NULL); /* the access runs again and gets the old disposition */
        if (Signal == SIGTRAP)
            raise(SIGTRAP);
    } else {
        Previous->sa_handler(Signal);
    }
}

static void OnTracedFault(int Signal, siginfo_t *Info, void *Context) {
    ucontext_t *uc = Context;
    uint64_t address = (uint64_t)(uintptr_t)Info->si_addr;
    uint64_t instruction = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    WDDM_WDK_TRACE *trace;
    uint32_t r;
    if (Signal == SIGSEGV && FindTraced(address, &trace, &r)) {
        TRACE_STATE *state = StateOf(trace);
        uint64_t page = address & ~(PageSize - 1);
        int pending = state->Stepping && pthread_equal(state->Thread, pthread_self());
        if (address < trace->Ranges[r].Guard) {
            if (pending && state->Instruction == instruction && state->PageCount < STEP_PAGES) {
                SetAccess(page, page + PageSize, PROT_READ | PROT_WRITE); /* the same access, next page */
                state->Pages[state->PageCount++] = page;
                return;
            }
            if (!pending) {
                if (Running != NULL && Landing != NULL && CurrentIrql > APC_LEVEL)
                    Stop(WDDM_WDK_KIND_IRQL, DRIVER_IRQL_NOT_LESS_OR_EQUAL, (ULONG_PTR)address, CurrentIrql,
                         (uc->uc_mcontext.gregs[REG_ERR] & PAGE_FAULT_WRITE) ? 1 : 0, (ULONG_PTR)instruction,
                         "user memory at %p touched at IRQL %u, above APC_LEVEL (it is pageable)",
                         Info->si_addr, CurrentIrql);
                if (!(uc->uc_mcontext.gregs[REG_ERR] & PAGE_FAULT_WRITE)) {
                    uint32_t length = DecodeLength((const uint8_t *)(uintptr_t)instruction);
                    WDDM_WDK_TRACED_RANGE *range = &trace->Ranges[r];
                    uint64_t hi = address + (length ? length : 1);
                    LogRead(trace, r, address, length, instruction);
                    if (range->ToctouLength && address <= range->ToctouAddress && range->ToctouAddress < hi)
                        state->FireRange = (int32_t)r;
                }
                SetAccess(page, page + PageSize, PROT_READ | PROT_WRITE);
                state->Pages[0] = page;
                state->PageCount = 1;
                state->Instruction = instruction;
                state->Thread = pthread_self();
                state->Stepping = 1;
                uc->uc_mcontext.gregs[REG_EFL] |= TRAP_FLAG;
                return;
            }
        }
        if (pending) { /* the step reached the guard (or something odd): no step any more */
            EndStep(state);
            uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)TRAP_FLAG;
        }
    }
    OnFault(Signal, Info, Context);
}

static void OnTracedStep(int Signal, siginfo_t *Info, void *Context) {
    ucontext_t *uc = Context;
    for (int i = 0; i < TRACE_SLOTS; i++) {
        WDDM_WDK_TRACE *t = __atomic_load_n(&Traces[i], __ATOMIC_ACQUIRE);
        if (t == NULL)
            continue;
        TRACE_STATE *state = StateOf(t);
        if (state->Stepping && pthread_equal(state->Thread, pthread_self())) {
            EndStep(state);
            uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)TRAP_FLAG;
            return;
        }
    }
    if (__atomic_load_n(&OrphanSteps, __ATOMIC_ACQUIRE) > 0 && (uc->uc_mcontext.gregs[REG_EFL] & TRAP_FLAG)) {
        __atomic_sub_fetch(&OrphanSteps, 1, __ATOMIC_ACQ_REL);
        uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)TRAP_FLAG;
        return;
    }
    PassOn(&PreviousTrap, Signal, Info, Context);
}

static void OnTracedBus(int Signal, siginfo_t *Info, void *Context) { OnFault(Signal, Info, Context); }

static void InstallTraceHandlers(void) {
    struct sigaction action;
    long size = sysconf(_SC_PAGESIZE);
    if (size > 0)
        PageSize = (uint64_t)size;
    dl_iterate_phdr(FindText, (void *)(uintptr_t)&InstallTraceHandlers);
    /* OnFault (the access violation) must be installed first: it is what these pass on to. */
    pthread_once(&FaultHandlerOnce, InstallFaultHandler);
    memset(&action, 0, sizeof action);
    action.sa_flags = SA_SIGINFO | SA_NODEFER; /* OnFault leaves by longjmp */
    sigemptyset(&action.sa_mask);
    action.sa_sigaction = OnTracedFault;
    sigaction(SIGSEGV, &action, &PreviousTraceSegv);
    action.sa_sigaction = OnTracedBus;
    sigaction(SIGBUS, &action, &PreviousTraceBus);
    action.sa_flags = SA_SIGINFO;
    action.sa_sigaction = OnTracedStep;
    sigaction(SIGTRAP, &action, &PreviousTrap);
}

int32_t WddmWdkTraceSupported(void) { return 1; }

int32_t WddmWdkTraceBegin(WDDM_WDK_TRACE *Trace) {
    pthread_once(&TraceHandlerOnce, InstallTraceHandlers);
    memset(Trace->Private, 0, sizeof Trace->Private);
    StateOf(Trace)->FireRange = -1;
    for (int i = 0; i < TRACE_SLOTS; i++) {
        WDDM_WDK_TRACE *expected = NULL;
        if (__atomic_compare_exchange_n(&Traces[i], &expected, Trace, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            if (ProtectRanges(Trace, PROT_NONE) == 0)
                return 0;
            int error = errno;
            ProtectRanges(Trace, PROT_READ | PROT_WRITE);
            __atomic_store_n(&Traces[i], NULL, __ATOMIC_RELEASE);
            errno = error;
            return -1;
        }
    }
    errno = EBUSY;
    return -1;
}

int32_t WddmWdkTraceEnd(WDDM_WDK_TRACE *Trace) {
    TRACE_STATE *state = StateOf(Trace);
    EndRead(Trace, state); /* the last read is over: its race fires (the memory is the region's) */
    int result = ProtectRanges(Trace, PROT_READ | PROT_WRITE);
    for (int i = 0; i < TRACE_SLOTS; i++) {
        WDDM_WDK_TRACE *expected = Trace;
        __atomic_compare_exchange_n(&Traces[i], &expected, NULL, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
    if (state->Stepping)
        __atomic_add_fetch(&OrphanSteps, 1, __ATOMIC_ACQ_REL);
    state->Stepping = 0;
    state->PageCount = 0;
    return result ? -1 : 0;
}

int32_t WddmWdkTracePoke(WDDM_WDK_TRACE *Trace, uint64_t Address, const void *Source, uint64_t Length) {
    uint64_t first = Address & ~(PageSize - 1), last = (Address + Length + PageSize - 1) & ~(PageSize - 1);
    (void)Trace;
    if (Length == 0)
        return 0;
    if (SetAccess(first, last, PROT_READ | PROT_WRITE))
        return -1;
    memcpy((void *)(uintptr_t)Address, Source, (size_t)Length);
    return SetAccess(first, last, PROT_NONE) ? -1 : 0;
}

#else /* not x86-64 Linux: no trap flag to step with; direct reads are not logged */

int32_t WddmWdkTraceSupported(void) { return 0; }
int32_t WddmWdkTraceBegin(WDDM_WDK_TRACE *Trace) { (void)Trace; return -1; }
int32_t WddmWdkTraceEnd(WDDM_WDK_TRACE *Trace) { (void)Trace; return -1; }
int32_t WddmWdkTracePoke(WDDM_WDK_TRACE *Trace, uint64_t Address, const void *Source, uint64_t Length) {
    (void)Trace, (void)Address, (void)Source, (void)Length;
    return -1;
}

#endif
