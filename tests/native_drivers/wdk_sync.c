/*
 * Events and fast mutexes for tests/test_wdk_kernel_objects.py: built beside
 * wdk_pool.c (which registers the DDIs), each WdkSync* export runs through the runtime
 * like a DDI. A function that returns a number > 0 names the step that went wrong.
 */
#include <ntddk.h>

static KEVENT Never; /* nothing ever signals it */

NTSTATUS WdkSyncEvents(PVOID Unused) {
    KEVENT notification, synchronization;
    LARGE_INTEGER zero = {.QuadPart = 0}, tenMs = {.QuadPart = -100000};
    UNREFERENCED_PARAMETER(Unused);
    KeInitializeEvent(&notification, NotificationEvent, FALSE);
    if (KeReadStateEvent(&notification) != 0) return 1;
    if (KeWaitForSingleObject(&notification, Executive, KernelMode, FALSE, &zero) != STATUS_TIMEOUT) return 2;
    if (KeWaitForSingleObject(&notification, Executive, KernelMode, FALSE, &tenMs) != STATUS_TIMEOUT) return 3;
    if (KeSetEvent(&notification, 0, FALSE) != 0) return 4;
    if (KeReadStateEvent(&notification) != 1) return 5;
    if (KeWaitForSingleObject(&notification, Executive, KernelMode, FALSE, NULL) != STATUS_SUCCESS) return 6;
    if (KeReadStateEvent(&notification) != 1) return 7; /* a notification event stays signalled */
    if (KeResetEvent(&notification) != 1) return 8;
    if (KeReadStateEvent(&notification) != 0) return 9;
    KeInitializeEvent(&synchronization, SynchronizationEvent, TRUE);
    if (KeWaitForSingleObject(&synchronization, Executive, KernelMode, FALSE, NULL) != STATUS_SUCCESS) return 10;
    if (KeReadStateEvent(&synchronization) != 0) return 11; /* a synchronization event resets */
    if (KeWaitForSingleObject(&synchronization, Executive, KernelMode, FALSE, &zero) != STATUS_TIMEOUT) return 12;
    KeSetEvent(&synchronization, 0, FALSE);
    KeClearEvent(&synchronization);
    if (KeReadStateEvent(&synchronization) != 0) return 13;
    return STATUS_SUCCESS;
}

NTSTATUS WdkSyncWaitForever(PVOID Unused) {
    UNREFERENCED_PARAMETER(Unused);
    KeInitializeEvent(&Never, NotificationEvent, FALSE);
    return KeWaitForSingleObject(&Never, Executive, KernelMode, FALSE, NULL);
}

NTSTATUS WdkSyncWaitUnderSpinLock(PVOID Unused) {
    KSPIN_LOCK lock;
    KIRQL old;
    KEVENT event;
    LARGE_INTEGER tenMs = {.QuadPart = -100000};
    UNREFERENCED_PARAMETER(Unused);
    KeInitializeEvent(&event, NotificationEvent, FALSE);
    KeInitializeSpinLock(&lock);
    KeAcquireSpinLock(&lock, &old);
    NTSTATUS status = KeWaitForSingleObject(&event, Executive, KernelMode, FALSE, &tenMs);
    KeReleaseSpinLock(&lock, old);
    return status;
}

NTSTATUS WdkSyncMutex(PVOID Unused) {
    FAST_MUTEX mutex;
    UNREFERENCED_PARAMETER(Unused);
    ExInitializeFastMutex(&mutex);
    ExAcquireFastMutex(&mutex);
    if (KeGetCurrentIrql() != APC_LEVEL) return 1;
    if (ExTryToAcquireFastMutex(&mutex)) return 2; /* owned: a try fails, it does not deadlock */
    if (KeGetCurrentIrql() != APC_LEVEL) return 3;
    ExReleaseFastMutex(&mutex);
    if (KeGetCurrentIrql() != PASSIVE_LEVEL) return 4;
    if (!ExTryToAcquireFastMutex(&mutex)) return 5;
    ExReleaseFastMutex(&mutex);
    if (KeGetCurrentIrql() != PASSIVE_LEVEL) return 6;
    return STATUS_SUCCESS;
}

NTSTATUS WdkSyncMutexTwice(PVOID Unused) {
    FAST_MUTEX mutex;
    UNREFERENCED_PARAMETER(Unused);
    ExInitializeFastMutex(&mutex);
    ExAcquireFastMutex(&mutex);
    ExAcquireFastMutex(&mutex); /* its owner again: a deadlock */
    ExReleaseFastMutex(&mutex);
    return STATUS_SUCCESS;
}

static FAST_MUTEX Kept;

NTSTATUS WdkSyncMutexHeld(PVOID Unused) {
    UNREFERENCED_PARAMETER(Unused);
    ExInitializeFastMutex(&Kept);
    ExAcquireFastMutex(&Kept);
    return STATUS_SUCCESS; /* returns owning it */
}

NTSTATUS WdkSyncMutexAtDispatch(PVOID Unused) {
    FAST_MUTEX mutex;
    KIRQL old;
    UNREFERENCED_PARAMETER(Unused);
    ExInitializeFastMutex(&mutex);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    ExAcquireFastMutex(&mutex);
    ExReleaseFastMutex(&mutex);
    KeLowerIrql(old);
    return STATUS_SUCCESS;
}

NTSTATUS WdkSyncReleaseUnowned(PVOID Unused) {
    FAST_MUTEX mutex;
    UNREFERENCED_PARAMETER(Unused);
    ExInitializeFastMutex(&mutex);
    ExReleaseFastMutex(&mutex);
    return STATUS_SUCCESS;
}

/* The runtime's handle callbacks, taken the way the harness fills DXGKRNL_INTERFACE. */
void WddmWdkKernelInterface(void *Interface);

#include <dispmprt.h>

NTSTATUS WdkSyncHandlesOutsideTheKernel(PVOID Unused) {
    DXGKRNL_INTERFACE kernel = {0};
    DXGKARGCB_GETHANDLEDATA get = {.hObject = 0x40000040, .Type = DXGK_HANDLE_ALLOCATION};
    DXGKARGCB_ENUMHANDLECHILDREN child = {.hObject = 0x40000040, .Index = 0};
    UNREFERENCED_PARAMETER(Unused);
    WddmWdkKernelInterface(&kernel);
    /* no kernel behind this call: every handle is unknown, and the answer is NULL */
    if (kernel.DxgkCbGetHandleData(&get) != NULL) return 1;
    if (kernel.DxgkCbGetHandleParent(0x40000040) != 0) return 2;
    if (kernel.DxgkCbEnumHandleChildren(&child) != 0) return 3;
    return STATUS_SUCCESS;
}

NTSTATUS WdkSyncParentUnderSpinLock(PVOID Unused) {
    DXGKRNL_INTERFACE kernel = {0};
    KSPIN_LOCK lock;
    KIRQL old;
    UNREFERENCED_PARAMETER(Unused);
    WddmWdkKernelInterface(&kernel);
    KeInitializeSpinLock(&lock);
    KeAcquireSpinLock(&lock, &old);
    D3DKMT_HANDLE parent = kernel.DxgkCbGetHandleParent(0x40000040); /* below DISPATCH_LEVEL only */
    KeReleaseSpinLock(&lock, old);
    return parent ? STATUS_UNSUCCESSFUL : STATUS_SUCCESS;
}
