/* jit_stub_anchor.c — keeps the qkdjit library non-empty before the backend exists. */
typedef int qkd_jit_anchor_t;
