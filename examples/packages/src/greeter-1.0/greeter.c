/* greeter: prints libgreet's greeting, then runs the greeter-banner script found on PATH. */
#include <stdio.h>
#include <stdlib.h>
#include "greet.h"

int main(void) {
    printf("%s\n", greet());
    fflush(stdout);
    return system("greeter-banner") == 0 ? 0 : 1;
}
