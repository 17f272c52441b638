// Cairn's stand-in for the keccak circuit's CPU kernels (see Cargo.toml): same symbols and signatures as
// risc0-circuit-keccak-sys 4.0.3's kernels/cxx/ffi.cpp and eval_check.cpp. Each returns a heap-allocated
// error message, which RISC Zero's `ffi_wrap` turns into an error and frees.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char* not_built(void) {
  return strdup("RISC Zero's keccak circuit is not built into Cairn: Cairn proves rv32im segments, and a guest's "
                "keccak-accelerator proofs are not part of its protocol (see vendor/risc0-circuit-keccak-sys)");
}

const char* risc0_circuit_keccak_cpu_witgen(uint32_t mode, const void* buffers, const void* preflight,
                                            uint32_t cycles) {
  (void)mode;
  (void)buffers;
  (void)preflight;
  (void)cycles;
  return not_built();
}

const char* risc0_circuit_keccak_cpu_poly_fp(size_t cycle, size_t steps, const void* poly_mixs,
                                             const void* args_ptr, void* result) {
  (void)cycle;
  (void)steps;
  (void)poly_mixs;
  (void)args_ptr;
  (void)result;
  return not_built();
}
