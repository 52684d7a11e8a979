/*
 * ntdef.h -- wddm-conformance WDK compatibility set: base types of a kernel-mode driver.
 *
 * Written for wddm-conformance from Microsoft's public documentation of the WDK
 * (learn.microsoft.com); not the WDK's header. x64 (LLP64) sizes on an LP64 host:
 * LONG and ULONG are 32 bits, pointers and SIZE_T 64. SAL annotations and calling
 * conventions compile away. docs/native.md, "Building WDK driver sources".
 */
#ifndef WDDM_WDK_NTDEF_H
#define WDDM_WDK_NTDEF_H

#include <stddef.h>
#include <stdint.h>

#ifndef _AMD64_
#define _AMD64_ 1
#endif
#ifndef _WIN64
#define _WIN64 1
#endif

/* ------------------------------------------------------------ calling conventions */
#define NTAPI
#define APIENTRY
#define WINAPI
#define CALLBACK
#define __stdcall
#define __cdecl
#define __fastcall
#define NTSYSAPI
#define NTKERNELAPI
#define NTHALAPI
#define FORCEINLINE static inline
#define DECLSPEC_NOINLINE __attribute__((noinline))
#define DECLSPEC_ALIGN(x) __attribute__((aligned(x)))
#define DECLSPEC_NORETURN __attribute__((noreturn))
#define __forceinline inline
#define __inline inline
#define IN
#define OUT
#define OPTIONAL
#define CONST const
#define VOID void

/* ------------------------------------------------------------ SAL annotations */
#define _In_
#define _In_opt_
#define _In_z_
#define _In_opt_z_
#define _In_reads_(s)
#define _In_reads_opt_(s)
#define _In_reads_bytes_(s)
#define _In_reads_bytes_opt_(s)
#define _Out_
#define _Out_opt_
#define _Out_writes_(s)
#define _Out_writes_opt_(s)
#define _Out_writes_bytes_(s)
#define _Out_writes_bytes_opt_(s)
#define _Out_writes_bytes_all_(s)
#define _Out_writes_to_(s, c)
#define _Inout_
#define _Inout_opt_
#define _Inout_updates_(s)
#define _Inout_updates_bytes_(s)
#define _Outptr_
#define _Outptr_opt_
#define _Outptr_result_maybenull_
#define _Ret_maybenull_
#define _Ret_notnull_
#define _Must_inspect_result_
#define _Check_return_
#define _Success_(e)
#define _Field_size_(s)
#define _Field_size_bytes_(s)
#define _Field_size_opt_(s)
#define _Field_range_(lo, hi)
#define _Printf_format_string_
#define _Post_writable_byte_size_(s)
#define _When_(c, a)
#define _At_(t, a)
#define _IRQL_requires_(i)
#define _IRQL_requires_max_(i)
#define _IRQL_requires_min_(i)
#define _IRQL_requires_same_
#define _IRQL_raises_(i)
#define _IRQL_saves_
#define _IRQL_restores_
#define _IRQL_saves_global_(k, l)
#define _IRQL_restores_global_(k, l)
#define _Requires_lock_held_(l)
#define _Requires_lock_not_held_(l)
#define _Acquires_lock_(l)
#define _Releases_lock_(l)
#define _Function_class_(c)
#define _Use_decl_annotations_
#define _Dispatch_type_(t)
#define _Kernel_float_used_
#define _Analysis_assume_(e)
#define __drv_allocatesMem(k)
#define __drv_freesMem(k)
#define __drv_aliasesMem
#define __drv_when(c, a)
#define __drv_maxIRQL(i)
#define __drv_requiresIRQL(i)
#define __drv_strictTypeMatch(m)
#define _Frees_ptr_
#define _Frees_ptr_opt_
#define _Post_invalid_
#define _Pre_notnull_
#define _Notnull_
#define _Null_terminated_
#define _Reserved_
#define _Const_
#define __in
#define __out
#define __inout
#define __in_opt
#define __out_opt
#define __in_bcount(s)
#define __out_bcount(s)

