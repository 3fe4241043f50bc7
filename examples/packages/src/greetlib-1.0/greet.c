#include "greet.h"

const char *greet(void) { return "Hello from libgreet 1.0"; }
