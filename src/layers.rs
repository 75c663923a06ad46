//! The layer stack, held by a test: a module may name only modules of lower layers (and itself).
//!
//! Read from the bottom up, each layer knows only those below it:
//!
//! | layer | modules |
//! |---|---|
//! | 0 | `arrow` (the Arrow names the core uses) |
//! | 1 | `error` |
//! | 2 | `failpoint`, `testutil`, `time`, `control`, `layout` |
//! | 3 | `aggregate`, `master` (independent of each other) |
//! | 4 | `view` |
//! | 5 | `catalog` |
//! | 6 | `batch`, `speed` (independent of each other) |
//! | 7 | `serving` |
//! | 8 | `store` |
//! | 9 | `python` (the binding) |
//!
//! The test reads every source file under `src/` and checks each `crate::<module>` it names
//! outside comments; a new top-level module must be given a layer here first.

/// (module, layer), bottom to top.
const LAYERS: &[(&str, u32)] = &[
    ("arrow", 0),
    ("error", 1),
    ("failpoint", 2),
    ("testutil", 2),
    ("time", 2),
    ("control", 2),
    ("layout", 2),
    ("aggregate", 3),
    ("master", 3),
    ("view", 4),
    ("catalog", 5),
    ("batch", 6),
    ("speed", 6),
    ("serving", 7),
    ("store", 8),
    ("python", 9),
];

fn layer_of(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level module a file under `src/` belongs to (None: `lib.rs`, the crate root, and
/// this file, which names every layer).
fn module_of(rel: &std::path::Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "layers").then_some(name)
}

/// Every `crate::<name>` in the code of `text` (comments left out).
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name.clone()));
            }
            rest = &after[name.len()..];
        }
    }
    out
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// What in the file `rel` (relative to `src/`) names a module of its own layer or above.
fn back_arrows(rel: &std::path::Path, text: &str) -> Vec<String> {
    let Some(module) = module_of(rel) else {
        return Vec::new();
    };
    let Some(own) = layer_of(&module) else {
        return vec![format!("{}: module {module} has no layer", rel.display())];
    };
    let mut wrong = Vec::new();
    for (line, name) in named_modules(text) {
        if name == module {
            continue;
        }
        match layer_of(&name) {
            Some(l) if l < own => {}
            Some(l) => wrong.push(format!(
                "{}:{line}: {module} (layer {own}) names {name} (layer {l})",
                rel.display()
            )),
            // Items of the crate root (`crate::Error`, `crate::Result`) are layer 1.
            None if own > 1 => {}
            None => wrong.push(format!("{}:{line}: names crate::{name}", rel.display())),
        }
    }
    wrong
}

#[test]
fn no_import_runs_back_up_the_stack() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "the check found the sources");
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let text = std::fs::read_to_string(file).expect("a readable source file");
        wrong.extend(back_arrows(rel, &text));
    }
    assert!(
        wrong.is_empty(),
        "imports that run back up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_what_a_file_names() {
    let text = "use crate::view::def::ViewDef;\n// crate::store in a comment\nlet x = crate::time::units_per_second(&t); crate::error::Error::invalid(\"\");";
    let got: Vec<String> = named_modules(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(got, ["view", "time", "error"]);
    assert_eq!(
        module_of(std::path::Path::new("catalog/log.rs")).as_deref(),
        Some("catalog")
    );
    assert_eq!(module_of(std::path::Path::new("lib.rs")), None);
    let p = std::path::Path::new;
    assert!(back_arrows(p("store/mod.rs"), "use crate::batch::x;").is_empty());
    assert_eq!(
        back_arrows(p("master/manifest.rs"), "use crate::view::def::ViewDef;"),
        ["master/manifest.rs:1: master (layer 3) names view (layer 4)"]
    );
    assert_eq!(back_arrows(p("batch/mod.rs"), "crate::speed::x").len(), 1);
    assert_eq!(
        back_arrows(p("newmod.rs"), ""),
        ["newmod.rs: module newmod has no layer"]
    );
}
