//! Every input the fuzzers keep (`fuzz/corpus/TARGET/`) and every input that
//! once crashed a target (`fuzz/regressions/TARGET/`) runs through its
//! target as an ordinary test.

use std::path::Path;

fn run_dir(dir: &Path, target: fn(&[u8])) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("a corpus entry").path();
        if path.is_file() {
            let data = std::fs::read(&path).expect("a readable corpus file");
            target(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn every_corpus_input_still_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, target) in rampart_fuzz::TARGETS {
        let kept = run_dir(&root.join("corpus").join(name), *target);
        run_dir(&root.join("regressions").join(name), *target);
        assert!(
            kept > 0,
            "fuzz/corpus/{name} is empty: run scripts/fuzz {name}"
        );
    }
}