/* ------------------------------------------------------------ base types (x64) */
typedef void *PVOID;
typedef void *HANDLE;
typedef HANDLE *PHANDLE;
typedef char CHAR;
typedef unsigned char UCHAR;
typedef int16_t SHORT;
typedef uint16_t USHORT;
typedef int16_t CSHORT;
typedef int32_t LONG;
typedef uint32_t ULONG;
typedef int32_t INT;
typedef uint32_t UINT;
typedef int64_t LONGLONG;
typedef uint64_t ULONGLONG;
typedef int64_t LONG64;
typedef uint64_t ULONG64;
typedef int32_t LONG32;
typedef uint32_t ULONG32;
typedef int8_t INT8;
typedef uint8_t UINT8;
typedef int16_t INT16;
typedef uint16_t UINT16;
typedef int32_t INT32;
typedef uint32_t UINT32;
typedef int64_t INT64;
typedef uint64_t UINT64;
typedef uint8_t BYTE;
typedef uint16_t WORD;
typedef uint32_t DWORD;
typedef uint8_t BOOLEAN;
typedef int32_t BOOL;
typedef int64_t LONG_PTR;
typedef uint64_t ULONG_PTR;
typedef int64_t INT_PTR;
typedef uint64_t UINT_PTR;
typedef uint64_t SIZE_T;
typedef int64_t SSIZE_T;
typedef ULONG_PTR DWORD_PTR;
typedef uint16_t WCHAR;
typedef CHAR *PCHAR, *PSTR;
typedef const CHAR *PCSTR, *PCSZ;
typedef WCHAR *PWCHAR, *PWSTR;
typedef const WCHAR *PCWSTR;
typedef WCHAR *PWCH;
typedef UCHAR *PUCHAR;
typedef USHORT *PUSHORT;
typedef ULONG *PULONG;
typedef LONG *PLONG;
typedef UINT *PUINT;
typedef BOOLEAN *PBOOLEAN;
typedef SIZE_T *PSIZE_T;
typedef ULONG_PTR *PULONG_PTR;
typedef ULONGLONG *PULONGLONG;
typedef const void *PCVOID;
typedef LONG NTSTATUS;
typedef NTSTATUS *PNTSTATUS;
typedef ULONG LOGICAL;
typedef UCHAR KIRQL;
typedef KIRQL *PKIRQL;
typedef CHAR CCHAR;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#ifndef NULL
#define NULL ((void *)0)
#endif

typedef union _LARGE_INTEGER {
    struct {
        ULONG LowPart;
        LONG HighPart;
    };
    struct {
        ULONG LowPart;
        LONG HighPart;
    } u;
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

typedef union _ULARGE_INTEGER {
    struct {
        ULONG LowPart;
        ULONG HighPart;
    };
    struct {
        ULONG LowPart;
        ULONG HighPart;
    } u;
    ULONGLONG QuadPart;
} ULARGE_INTEGER, *PULARGE_INTEGER;

typedef LARGE_INTEGER PHYSICAL_ADDRESS, *PPHYSICAL_ADDRESS;

typedef struct _LUID {
    ULONG LowPart;
    LONG HighPart;
} LUID, *PLUID;

typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID, *PGUID;

typedef struct _UNICODE_STRING {
    USHORT Length;        /* bytes, without a terminator */
    USHORT MaximumLength; /* bytes */
    PWCH Buffer;
} UNICODE_STRING, *PUNICODE_STRING;
typedef const UNICODE_STRING *PCUNICODE_STRING;

typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY *Flink;
    struct _LIST_ENTRY *Blink;
} LIST_ENTRY, *PLIST_ENTRY;

typedef struct _SINGLE_LIST_ENTRY {
    struct _SINGLE_LIST_ENTRY *Next;
} SINGLE_LIST_ENTRY, *PSINGLE_LIST_ENTRY;

/* ------------------------------------------------------------ macros */
#define NT_SUCCESS(Status) (((NTSTATUS)(Status)) >= 0)
#define NT_INFORMATION(Status) ((((ULONG)(Status)) >> 30) == 1)
#define NT_WARNING(Status) ((((ULONG)(Status)) >> 30) == 2)
#define NT_ERROR(Status) ((((ULONG)(Status)) >> 30) == 3)
#define FIELD_OFFSET(type, field) ((LONG)offsetof(type, field))
#define RTL_FIELD_SIZE(type, field) (sizeof(((type *)0)->field))
#define RTL_NUMBER_OF(A) (sizeof(A) / sizeof((A)[0]))
#define ARRAYSIZE(A) RTL_NUMBER_OF(A)
#define CONTAINING_RECORD(address, type, field) \
    ((type *)((PCHAR)(address) - (ULONG_PTR)offsetof(type, field)))
#define ARGUMENT_PRESENT(ArgumentPointer) ((CHAR *)((ULONG_PTR)(ArgumentPointer)) != (CHAR *)NULL)
#define UNREFERENCED_PARAMETER(P) ((void)(P))
#define DBG_UNREFERENCED_PARAMETER(P) ((void)(P))
#define DBG_UNREFERENCED_LOCAL_VARIABLE(V) ((void)(V))
#ifdef __cplusplus
#define C_ASSERT(e) static_assert(e, #e)
#else
#define C_ASSERT(e) _Static_assert(e, #e)
#endif
#define MAXULONG 0xFFFFFFFFu
#define MAXUINT 0xFFFFFFFFu
#define MAXLONG 0x7FFFFFFF
#define MAXULONG_PTR (~(ULONG_PTR)0)
#define ALIGN_UP_BY(Length, Alignment) (((ULONG_PTR)(Length) + (Alignment) - 1) & ~((ULONG_PTR)(Alignment) - 1))
#define ALIGN_DOWN_BY(Length, Alignment) ((ULONG_PTR)(Length) & ~((ULONG_PTR)(Alignment) - 1))

#endif /* WDDM_WDK_NTDEF_H */
