/*
 * optim_impl — what the optimizers' files (optim.c, optim_sf.c,
 * optim_muon.c) share and nothing else includes: floating-point
 * contraction off, so that a*b + c stays two roundings where torch rounds
 * twice (gcc contracts into fma by default for gnu11 when the target has
 * fma, which would change the bits); fmaf is written out where torch fuses.
 * Include it before any code.
 */
#ifndef TRAIND_OPTIM_IMPL_H
#define TRAIND_OPTIM_IMPL_H

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define NO_CONTRACT
#elif defined(__GNUC__)
#define NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define NO_CONTRACT
#endif
#define INLINE static inline __attribute__((always_inline)) NO_CONTRACT

#endif
