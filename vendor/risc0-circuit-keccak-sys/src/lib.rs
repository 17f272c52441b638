// Copyright 2024 RISC Zero, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.
//
// Cairn: this file is risc0-circuit-keccak-sys 4.0.3's src/lib.rs unchanged; the functions it declares are
// linked from src/not_built.c instead of the generated kernels (see Cargo.toml).

#[cfg(feature = "cuda")]
use cust::memory::DevicePointer;

use risc0_core::field::baby_bear::{BabyBearElem, BabyBearExtElem};

#[derive(Debug)]
#[repr(C)]
pub struct ScatterInfo {
    pub offset: u32,
    pub row: u32,
    pub col: u16,
    pub count: u16,
    pub bits: u32,
}

#[repr(C)]
pub struct RawPreflightTrace {
    pub preimages: *const [u64; 25],
    pub preimages_count: u32,
    pub preimage_idxs: *const u32,
    pub run_order: *const u32,
}

#[repr(C)]
pub struct RawExecBuffers {
    pub global: RawBuffer,
    pub data: RawBuffer,
}

#[repr(C)]
pub struct RawBuffer {
    pub buf: *const BabyBearElem,
    pub rows: usize,
    pub cols: usize,
    pub checked_reads: bool,
}

extern "C" {
    pub fn risc0_circuit_keccak_cpu_witgen(
        mode: u32,
        buffers: *const RawExecBuffers,
        preflight: *const RawPreflightTrace,
        cycles: u32,
    ) -> *const std::os::raw::c_char;

    pub fn risc0_circuit_keccak_cpu_poly_fp(
        cycle: usize,
        steps: usize,
        poly_mixs: *const BabyBearExtElem,
        args_ptr: *const *const BabyBearElem,
        result: *mut BabyBearExtElem,
    ) -> *const std::os::raw::c_char;
}

#[cfg(feature = "cuda")]
extern "C" {
    pub fn risc0_circuit_keccak_cuda_scatter(
        into: DevicePointer<u8>,
        infos: *const ScatterInfo,
        from: DevicePointer<u8>,
        rows: u32,
        count: u32,
    ) -> *const std::os::raw::c_char;

    pub fn risc0_circuit_keccak_cuda_witgen(
        mode: u32,
        buffers: *const RawExecBuffers,
        preflight: *const RawPreflightTrace,
        cycles: u32,
    ) -> *const std::os::raw::c_char;

    pub fn risc0_circuit_keccak_cuda_eval_check(
        check: DevicePointer<u8>,
        ctrl: DevicePointer<u8>,
        data: DevicePointer<u8>,
        accum: DevicePointer<u8>,
        mix: DevicePointer<u8>,
        out: DevicePointer<u8>,
        rou: *const BabyBearElem,
        po2: u32,
        domain: u32,
        poly_mix_pows: *const u32,
    ) -> *const std::os::raw::c_char;

    pub fn risc0_circuit_keccak_cuda_reset() -> *const std::os::raw::c_char;
}
