/*
 * wdk_seh.cpp -- wdk_seh.h's checks compiled as C++, and what SEH does to destructors:
 * the frames an exception unwinds are left by longjmp, so the destructors of their
 * objects do not run (as with MSVC's /kernel, which has no C++ exception handling);
 * leaving a __try by __leave or by the end of a block runs them as usual.
 */
#include "wdk_seh.h"

static volatile LONG Destroyed;

class Counted {
  public:
    Counted() = default;
    Counted(const Counted &) = delete;
    Counted &operator=(const Counted &) = delete;
    ~Counted() { Destroyed = Destroyed + 1; }
};

static void RaiseHoldingAnObject() {
    Counted local;
    ExRaiseStatus(STATUS_INTEGER_OVERFLOW);
}

extern "C" NTSTATUS WdkSehDestructors(PVOID Unused) {
    UNREFERENCED_PARAMETER(Unused);
    Destroyed = 0;
    __try {
        Counted inBody;
        RaiseHoldingAnObject();
    } __except (EXCEPTION_EXECUTE_HANDLER) {
    }
    if (Destroyed != 0)
        return 1; /* neither local nor inBody: both frames were unwound by longjmp */
    __try {
        Counted inBody;
        __leave;
    } __finally {
    }
    if (Destroyed != 1)
        return 2; /* __leave is a jump out of the block: inBody is destroyed */
    {
        Counted outside;
        __try {
            ExRaiseStatus(STATUS_INTEGER_OVERFLOW);
        } __except (EXCEPTION_EXECUTE_HANDLER) {
        }
    }
    if (Destroyed != 2)
        return 3; /* an object outside the unwound frames ends its life as usual */
    return STATUS_SUCCESS;
}
