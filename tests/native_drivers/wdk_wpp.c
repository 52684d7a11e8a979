/*
 * WPP tracing for tests/test_wdk_wpp.py, built beside wdk_pool.c: the control GUID and
 * its flags, a begin_wpp config block, the generated .tmh, and WdkWppTrace, which traces
 * with the format specifiers of docs/native.md ("WPP").
 */
#include <ntddk.h>

#define WPP_CONTROL_GUIDS                                                                  \
    WPP_DEFINE_CONTROL_GUID(WdkWppTraceGuid, (3c7e1a2b, 5d4f, 4e6a, 9b8c, 0d1e2f3a4b5c), \
                            WPP_DEFINE_BIT(TRACE_DRIVER) WPP_DEFINE_BIT(TRACE_ALLOCATION))

/*
 * begin_wpp config
 * FUNC TraceEvents(LEVEL, FLAGS, MSG, ...);
 * FUNC TraceDriver{FLAG=TRACE_DRIVER}(MSG, ...);
 * end_wpp
 */
#include "wdk_wpp.tmh"

NTSTATUS WdkWppTrace(PVOID Unused) {
    static const WCHAR wide[] = {'w', 'i', 'd', 'e', 0};
    static WCHAR text[] = {'u', 'n', 'i', 'c', 'o', 'd', 'e'};
    UNICODE_STRING unicode = {sizeof text, sizeof text, text};
    UNREFERENCED_PARAMETER(Unused);
    DoTraceMessage(TRACE_DRIVER, "before WPP_INIT_TRACING: not traced");
    WPP_INIT_TRACING(NULL, NULL);
    DoTraceMessage(TRACE_DRIVER, "%!FUNC!: %d allocation(s) of %Iu bytes, %!STATUS!", 3, (SIZE_T)4096,
                   STATUS_INVALID_PARAMETER);
    TraceEvents(TRACE_LEVEL_ERROR, TRACE_ALLOCATION, "%!FILE! %s|%5.2x|%-3c|%I64X|%ws|%wZ|%!bool!|%hhu",
                "text", 10, 'z', 0x123456789ULL, wide, &unicode, TRUE, 300);
    TraceDriver("fixed flag %u%%", 7u);
    TraceDriver("pointer %p", (PVOID)(ULONG_PTR)0x1234);
    TraceEvents(TRACE_LEVEL_INFORMATION, TRACE_DRIVER, "%!IPADDR! then %d", 1, 2);
    WPP_CLEANUP(NULL);
    DoTraceMessage(TRACE_DRIVER, "after WPP_CLEANUP: not traced");
    return STATUS_SUCCESS;
}
