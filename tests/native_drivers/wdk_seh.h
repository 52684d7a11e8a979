/*
 * wdk_seh.h -- structured exception handling as MSVC defines it, checked through the
 * WDK runtime: __finally, __leave, AbnormalTermination(), GetExceptionInformation() and
 * nesting. wdk_seh.c compiles these checks as C, wdk_seh.cpp as C++; either is linked
 * into wdk_pool.c's library (-D WDK_SEH_RENDER). Each WdkSeh* export runs through WddmWdkInvoke like a DDI and
 * returns STATUS_SUCCESS, or the number of the first check that failed.
 */
#ifndef WDK_SEH_H
#define WDK_SEH_H

#include <ntddk.h>
#include <dispmprt.h>
#include <string.h>

#ifdef __cplusplus
#define SEH_EXPORT extern "C"
#else
#define SEH_EXPORT
#endif

static volatile LONG FinallyRuns;

SEH_EXPORT NTSTATUS WdkSehFinallyRuns(PVOID Unused) {
    UNREFERENCED_PARAMETER(Unused);
    return FinallyRuns;
}

/* A __finally runs after a body that ends, or that __leave leaves (from inside a loop,
 * too): not an abnormal termination; __leave in a __try/__except skips the handler. */
SEH_EXPORT NTSTATUS WdkSehNormal(PVOID Unused) {
    volatile int steps = 0, abnormal = -1;
    UNREFERENCED_PARAMETER(Unused);
    __try {
        steps = 1;
    } __finally {
        abnormal = AbnormalTermination();
        steps = steps * 10 + 2;
    }
    if (steps != 12 || abnormal != 0)
        return 1;
    steps = 0;
    for (int i = 0; i < 3; i++) {
        __try {
            steps = steps + 1;
            for (;;) {
                if (i == 1)
                    __leave; /* the __try's end, not the inner loop's */
                break;
            }
            steps = steps + 100;
        } __finally {
            abnormal = AbnormalTermination();
            steps = steps + 1000;
        }
    }
    if (steps != 3203 || abnormal != 0)
        return 2;
    steps = 0;
    __try {
        steps = 1;
        __leave;
        steps = 2;
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        steps = 3;
    }
    if (steps != 1)
        return 3;
    return STATUS_SUCCESS;
}

/* An exception through a __finally nested in __try/__except: the __finally runs, abnormal,
 * before the handler; a filter passing it on leaves it to the outer one. */
SEH_EXPORT NTSTATUS WdkSehUnwind(PVOID Unused) {
    volatile int order = 0, abnormal = -1;
    volatile NTSTATUS code = 0;
    UNREFERENCED_PARAMETER(Unused);
    __try {
        __try {
            __try {
                ExRaiseStatus(STATUS_INTEGER_OVERFLOW);
            } __finally {
                abnormal = AbnormalTermination();
                order = order * 10 + 1;
            }
        } __except (GetExceptionCode() == STATUS_ACCESS_VIOLATION ? EXCEPTION_EXECUTE_HANDLER
                                                                  : EXCEPTION_CONTINUE_SEARCH) {
            order = order * 10 + 9; /* not reached */
        }
    } __except (order = order * 10 + 2, EXCEPTION_EXECUTE_HANDLER) {
        code = GetExceptionCode();
        order = order * 10 + 3;
    }
    if (order != 123 || abnormal != 1 || code != STATUS_INTEGER_OVERFLOW)
        return 1;
    /* a __try/__finally inside a __finally, and an exception raised by a __finally */
    order = 0;
    __try {
        __try {
            order = 1;
        } __finally {
            __try {
                ExRaiseStatus(STATUS_INVALID_PARAMETER_2);
            } __finally {
                order = order * 10 + (AbnormalTermination() ? 2 : 8);
            }
        }
    } __except (GetExceptionCode() == STATUS_INVALID_PARAMETER_2) {
        order = order * 10 + 3;
    }
    if (order != 123)
        return 2;
    return STATUS_SUCCESS;
}

