#ifndef GREET_H
#define GREET_H
/* The greeting of the example library. */
const char *greet(void);
#endif
