//! libFuzzer entry: runs the target named by `CAIRN_FUZZ_TARGET` (`cairn-fuzz list` names them) on each input.
//! Built and run by scripts/fuzz.sh.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn target() -> &'static cairn_fuzz::Target {
    static TARGET: OnceLock<&'static cairn_fuzz::Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let name = std::env::var("CAIRN_FUZZ_TARGET").unwrap_or_default();
        cairn_fuzz::target(&name).unwrap_or_else(|| {
            panic!("CAIRN_FUZZ_TARGET={name:?} names no target built here (see `cairn-fuzz list`)")
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = target().run(data);
});
