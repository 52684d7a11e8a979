/*
 * wdk_runtime.h -- what the harness calls in a driver built with `native build --wdk`:
 * the entry points of the runtime (wdk_runtime.c) that models the kernel a WDK
 * driver links against, and the views of the WDK-only structures it fills.
 *
 * Between the WDDM_WDK_RUNTIME_CDEF markers the text is plain C declarations that
 * cffi reads beside wddm_native.h's (no macros, no preprocessor conditionals, only
 * the base types that header declares); the WDDM_WDK_* views must match the WDK
 * compatibility headers byte for byte (tests/test_wdk_native.py compares offsets with
 * the compiler).
 */
#ifndef WDDM_WDK_RUNTIME_H
#define WDDM_WDK_RUNTIME_H

#include <stdint.h>

/* WDDM_WDK_RUNTIME_CDEF_BEGIN */

/* One DDI call made through the runtime (WddmWdkInvoke). */
typedef struct _WDDM_WDK_CALL {
    void *Function;             /* in: the DDI, from DRIVER_INITIALIZATION_DATA */
    uint32_t ArgumentCount;     /* in: 0 to 5 pointer-sized arguments */
    void *Arguments[5];         /* in */
    uint64_t Scope;             /* in: the owner recorded on pool allocated in this call */
    uint32_t CheckReturn;       /* in: 1 = a DDI: returning at raised IRQL or with a lock is 0x4A */
    void *CopyFromUser;         /* in: BOOLEAN (*)(HANDLE, PVOID, const void *, SIZE_T), or NULL */
    void *CopyContext;          /* in: its first argument */
    uint32_t UserRangeCount;    /* in: how many UserRanges are user memory in this call */
    uint64_t UserRanges[8][2];  /* in: [start, end) of each user-memory mapping */
    int32_t Status;             /* out: what the DDI returned */
    uint32_t BugCheckCode;      /* out: 0, or the bug check that stopped the call */
    uint64_t BugCheckParameters[4];
    uint32_t Kind;              /* out: WDDM_WDK_KIND_* (which rule the bug check names) */
    char Message[320];          /* out: what happened, for the report */
    void *HandleQuery;          /* in: uint64_t (*)(uint32_t Op, uint32_t Handle, uint32_t Argument,
                                   uint32_t Flags), the kernel's handle tables (WDDM_WDK_HANDLE_*), or NULL */
    uint64_t Frames[16];        /* out: the stack where a bug check stopped the call, innermost first,
                                   only frames in the driver's library (the runtime's too), as offsets
                                   from its load base inside each instruction (a faulting one, or the
                                   call a return address follows); 0 ends it */
} WDDM_WDK_CALL;

/* A pool block still allocated (WddmWdkPoolBlocks). */
typedef struct _WDDM_WDK_POOLBLOCK {
    uint64_t Address;
    uint64_t Size;
    uint32_t Tag;
    uint32_t PoolType;
    uint64_t Scope;
} WDDM_WDK_POOLBLOCK;

/* The harness's view of dispmprt.h's DXGK_START_INFO. */
typedef struct _WDDM_WDK_START_INFO {
    uint32_t RequiredDmaQueueEntry;
    uint8_t AdapterGuid[16];
    uint32_t AdapterLuidLowPart;
    int32_t AdapterLuidHighPart;
    uint64_t MemorySegmentSize;
    uint64_t ApertureSegmentSize;
} WDDM_WDK_START_INFO;

/* The harness's view of dispmprt.h's DXGKRNL_INTERFACE (Windows 7): 21 callbacks. */
typedef struct _WDDM_WDK_DXGKRNL_INTERFACE {
    uint32_t Size;
    uint32_t Version;
    void *DeviceHandle;
    void *Callbacks[21];
} WDDM_WDK_DXGKRNL_INTERFACE;

/* Calls DriverEntry (once per library) and returns the DRIVER_INITIALIZATION_DATA it
 * registered, or NULL; *Call says what DriverEntry returned or what stopped it. */
const void *WddmWdkDriverEntry(WDDM_WDK_CALL *Call);
/* Offsets of the DDIs in DRIVER_INITIALIZATION_DATA, by name ("DxgkDdiRender"); -1 if none. */
int32_t WddmWdkDdiOffset(const char *Name);
/* Runs one DDI: 0 when it returned, 1 when a bug check stopped it (see Call). */
int32_t WddmWdkInvoke(WDDM_WDK_CALL *Call);
/* The pool blocks allocated in Scope (all of them for UINT64_MAX); returns how many
 * there are, writing at most Max into Blocks. */
uint32_t WddmWdkPoolBlocks(uint64_t Scope, WDDM_WDK_POOLBLOCK *Blocks, uint32_t Max);
/* Makes the pages of [Address, Address+Length) inaccessible (Accessible 0) or readable and
 * writable again; the first call installs the fault handler that turns a fault on user
 * memory into STATUS_ACCESS_VIOLATION for the driver's __try. mprotect's result. */
