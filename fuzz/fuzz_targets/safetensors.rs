//! safetensors bytes -> the checkpoint reader (header, offsets, dtypes) and the finite scan.
#![no_main]

use e5v_model::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, bytes).expect("write");
    if let Ok(checkpoint) = Checkpoint::from_files(vec![path]) {
        let _ = checkpoint.check_finite();
    }
});
