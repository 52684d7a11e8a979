/* A shared library that is not a native driver at all: no WddmNativeDriverInfo. */
int not_a_driver(void) { return 42; }