int32_t WddmWdkProtect(void *Address, uint64_t Length, int32_t Accessible);
/* Puts the runtime's handle callbacks (DxgkCbGetHandleData, DxgkCbGetHandleParent,
 * DxgkCbEnumHandleChildren) into a DXGKRNL_INTERFACE; they ask the running call's HandleQuery. */
void WddmWdkKernelInterface(WDDM_WDK_DXGKRNL_INTERFACE *Interface);
/* Moves the captured DbgPrint output (lines) into Buffer; returns the bytes written. */
uint32_t WddmWdkDebugOutput(char *Buffer, uint32_t Size);

/* Direct reads of user memory (x86-64 Linux; WddmWdkTraceSupported): while a trace is
 * begun its ranges are inaccessible; each read the driver makes there faults, is logged
 * in Reads (in order), and runs once with its page readable (the trap flag stops it after
 * one instruction). docs/native.md, "Direct reads of user memory". */
typedef struct _WDDM_WDK_TRACED_RANGE {
    uint64_t Start;             /* in: page-aligned start of the memory traced */
    uint64_t End;               /* in: page-aligned end */
    uint64_t Guard;             /* in: page-aligned injected fault point (End: none); a read at
                                   or past it is STATUS_ACCESS_VIOLATION, as before */
    uint64_t ToctouAddress;     /* in: the first read covering this byte changes the bytes there */
    uint32_t ToctouLength;      /* in: bytes of ToctouBytes (0: no race); 0 once fired */
    uint32_t ToctouFired;       /* out: 1 once a direct read fired it */
    uint8_t ToctouBytes[256];   /* in */
} WDDM_WDK_TRACED_RANGE;

/* One direct read (consecutive reads of one copy are merged: see wdk_runtime.c). */
typedef struct _WDDM_WDK_READ {
    uint64_t Address;           /* the first byte read */
    uint64_t Instruction;       /* the instruction that read it (the first of a copy routine's) */
    uint32_t Length;            /* bytes; 0 when the instruction was not decoded */
    uint32_t Range;             /* index into WDDM_WDK_TRACE.Ranges */
} WDDM_WDK_READ;

typedef struct _WDDM_WDK_TRACE {
    uint32_t RangeCount;        /* in: at most 4 */
    uint32_t Consumed;          /* in: reads the harness has taken (they are not merged into) */
    WDDM_WDK_TRACED_RANGE Ranges[4];
    uint32_t Written;           /* out: reads logged */
    uint32_t Lost;              /* out: reads not logged because Reads was full */
    WDDM_WDK_READ Reads[8192];
    uint64_t Private[160];      /* the runtime's (the step in progress, the copy being merged) */
} WDDM_WDK_TRACE;

/* 1 where direct reads can be traced (x86-64 Linux), else 0. */
int32_t WddmWdkTraceSupported(void);
/* Makes the ranges inaccessible and starts logging direct reads of them; 0, or -1 (errno). */
int32_t WddmWdkTraceBegin(WDDM_WDK_TRACE *Trace);
/* Makes the ranges readable and writable again and stops logging; 0, or -1. */
int32_t WddmWdkTraceEnd(WDDM_WDK_TRACE *Trace);
/* Writes Length bytes at Address in a traced range while it is inaccessible; 0, or -1. */
int32_t WddmWdkTracePoke(WDDM_WDK_TRACE *Trace, uint64_t Address, const void *Source, uint64_t Length);

/* WDDM_WDK_RUNTIME_CDEF_END */

/* WDDM_WDK_CALL.Kind: the rule a bug check names. */
#define WDDM_WDK_KIND_NONE 0
#define WDDM_WDK_KIND_POOL 1        /* 0xC2 BAD_POOL_CALLER */
#define WDDM_WDK_KIND_IRQL 2        /* 0xD1, 0x4A, 0x9, 0xA, 0xF, 0x10: REN-IRQL */
#define WDDM_WDK_KIND_ASSERT 3      /* 0x1E STATUS_ASSERTION_FAILURE */
#define WDDM_WDK_KIND_USERFAULT 4   /* 0x1E STATUS_ACCESS_VIOLATION on user memory */
#define WDDM_WDK_KIND_EXCEPTION 5   /* 0x1E another unhandled exception */
#define WDDM_WDK_KIND_DRIVER 6      /* KeBugCheckEx from the driver */
/* WDDM_WDK_CALL.HandleQuery's Op. */
#define WDDM_WDK_HANDLE_DATA 1     /* Argument: DXGK_HANDLE_TYPE; Flags: DXGKCB_GETHANDLEDATAFLAGS */
#define WDDM_WDK_HANDLE_PARENT 2
#define WDDM_WDK_HANDLE_CHILD 3    /* Argument: the index */

#define WDDM_WDK_KIND_HANG 7        /* a wait or deadlock that never ends: ALL-BOUNDED */

#endif /* WDDM_WDK_RUNTIME_H */
