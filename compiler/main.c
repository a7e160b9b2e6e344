/* main.c — placeholder until the driver lands. */
#include <stdio.h>
int main(void) { fputs("qkdc: not built yet\n", stderr); return 2; }