static LONG Capture(PEXCEPTION_POINTERS Pointers, EXCEPTION_RECORD *Seen) {
    *Seen = *Pointers->ExceptionRecord;
    return Pointers->ContextRecord == NULL ? EXCEPTION_EXECUTE_HANDLER : EXCEPTION_CONTINUE_SEARCH;
}

/* GetExceptionInformation(): the record of the exception in the filter, with the access
 * and address of an access violation. */
SEH_EXPORT NTSTATUS WdkSehInformation(PVOID Unused) {
    EXCEPTION_RECORD seen;
    UCHAR kernel[8];
    UNREFERENCED_PARAMETER(Unused);
    memset(&seen, 0, sizeof seen);
    __try {
        ProbeForWrite(kernel, sizeof kernel, 1); /* not user memory: an access violation */
    } __except (Capture(GetExceptionInformation(), &seen)) {
    }
    if (seen.ExceptionCode != STATUS_ACCESS_VIOLATION || seen.NumberParameters != 2 ||
        seen.ExceptionInformation[0] != 1 || seen.ExceptionInformation[1] != (ULONG_PTR)kernel ||
        seen.ExceptionAddress == NULL)
        return 1;
    __try {
        ExRaiseStatus(STATUS_INTEGER_DIVIDE_BY_ZERO);
    } __except (Capture(GetExceptionInformation(), &seen)) {
    }
    if (seen.ExceptionCode != STATUS_INTEGER_DIVIDE_BY_ZERO || seen.NumberParameters != 0 ||
        seen.ExceptionAddress == NULL)
        return 2;
    return STATUS_SUCCESS;
}

/* No __except anywhere: bug check 0x1E at the raise, the __finally does not run. */
SEH_EXPORT NTSTATUS WdkSehUnhandled(PVOID Unused) {
    UNREFERENCED_PARAMETER(Unused);
    FinallyRuns = 0;
    __try {
        ExRaiseStatus(STATUS_INVALID_PARAMETER_1);
    } __finally {
        FinallyRuns = FinallyRuns + 1;
    }
    return STATUS_SUCCESS;
}

/* return out of a __try that has a __finally: the harness cannot run the block. */
SEH_EXPORT NTSTATUS WdkSehReturnOverFinally(PVOID Unused) {
    UNREFERENCED_PARAMETER(Unused);
    __try {
        return STATUS_SUCCESS;
    } __finally {
        FinallyRuns = FinallyRuns + 1;
    }
    return STATUS_UNSUCCESSFUL;
}

/* The Render DDI of the library: a plain memcpy of pCommand under a __finally inside a
 * __try/__except, so an injected fault is a real one; the filter logs its record. */
SEH_EXPORT NTSTATUS WdkSehRender(const HANDLE hContext, DXGKARG_RENDER *pRender) {
    UCHAR copy[64];
    EXCEPTION_RECORD seen;
    volatile int abnormal = -1;
    const SIZE_T n = pRender->CommandLength < sizeof copy ? pRender->CommandLength : sizeof copy;
    UNREFERENCED_PARAMETER(hContext);
    memset(&seen, 0, sizeof seen);
    __try {
        __try {
            memcpy(copy, pRender->pCommand, n);
        } __finally {
            abnormal = AbnormalTermination();
        }
    } __except (Capture(GetExceptionInformation(), &seen)) {
        DbgPrintEx(DPFLTR_IHVVIDEO_ID, DPFLTR_ERROR_LEVEL,
                   "seh: 0x%08X access %lu at %+ld abnormal %d address %s\n", (unsigned)GetExceptionCode(),
                   (unsigned long)seen.ExceptionInformation[0],
                   (long)(seen.ExceptionInformation[1] - (ULONG_PTR)pRender->pCommand), abnormal,
                   seen.ExceptionAddress != NULL ? "set" : "NULL");
        return STATUS_INVALID_PARAMETER;
    }
    DbgPrintEx(DPFLTR_IHVVIDEO_ID, DPFLTR_INFO_LEVEL, "seh: no fault, abnormal %d, last byte %u\n", abnormal,
               n ? copy[n - 1] : 0u); /* the copy is used: no compiler may drop it */
    return STATUS_NOT_SUPPORTED;
}

#endif /* WDK_SEH_H */
