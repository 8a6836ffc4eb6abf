//! Builds the table of built-in presets from the files in `presets/`: each `NAME.toml` is
//! served by `--preset NAME`. Adding a preset is adding a file; no Rust names a lab.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut presets: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("the presets/ folder")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_owned();
            Some((name, path.display().to_string()))
        })
        .collect();
    presets.sort();
    let mut table = String::from("/// Built-in presets: (name, file name, TOML text).\n");
    table.push_str("pub const BUILTIN_PRESETS: &[(&str, &str, &str)] = &[\n");
    for (name, path) in &presets {
        println!("cargo:rerun-if-changed={path}");
        let file = format!("presets/{name}.toml");
        writeln!(table, "    ({name:?}, {file:?}, include_str!({path:?})),").unwrap();
    }
    table.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("presets.rs");
    std::fs::write(out, table).expect("write presets.rs");
}
