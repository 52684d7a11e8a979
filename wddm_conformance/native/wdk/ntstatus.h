/*
 * ntstatus.h -- wddm-conformance WDK compatibility set: NTSTATUS values.
 *
 * The values the DDIs of this suite return (DDI_FACTS.md) and the ones the kernel
 * routines of the compatibility set raise or return, from the public documentation.
 */
#ifndef WDDM_WDK_NTSTATUS_H
#define WDDM_WDK_NTSTATUS_H

#include "ntdef.h"

#define STATUS_SUCCESS                           ((NTSTATUS)0x00000000L)
#define STATUS_WAIT_0                            ((NTSTATUS)0x00000000L)
#define STATUS_TIMEOUT                           ((NTSTATUS)0x00000102L)
#define STATUS_PENDING                           ((NTSTATUS)0x00000103L)
#define STATUS_DATATYPE_MISALIGNMENT             ((NTSTATUS)0x80000002L)
#define STATUS_BUFFER_OVERFLOW                   ((NTSTATUS)0x80000005L)
#define STATUS_UNSUCCESSFUL                      ((NTSTATUS)0xC0000001L)
#define STATUS_NOT_IMPLEMENTED                   ((NTSTATUS)0xC0000002L)
#define STATUS_ACCESS_VIOLATION                  ((NTSTATUS)0xC0000005L)
#define STATUS_INVALID_HANDLE                    ((NTSTATUS)0xC0000008L)
#define STATUS_INVALID_PARAMETER                 ((NTSTATUS)0xC000000DL)
#define STATUS_NO_MEMORY                         ((NTSTATUS)0xC0000017L)
#define STATUS_ILLEGAL_INSTRUCTION               ((NTSTATUS)0xC000001DL)
#define STATUS_ACCESS_DENIED                     ((NTSTATUS)0xC0000022L)
#define STATUS_BUFFER_TOO_SMALL                  ((NTSTATUS)0xC0000023L)
#define STATUS_ARRAY_BOUNDS_EXCEEDED             ((NTSTATUS)0xC000008CL)
#define STATUS_INTEGER_DIVIDE_BY_ZERO            ((NTSTATUS)0xC0000094L)
#define STATUS_INTEGER_OVERFLOW                  ((NTSTATUS)0xC0000095L)
#define STATUS_PRIVILEGED_INSTRUCTION            ((NTSTATUS)0xC0000096L)
#define STATUS_INSUFFICIENT_RESOURCES            ((NTSTATUS)0xC000009AL)
#define STATUS_NOT_SUPPORTED                     ((NTSTATUS)0xC00000BBL)
#define STATUS_INVALID_USER_BUFFER               ((NTSTATUS)0xC00000E8L)
#define STATUS_INVALID_PARAMETER_1               ((NTSTATUS)0xC00000EFL)
#define STATUS_INVALID_PARAMETER_2               ((NTSTATUS)0xC00000F0L)
#define STATUS_INVALID_PARAMETER_3               ((NTSTATUS)0xC00000F1L)
#define STATUS_INTERNAL_ERROR                    ((NTSTATUS)0xC00000E5L)
#define STATUS_ASSERTION_FAILURE                 ((NTSTATUS)0xC0000420L)
#define STATUS_GRAPHICS_INSUFFICIENT_DMA_BUFFER  ((NTSTATUS)0xC01E0001L)
#define STATUS_GRAPHICS_ALLOCATION_BUSY          ((NTSTATUS)0xC01E0102L)
#define STATUS_GRAPHICS_GPU_EXCEPTION_ON_DEVICE  ((NTSTATUS)0xC01E0200L)
/* Informational severity: NT_SUCCESS() is TRUE for it. Never judge a DDI with NT_SUCCESS. */
#define STATUS_GRAPHICS_DRIVER_MISMATCH          ((NTSTATUS)0x401E0117L)

#endif /* WDDM_WDK_NTSTATUS_H */
